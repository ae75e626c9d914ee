#!/usr/bin/env bash
# bf16 autocast vs fp32, side by side from one main-run checkpoint, one core each, equal wall time.
set -u
cd "$(dirname "$0")/../.."
START=${START:-45500}
CK=runs/toyfaces-64/checkpoints/step_$(printf %08d $START)
until [ -f $CK/DONE ]; do sleep 5; done
pkill -f "gan_partseg.cli train-gan --out runs/toyfaces-64 " ; sleep 8
echo "main stopped at $(date)"
export OMP_WAIT_POLICY=PASSIVE
setsid nohup .venv/bin/python -m gan_partseg.cli train-gan --out runs/toyfaces-64-bf16 --init-from $CK \
  --size 64 --n-images 20000 --batch 16 --steps 60000 --checkpoint-every 250 --sample-every 500 \
  --max-minutes ${MINUTES:-55} --threads 1 --mixed-precision bf16 > runs/toyfaces-64-bf16.log 2>&1 < /dev/null &
setsid nohup scripts/train_embedded_gan.sh --steps 60000 --max-minutes ${MINUTES:-55} --threads 1 >> runs/toyfaces-64.log 2>&1 < /dev/null &
echo "both started at $(date)"
runs/bf16-experiment/keep_checkpoints.sh
echo "both done at $(date)"
