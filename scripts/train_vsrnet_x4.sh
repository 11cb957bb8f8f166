#!/usr/bin/env bash
# Train the shipped vsrnet-x4 (MSE) and vsrnet-x4-gan weights on one CPU thread, as recorded
# in vsr_pipeline/models/weights/MODEL_CARD-*.md. Resumable: run it again after an interruption.
# `python -m vsr_pipeline.train` is the same command as `vsrpipe train`.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}

"$PY" -m vsr_pipeline.train --arch vsrnet --scale 4 --loss mse --steps 8000 --batch 16 --patch 32 \
    --lr 5e-4 --warmup 200 --seed 0 --threads 1 --ckpt-every 500 --out runs/vsrnet-x4 --resume --no-progress
"$PY" -m vsr_pipeline.train --out runs/vsrnet-x4 --export-only vsr_pipeline/models/weights/vsrnet-x4.safetensors --name vsrnet-x4

"$PY" -m vsr_pipeline.train --arch vsrnet --scale 4 --loss gan --init runs/vsrnet-x4/model.safetensors \
    --steps 600 --batch 8 --patch 24 --lr 1e-4 --warmup 50 --seed 1 --threads 1 --ckpt-every 100 \
    --pixel-weight 0.2 --perceptual-weight 1.0 --adv-weight 0.02 --pgd-eps 0.004 --pgd-steps 1 \
    --out runs/vsrnet-x4-gan --resume --no-progress
"$PY" -m vsr_pipeline.train --out runs/vsrnet-x4-gan --export-only vsr_pipeline/models/weights/vsrnet-x4-gan.safetensors --name vsrnet-x4-gan
