#!/usr/bin/env bash
# Train runs/vdsr-x4 (VDSR-style pre-upsampling network: bicubic x4, then 12 convolutions of 32
# channels predicting a residual) on one CPU thread; the export runs/vdsr-x4/model.safetensors
# runs at any --scale. Not shipped: benchmarks/reproduce_finetuning.py --exp E1 --model
# runs/vdsr-x4/model.safetensors uses it (a x4 network run at x3 the way the paper ran its
# pre-upsampling VSRResNet). `python -m vsr_pipeline.train` is `vsrpipe train`.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
"$PY" -m vsr_pipeline.train --arch vdsr --features 32 --blocks 12 --scale 4 --batch 16 --patch 16 --threads 1 \
    --loss l1 --steps 3000 --lr 5e-4 --warmup 100 --seed 0 --ckpt-every 500 --no-progress \
    --out runs/vdsr-x4 --name vdsr-x4 --resume
