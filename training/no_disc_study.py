"""Where a faint outline stops being a disc: the confidence below which `segment` says "no optic disc found".

    python training/no_disc_study.py [--crops FILE.json] [--stress training/stress_train.json]
                                     [--report training/stress_test.json] [--out FILE.json]

Photos without a disc: for every Drishti-GS1 image, a square of 2 disc diameters centred 3
diameters from the disc towards the photo's centre (``stress_test.no_disc_crop``; crops that still
hold part of the disc are left out), segmented with the discard rule off; their confidences are
saved to ``--crops`` (or read from it when it exists).  Photos with a disc: the rows of the
stress-suite runs.  On the training split the script picks the highest threshold (0.30 to 0.70, in
steps of 0.01) that discards none of the outlines that are right (OD Dice >= 0.85); on the
test split it reports what that threshold does to both kinds of photo.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from _study import DRISHTI, REPO

LOST_GOOD_OUTLINES = 0.0


def crop_confidences(data: Path) -> dict:
    from stress_test import no_disc_crop

    import napari_attunet.inference as inference
    from napari_attunet import load_model
    from napari_attunet.datasets import load_drishti
    from napari_attunet.inference import Segmenter, image_tensor

    inference.NO_DISC_BELOW = 0.0  # measure every candidate
    segmenter = Segmenter(load_model(device="cpu"), torch.device("cpu"))
    out = {}
    for split in ("train", "test"):
        rows = []
        for sample in load_drishti(data, split):
            crop = no_disc_crop(sample)
            result = segmenter.segment_tensor(image_tensor(crop.image, segmenter.device), attention=False)
            rows.append({"image": sample.name, "truth_disc_pixels": int(crop.disc.sum()),
                         "disc_found": result.disc_found, "confidence": result.confidence})
        out[split] = rows
    return out


def stress_rows(path: Path) -> tuple[np.ndarray, np.ndarray]:
    rows = json.loads(path.read_text())["rows"]
    return (np.array([r["dice_od"] if r["disc_found"] else 0.0 for r in rows]),
            np.array([r["confidence"] for r in rows]))


def effect(threshold: float, crops: list[dict], dice: np.ndarray, confidence: np.ndarray) -> dict:
    empty = [r for r in crops if r["truth_disc_pixels"] == 0]
    reported = [r for r in empty if r["disc_found"] and r["confidence"] >= threshold]
    good = dice >= 0.85
    return {"threshold": threshold, "no_disc_crops": len(empty), "disc_reported": len(reported),
            "outlines": len(dice), "good_outlines_discarded": int((good & (confidence < threshold)).sum()),
            "bad_outlines_discarded": int((~good & (confidence > 0) & (confidence < threshold)).sum())}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DRISHTI)
    parser.add_argument("--crops", type=Path, default=REPO / "training" / "no_disc_crops.json")
    parser.add_argument("--stress", type=Path, default=REPO / "training" / "stress_train.json")
    parser.add_argument("--report", type=Path, default=REPO / "training" / "stress_test.json")
    parser.add_argument("--out", type=Path, default=REPO / "training" / "no_disc_study.json")
    args = parser.parse_args()
    torch.set_num_threads(2)
    if args.crops.exists():
        crops = json.loads(args.crops.read_text())
    else:
        crops = crop_confidences(args.data)
        args.crops.write_text(json.dumps(crops, indent=1) + "\n")
    dice, confidence = stress_rows(args.stress)
    chosen = 0.3
    for threshold in np.round(np.arange(0.30, 0.701, 0.01), 2):
        row = effect(float(threshold), crops["train"], dice, confidence)
        if row["good_outlines_discarded"] <= LOST_GOOD_OUTLINES * int((dice >= 0.85).sum()):
            chosen = float(threshold)
    result = {"rule": "highest threshold that discards no right outline (OD Dice >= 0.85) of the training "
                      "split's stress suite",
              "threshold": chosen, "train": effect(chosen, crops["train"], dice, confidence),
              "test": effect(chosen, crops["test"], *stress_rows(args.report)),
              "test_without_rule": effect(0.0, crops["test"], *stress_rows(args.report))}
    print(json.dumps(result, indent=1))
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
