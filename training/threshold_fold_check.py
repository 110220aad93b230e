"""Does choosing the cup threshold on images the network was trained on pick the right one?

    python training/threshold_fold_check.py train --fold 0     # and --fold 1 (in parallel: 1 thread each)
    python training/threshold_fold_check.py report             # -> training/threshold_fold_check.json

The shipped threshold was chosen on the 50 training images, 45 of which the network had
learned from (docs/experiments.md).  This check splits the 50 into two halves (sorted
names, alternating), trains one network per half from scratch on 2 CPU cores (the
shipped recipe, shortened: 100 epochs, no validation split, the last epoch kept), and
then, for each network, applies the rule of ``napari_attunet.calibration``

* to the half it learned from ("seen", as was done for the shipped weights), and
* to the other half ("unseen", the proper way),

and evaluates the Drishti-GS1 test split at 0.5 and at both chosen thresholds.  The
weights files (``training/folds/``) are not in git; training resumes after a kill.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from _study import DRISHTI, REPO

FOLDS = REPO / "training" / "folds"
EPOCHS = 100


def halves(samples):
    ordered = sorted(samples, key=lambda s: s.name)
    return ordered[0::2], ordered[1::2]


def train_fold(fold: int, data: Path, epochs: int, threads: int) -> None:
    from napari_attunet.datasets import load_drishti
    from napari_attunet.training import TrainConfig, iter_train

    own = halves(load_drishti(data, "train"))[fold]
    out = FOLDS / f"fold{fold}.safetensors"
    FOLDS.mkdir(parents=True, exist_ok=True)
    config = TrainConfig(epochs=epochs, val_fraction=0.0, seed=fold, threads=threads, device="cpu",
                         data_description=f"Drishti-GS1 training split, half {fold} ({len(own)} images)",
                         command=f"python training/threshold_fold_check.py train --fold {fold}")
    with open(FOLDS / f"fold{fold}.log.jsonl", "a") as log:
        for event in iter_train(own, out, config, resume=True):
            if event.stage == "validate":
                log.write(json.dumps(event.metrics) + "\n")
                log.flush()
                print(event.message, f"loss {event.metrics['loss']:.4f}", flush=True)


def report(data: Path, out: Path) -> None:
    from napari_attunet import load_model
    from napari_attunet.calibration import calibrate
    from napari_attunet.datasets import load_drishti
    from napari_attunet.evaluation import evaluate

    torch.set_num_threads(2)
    device = torch.device("cpu")
    both = halves(load_drishti(data, "train"))
    test = load_drishti(data, "test")
    results = {}
    for fold in (0, 1):
        model = load_model(FOLDS / f"fold{fold}.safetensors", device="cpu")
        seen = calibrate(both[fold], model, device)
        unseen = calibrate(both[1 - fold], model, device)
        entry = {"weights_sha256": model.weights_info.sha256,
                 "epochs": model.weights_info.metadata["training"]["epochs_trained"],
                 "train_images": len(both[fold]),
                 "chosen_on_seen": seen["cup_threshold"], "chosen_on_unseen": unseen["cup_threshold"],
                 "seen": {str(t): s for t, s in seen["summary"].items()},
                 "unseen": {str(t): s for t, s in unseen["summary"].items()},
                 "test": {}}
        for threshold in sorted({0.5, seen["cup_threshold"], unseen["cup_threshold"]}):
            summary = evaluate(test, model=model, device=device, cup_threshold=threshold)["summary"]
            entry["test"][str(threshold)] = {k: summary[k] for k in ("dice_od", "dice_oc", "vcdr_abs_error",
                                                                     "discs_not_found")}
        results[f"fold{fold}"] = entry
        print(f"fold {fold}: chosen on seen {seen['cup_threshold']}, on unseen {unseen['cup_threshold']}; test "
              + "; ".join(f"cup {t}: OD {v['dice_od']:.3f} OC {v['dice_oc']:.3f} MAE {v['vcdr_abs_error']:.3f}"
                          for t, v in entry["test"].items()), flush=True)
    out.write_text(json.dumps(results, indent=2) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=["train", "report"])
    parser.add_argument("--fold", type=int, choices=[0, 1], default=0)
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--data", type=Path, default=DRISHTI)
    parser.add_argument("--out", type=Path, default=REPO / "training" / "threshold_fold_check.json")
    args = parser.parse_args()
    if args.step == "train":
        train_fold(args.fold, args.data, args.epochs, args.threads)
    else:
        report(args.data, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
