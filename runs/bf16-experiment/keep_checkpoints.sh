#!/usr/bin/env bash
# While either arm trains, copy each complete checkpoint of both (the EMA, state and discriminator that
# fd_breakdown.py reads) to kept/RUN/step_N: checkpoint rotation keeps only the 2 newest, and the
# comparison needs equal steps.
cd "$(dirname "$0")/../.."
sleep 30
while pgrep -f "train-gan --out runs/toyfaces-64" > /dev/null; do
  for run in toyfaces-64 toyfaces-64-bf16; do
    for d in runs/$run/checkpoints/step_*; do
      [ -f $d/DONE ] || continue
      dst=runs/bf16-experiment/kept/$run/$(basename $d)
      [ -d $dst ] && continue
      mkdir -p $dst.tmp && cp $d/custom_checkpoint_0.pkl $d/custom_checkpoint_1.pkl $d/model_1.safetensors $d/DONE $dst.tmp/ 2>/dev/null && mv $dst.tmp $dst || rm -rf $dst.tmp
    done
  done
  sleep 20
done
