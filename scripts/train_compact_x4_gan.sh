#!/usr/bin/env bash
# Train the shipped compact-x4-gan weights (SRVGGNetCompact, 64 features, 16 body convolutions,
# x4, single image) on one CPU thread: the exact commands recorded in
# vsr_pipeline/models/weights/MODEL_CARD-compact-x4-gan.md. `python -m vsr_pipeline.train` is
# the same command as `vsrpipe train`. Stage 1 trains the network with an L1 loss from scratch;
# stage 2 fine-tunes it with Real-ESRGAN's generator loss weights (1.0 L1 + 1.0 perceptual +
# 0.1 adversarial; ST-LPIPS stands in for the VGG perceptual loss, whose weights are a download).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
COMMON=(--arch compact --features 64 --blocks 16 --scale 4 --batch 8 --patch 24 --threads 1 --no-progress)

"$PY" -m vsr_pipeline.train "${COMMON[@]}" --loss l1 --steps 4000 --lr 5e-4 --warmup 200 --seed 0 \
    --ckpt-every 500 --out runs/compact-x4 --name compact-x4 --resume
"$PY" -m vsr_pipeline.train "${COMMON[@]}" --loss gan --init runs/compact-x4/model.pth --steps 1000 --lr 1e-4 \
    --warmup 50 --seed 1 --ckpt-every 100 --pixel-weight 1.0 --perceptual-weight 1.0 --adv-weight 0.1 \
    --out runs/compact-x4-gan --name compact-x4-gan --resume
"$PY" -m vsr_pipeline.train --out runs/compact-x4-gan --export-only vsr_pipeline/models/weights/compact-x4-gan.pth
