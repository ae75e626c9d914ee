#!/bin/bash
cd /work/exp-heads
while kill -0 4594 2>/dev/null; do sleep 5; done
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 PYTHONPATH=/work/exp-heads
PY=/work/main/.venv/bin/python
$PY exp/heads_sweep.py --k 5 --draws 0 1 --heads cnn-s/scale cnn-m/scale cnn-m/cap cnn-l/scale cnn-l/cap > exp/log_k5.txt 2>&1
$PY exp/heads_sweep.py --k 10 --draws 0 1 --heads cnn-s mlp-1 cnn-s/scale --steps 200 > exp/log_steps200.txt 2>&1
$PY exp/heads_sweep.py --k 10 --draws 0 1 --heads cnn-s cnn-l cnn-l/scale --steps 400 --lr 0.003 > exp/log_lr3e-3.txt 2>&1
