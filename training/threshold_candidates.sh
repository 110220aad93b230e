#!/usr/bin/env bash
# The threshold rule of training/threshold_study.py applied to every GPU candidate run
# (weights from training/gpu_train.py, not in git): study on the training split, then the
# test split evaluated once at the chosen cup threshold.  Results: training/gpu_h200/candidates/.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data/drishti-gs1}
OUT=training/gpu_h200/candidates
for run in attention_from_default attention_seed0 attention_seed1 attention_seed2 plain_seed0; do
    python training/threshold_study.py --weights "training/$run.safetensors" --data "$DATA" \
        --out "$OUT/threshold_study_train_$run.json" | tail -1
    cup=$(python -c "import json,sys; print(json.load(open(sys.argv[1]))['chosen_cup_threshold'])" \
        "$OUT/threshold_study_train_$run.json")
    napari-attunet evaluate --data "$DATA" --split test --weights "training/$run.safetensors" \
        --cup-threshold "$cup" --threads 2 --json > "$OUT/eval_test_calibrated_$run.json"
    python -c "import json,sys; s=json.load(open(sys.argv[1]))['summary']; print(sys.argv[2], 'cup', sys.argv[3], \
{k: round(v, 4) for k, v in s.items() if k.startswith(('dice', 'vcdr'))})" "$OUT/eval_test_calibrated_$run.json" "$run" "$cup"
done
