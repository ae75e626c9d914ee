#!/bin/bash
cd /work/exp-unet
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 PYTHONPATH=/work/exp-unet
while [ ! -f exp/results/balanced-ce+dice.json ]; do sleep 10; done
/work/main/.venv/bin/python exp/train_variant.py median-freq-ce 8 loss=balanced-ce balance=median-freq > exp/median-freq-ce.log 2>&1
