#!/usr/bin/env bash
# Stage 1 of the shipped default weights, and the first plain U-Net baseline, with the same
# recipe on the 50 Drishti-GS1 training images (CPU, 2 threads). Resumable: rerun to continue.
# Stage 1 ran with the narrower augmentation of commit 6609ade (see docs/experiments.md); the
# current code uses wider ranges. Stage 2 (GPU fine-tuning, and the runs it was chosen from):
# training/gpu_train.py, then training/promote_default.py.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data/drishti-gs1}
python -m napari_attunet train --data "$DATA" --out training/attention_unet.safetensors \
    --epochs 120 --seed 0 --threads 2 --resume --log training/attention_unet.log.jsonl
python -m napari_attunet train --data "$DATA" --out training/plain_unet.safetensors --no-attention \
    --epochs 120 --seed 0 --threads 2 --resume --log training/plain_unet.log.jsonl
