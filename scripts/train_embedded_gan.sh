#!/usr/bin/env bash
# Trains the embedded toyfaces-64 StyleGAN2 on the CPU (resumable: rerun to continue).
# Usage: [RUN=runs/other] [PROCS=N] scripts/train_embedded_gan.sh [extra gan-partseg train-gan flags]
# In a fresh clone, RUN=runs/toyfaces-64-ddp (the default) first restores the shipped step-72,656 checkpoint
# from the tracked reproduce/toyfaces-64-ddp (see reproduce/README.md), so the line continues exactly.
# PROCS=N trains with N processes of 1 thread each (torchrun, data parallel, batch 16/N per process): on a
# 2-core CPU, PROCS=2 runs 1.2-1.3x the steps of one process (benchmarks/gan_step.py). A run resumes only
# with the PROCS it started with; --init-from starts a fork with another.
# The line trained now (bf16 is faster on CPUs with AVX-512 BF16):
#   scripts/train_embedded_gan.sh --mixed-precision bf16
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
PROCS=${PROCS:-2}
RUN=${RUN:-runs/toyfaces-64-ddp}
TRACKED=reproduce/$(basename "$RUN")/checkpoint
if [ ! -d "$RUN/checkpoints" ] && [ -f "$TRACKED/manifest.json" ]; then
  "$PY" -m gan_partseg.training.resume unpack "$TRACKED" "$RUN"
fi
if [ "$PROCS" -gt 1 ]; then
  export OMP_NUM_THREADS=1
  LAUNCH=("$PY" -m torch.distributed.run --standalone --nproc_per_node "$PROCS")
  THREADS=1
else
  LAUNCH=("$PY")
  THREADS=2
fi
exec "${LAUNCH[@]}" -m gan_partseg.cli train-gan --out "$RUN" --size 64 --n-images 20000 \
  --batch-size $((16 / PROCS)) --steps 90000 --checkpoint-every 250 --sample-every 500 --max-minutes 150 --resume \
  --threads $THREADS "$@"
