#!/usr/bin/env bash
# How this run was started (2026-12-02): stop the one-process bf16 line at its next checkpoint and go on
# from it with two processes, one core each. ACCELERATE_USE_CPU was needed before make_accelerator; today:
#   PROCS=2 RUN=runs/toyfaces-64-ddp scripts/train_embedded_gan.sh --mixed-precision bf16
cd "$(dirname "$0")/../.."
before=$(ls -d runs/toyfaces-64-bf16/checkpoints/step_*/DONE | tail -1)
until [ "$(ls -d runs/toyfaces-64-bf16/checkpoints/step_*/DONE | tail -1)" != "$before" ]; do sleep 3; done
pkill -f "train-gan --out runs/toyfaces-64-bf16 "; sleep 5
CK=$(dirname $(ls -d runs/toyfaces-64-bf16/checkpoints/step_*/DONE | tail -1))
echo "from $CK at $(date)"
export OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=1 ACCELERATE_USE_CPU=true
exec .venv/bin/torchrun --standalone --nproc_per_node 2 -m gan_partseg.cli train-gan --out runs/toyfaces-64-ddp \
  --init-from $CK --size 64 --n-images 20000 --batch 8 --steps 80000 --checkpoint-every 250 --sample-every 500 \
  --max-minutes 140 --threads 1 --mixed-precision bf16
# Continued from step 67,000 on 2026-12-02 (session 11, 0.34 s per step) to step 72,656, shipped:
#   PROCS=2 RUN=runs/toyfaces-64-ddp scripts/train_embedded_gan.sh --mixed-precision bf16 --steps 90000 --max-minutes 32
