#!/bin/bash
# runs the variants one after another (one training process at a time)
cd /work/exp-unet
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 PYTHONPATH=/work/exp-unet
PY=/work/main/.venv/bin/python
while [ ! -f exp/results/ce.json ]; do sleep 10; done
$PY exp/train_variant.py balanced-ce 8 loss=balanced-ce balance=inv-sqrt > exp/balanced-ce.log 2>&1
$PY exp/train_variant.py ce+dice 8 loss=ce+dice > exp/ce+dice.log 2>&1
$PY exp/train_variant.py soft 8 loss=ce targets=soft soft_cache=True > exp/soft.log 2>&1
$PY exp/train_variant.py balanced-ce+dice 8 loss=balanced-ce+dice balance=inv-sqrt > exp/balanced-ce+dice.log 2>&1
