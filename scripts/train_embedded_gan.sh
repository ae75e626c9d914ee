#!/usr/bin/env bash
# Trains the embedded toyfaces-64 StyleGAN2 on the CPU (resumable: rerun to continue).
# Usage: [RUN=runs/other] scripts/train_embedded_gan.sh [extra gan-partseg train-gan flags]
# The bf16 line (faster on CPUs with AVX-512 BF16): RUN=runs/toyfaces-64-bf16 scripts/train_embedded_gan.sh --mixed-precision bf16
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
exec "$PY" -m gan_partseg.cli train-gan --out "${RUN:-runs/toyfaces-64}" --size 64 --n-images 20000 --batch 16 \
  --steps 12000 --checkpoint-every 250 --sample-every 500 --max-minutes 150 --resume --threads 2 "$@"
