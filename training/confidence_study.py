"""How well the per-image confidence separates good outlines from bad, and where "low" begins.

    python training/confidence_study.py [--choose training/stress_train.json]
                                        [--report training/stress_test.json] [--out FILE.json]

Reads the per-image rows of two stress-suite runs (``training/stress_test.py``).  A *failure* is
an image whose OD Dice is below 0.85 (a missed disc counts as 0).  On the ``--choose`` run (the
training split's stress variants) it picks the low-confidence threshold that maximises Youden's J
(true-positive rate of flagging failures minus false-positive rate).  On the ``--report`` run (the
test split's, never used for choosing) it reports the AUROC for telling failures from the rest,
with a 95% bootstrap interval that resamples photos (all variants of a photo together, since
they are not independent), and the mean OD Dice of flagged and unflagged images at the threshold.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from _study import REPO

FAILURE_DICE = 0.85


def load(path: Path):
    rows = json.loads(path.read_text())["rows"]
    dice = np.array([r["dice_od"] if r["disc_found"] else 0.0 for r in rows])
    confidence = np.array([r["confidence"] for r in rows])
    photos = np.array([r["image"] for r in rows])
    return dice, confidence, photos


def auroc(failure: np.ndarray, confidence: np.ndarray) -> float:
    """Probability that a failure gets a lower confidence than a success (ties count half)."""
    bad, good = confidence[failure], confidence[~failure]
    if not len(bad) or not len(good):
        return float("nan")
    order = np.concatenate([bad, good])
    ranks = np.empty(len(order))
    ranks[np.argsort(order, kind="mergesort")] = np.arange(1, len(order) + 1)
    for value in np.unique(order):  # average ranks of ties
        tied = order == value
        ranks[tied] = ranks[tied].mean()
    good_ranks = ranks[len(bad):]
    return float((good_ranks.sum() - len(good) * (len(good) + 1) / 2) / (len(bad) * len(good)))


def youden_threshold(failure: np.ndarray, confidence: np.ndarray) -> float:
    best, chosen = -1.0, 0.5
    for threshold in np.round(np.arange(0.05, 0.96, 0.01), 2):
        flagged = confidence < threshold
        j = flagged[failure].mean() - flagged[~failure].mean()
        if j > best:
            best, chosen = j, float(threshold)
    return chosen


def bootstrap(failure, confidence, photos, rounds: int = 1000, seed: int = 0) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    names = np.unique(photos)
    index = {name: np.flatnonzero(photos == name) for name in names}
    values = []
    for _ in range(rounds):
        picked = np.concatenate([index[name] for name in rng.choice(names, len(names))])
        value = auroc(failure[picked], confidence[picked])
        if not np.isnan(value):
            values.append(value)
    return float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--choose", type=Path, default=REPO / "training" / "stress_train.json")
    parser.add_argument("--report", type=Path, default=REPO / "training" / "stress_test.json")
    parser.add_argument("--out", type=Path, default=REPO / "training" / "confidence_study.json")
    args = parser.parse_args()
    dice, confidence, photos = load(args.choose)
    failure = dice < FAILURE_DICE
    threshold = youden_threshold(failure, confidence)
    result = {"failure": f"OD Dice < {FAILURE_DICE}", "threshold": threshold,
              "choose": {"file": args.choose.name, "images": len(dice), "failures": int(failure.sum()),
                         "auroc": auroc(failure, confidence)}}
    dice, confidence, photos = load(args.report)
    failure = dice < FAILURE_DICE
    flagged = confidence < threshold
    low, high = bootstrap(failure, confidence, photos)
    result["report"] = {
        "file": args.report.name, "images": len(dice), "photos": len(np.unique(photos)),
        "failures": int(failure.sum()), "auroc": auroc(failure, confidence), "auroc_95": [low, high],
        "flagged": int(flagged.sum()), "failures_flagged": int((flagged & failure).sum()),
        "successes_flagged": int((flagged & ~failure).sum()),
        "mean_od_dice_flagged": float(dice[flagged].mean()) if flagged.any() else None,
        "mean_od_dice_unflagged": float(dice[~flagged].mean()) if (~flagged).any() else None,
    }
    print(json.dumps(result, indent=1))
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
