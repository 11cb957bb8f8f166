#!/usr/bin/env bash
# Train the shipped vsrnet-x4 (MSE) and vsrnet-x4-gan weights on one CPU thread: the exact
# commands recorded in vsr_pipeline/models/weights/MODEL_CARD-*.md. `python -m vsr_pipeline.train`
# is the same command as `vsrpipe train`.
#
# The MSE run was started with a 8000-step cosine schedule and, to finish inside the session on
# the shared 2-core machine, stopped after its step-4000 checkpoint and resumed with --steps 6500
# (the cosine schedule is a function of (step, steps), so the learning rate stepped from 2.6e-4
# to 1.8e-4 at step 4000). The second phase below reproduces that.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
MSE=(--arch vsrnet --scale 4 --loss mse --batch 16 --patch 32 --lr 5e-4 --warmup 200 --seed 0 --threads 1
     --ckpt-every 500 --out runs/vsrnet-x4 --no-progress)

# phase 1: steps 0-4000 of an 8000-step schedule (stop it once runs/vsrnet-x4/model-step004000.safetensors exists)
if [ ! -f runs/vsrnet-x4/model-step004000.safetensors ]; then
    "$PY" -m vsr_pipeline.train "${MSE[@]}" --steps 8000 &
    pid=$!
    while [ ! -f runs/vsrnet-x4/model-step004000.safetensors ]; do sleep 10; done
    kill "$pid"; wait "$pid" || true
fi
# phase 2: resume at step 4000 with a 6500-step schedule
"$PY" -m vsr_pipeline.train "${MSE[@]}" --steps 6500 --resume
"$PY" -m vsr_pipeline.train --out runs/vsrnet-x4 --export-only vsr_pipeline/models/weights/vsrnet-x4.safetensors --name vsrnet-x4

"$PY" -m vsr_pipeline.train --arch vsrnet --scale 4 --loss gan --init runs/vsrnet-x4/model.safetensors \
    --steps 400 --batch 8 --patch 24 --lr 1e-4 --warmup 50 --seed 1 --threads 1 --ckpt-every 100 \
    --pixel-weight 0.2 --perceptual-weight 1.0 --adv-weight 0.02 --pgd-eps 0.004 --pgd-steps 1 \
    --out runs/vsrnet-x4-gan --no-progress
"$PY" -m vsr_pipeline.train --out runs/vsrnet-x4-gan --export-only vsr_pipeline/models/weights/vsrnet-x4-gan.safetensors --name vsrnet-x4-gan
