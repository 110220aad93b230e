"""Choosing the cup threshold of a network on annotated images, and storing it with the weights.

The cup is the structure whose boundary the network (and the experts) are least sure of,
and the vCDR follows its vertical extent, so the cup threshold sets how large the vCDR
comes out.  The rule, the one the shipped weights' threshold was chosen by:

* candidates: cup thresholds 0.25, 0.30, ..., 0.50 (the disc threshold is the network's own);
* pick the candidate with the lowest vCDR mean absolute error against the masks, among
  those whose mean OC Dice is at most 0.005 below that at 0.5 (a threshold may trade a
  little overlap for a better ratio, not more);
* ties go to the candidate nearer 0.5.

The network runs once per image; the candidates re-threshold its cup probability inside
the disc.  Choose on images you will not judge the result on.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch

from .datasets import Sample
from .inference import Segmenter, image_tensor
from .measure import dice, measure
from .model import AttentionUNet
from .postprocessing import largest_component
from .progress import Progress, Stopwatch, run_to_end
from .weights import save_weights

CANDIDATES = (0.25, 0.30, 0.35, 0.40, 0.45, 0.50)
REFERENCE = 0.5
MAX_DICE_LOSS = 0.005
RULE = (f"among cup thresholds {CANDIDATES}, the lowest vCDR MAE (against the masks), allowing at most "
        f"{MAX_DICE_LOSS} lower mean OC Dice than {REFERENCE}; ties go to the one nearer {REFERENCE}")


def score_thresholds(segmenter: Segmenter, sample: Sample, candidates: Sequence[float] = CANDIDATES) -> dict:
    """OC Dice and signed vCDR error (prediction - masks) of one sample at every candidate cup threshold."""
    result = segmenter.segment_tensor(image_tensor(sample.image, segmenter.device), attention=False)
    truth = measure(sample.disc, sample.cup).vcdr
    row = {"image": sample.name, "disc_found": result.disc_found}
    for threshold in candidates:
        cup = largest_component((result.cup_probability > threshold) & result.disc) & result.disc
        row[threshold] = {"oc": dice(cup, sample.cup), "vcdr_error": measure(result.disc, cup).vcdr - truth}
    return row


def summarise_thresholds(rows: Sequence[dict], candidates: Sequence[float] = CANDIDATES) -> dict[float, dict]:
    """Per candidate: images, mean OC Dice, vCDR MAE, mean signed vCDR error, images below the masks."""
    summary = {}
    for threshold in candidates:
        errors = np.array([row[threshold]["vcdr_error"] for row in rows], float)
        summary[threshold] = {
            "images": len(rows),
            "oc": float(np.mean([row[threshold]["oc"] for row in rows])),
            "vcdr_mae": float(np.nanmean(np.abs(errors))),
            "vcdr_bias": float(np.nanmean(errors)),
            "below_masks": int(np.sum(errors < 0)),
        }
    return summary


def choose_cup_threshold(summary: dict[float, dict]) -> float:
    """The rule in the module docstring, applied to :func:`summarise_thresholds`' output."""
    if REFERENCE not in summary:
        raise ValueError(f"the candidates must include the reference threshold {REFERENCE}")
    floor = summary[REFERENCE]["oc"] - MAX_DICE_LOSS
    allowed = [t for t in summary if summary[t]["oc"] >= floor]
    return min(allowed, key=lambda t: (round(summary[t]["vcdr_mae"], 6), abs(t - REFERENCE)))


def iter_calibrate(samples: Sequence[Sample], model: AttentionUNet, device: torch.device,
                   candidates: Sequence[float] = CANDIDATES) -> Iterator[Progress]:
    """Score every sample at every candidate; yields a :class:`Progress` per image.

    The last event's result is ``{"rows", "summary", "cup_threshold", "disc_threshold",
    "discs_not_found", "rule"}``; images where the network finds no disc count as OC Dice 0
    and are left out of the vCDR error.
    """
    if not samples:
        raise ValueError("no annotated images to calibrate on")
    if any(not sample.disc.any() for sample in samples):
        names = [sample.name for sample in samples if not sample.disc.any()]
        raise ValueError(f"images without a disc in their masks cannot be calibrated on: {', '.join(names[:5])}")
    segmenter = Segmenter(model, device, cup_threshold=REFERENCE)  # the disc threshold is the model's own
    clock = Stopwatch()
    rows = []
    for index, sample in enumerate(samples):
        rows.append(score_thresholds(segmenter, sample, candidates))
        yield Progress("calibrate", index + 1, len(samples), sample.name, clock())
    missed = [row["image"] for row in rows if not row["disc_found"]]
    if len(missed) == len(rows):
        raise ValueError("the network found no optic disc in any of the images; nothing to calibrate on")
    summary = summarise_thresholds(rows, candidates)
    report = {"rows": rows, "summary": summary, "cup_threshold": choose_cup_threshold(summary),
              "disc_threshold": segmenter.disc_threshold, "discs_not_found": missed, "rule": RULE}
    yield Progress("calibrate", len(samples), len(samples), "done", clock(), result=report)


def calibrate(samples: Sequence[Sample], model: AttentionUNet, device: torch.device, *,
              candidates: Sequence[float] = CANDIDATES, progress: Callable[[Progress], None] | None = None) -> dict:
    """Plain-call form of :func:`iter_calibrate`."""
    return run_to_end(iter_calibrate(samples, model, device, candidates), callback=progress)


def store_thresholds(model: AttentionUNet, path: str | os.PathLike, disc: float, cup: float, source: str) -> str:
    """Write ``model`` to ``path`` (atomically) with these thresholds in its metadata; returns the SHA-256."""
    return save_weights(model, path, {"thresholds": {"disc": float(disc), "cup": float(cup), "source": source}})
