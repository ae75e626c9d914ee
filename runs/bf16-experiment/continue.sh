#!/usr/bin/env bash
# Second half of the bf16 comparison: once both arms stop (launch.sh), resume both for MINUTES more, one core each,
# keeping every checkpoint of both.
set -u
cd "$(dirname "$0")/../.."
until grep -q "both done" runs/bf16-experiment/launch.log; do sleep 10; done
export OMP_WAIT_POLICY=PASSIVE
setsid nohup .venv/bin/python -m gan_partseg.cli train-gan --out runs/toyfaces-64-bf16 --resume \
  --size 64 --n-images 20000 --batch 16 --steps 60000 --checkpoint-every 250 --sample-every 500 \
  --max-minutes ${MINUTES:-60} --threads 1 --mixed-precision bf16 >> runs/toyfaces-64-bf16.log 2>&1 < /dev/null &
setsid nohup scripts/train_embedded_gan.sh --steps 60000 --max-minutes ${MINUTES:-60} --threads 1 >> runs/toyfaces-64.log 2>&1 < /dev/null &
echo "both resumed at $(date)"
runs/bf16-experiment/keep_checkpoints.sh
echo "both done at $(date)"
