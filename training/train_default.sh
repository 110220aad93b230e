#!/usr/bin/env bash
# Trains the shipped default weights and the plain U-Net baseline with the same recipe
# on the 50 Drishti-GS1 training images (CPU, 2 threads). Resumable: rerun to continue.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data/drishti-gs1}
python -m napari_attunet train --data "$DATA" --out training/attention_unet.safetensors \
    --epochs 120 --seed 0 --threads 2 --resume --log training/attention_unet.log.jsonl
python -m napari_attunet train --data "$DATA" --out training/plain_unet.safetensors --no-attention \
    --epochs 120 --seed 0 --threads 2 --resume --log training/plain_unet.log.jsonl
