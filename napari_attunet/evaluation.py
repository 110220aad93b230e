"""Accuracy against annotations: Dice and IoU of disc and cup, vCDR error."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator, Sequence

import numpy as np

from .datasets import Sample, load_dataset
from .inference import Segmenter
from .measure import dice, iou, measure
from .progress import Progress, Stopwatch, run_to_end

SUMMARY_KEYS = ("dice_od", "dice_oc", "iou_od", "iou_oc", "vcdr_abs_error", "vcdr_abs_error_experts", "seconds")


def score_sample(segmenter: Segmenter, sample: Sample) -> dict:
    """Segment one annotated sample and compare with its masks (and experts' CDRs when known)."""
    from .inference import image_tensor

    result = segmenter.segment_tensor(image_tensor(sample.image, segmenter.device), attention=False)
    truth = measure(sample.disc, sample.cup)
    row = {
        "image": sample.name,
        "dice_od": dice(result.disc, sample.disc),
        "dice_oc": dice(result.cup, sample.cup),
        "iou_od": iou(result.disc, sample.disc),
        "iou_oc": iou(result.cup, sample.cup),
        "vcdr": result.vcdr,
        "vcdr_truth": truth.vcdr,
        "vcdr_abs_error": abs(result.vcdr - truth.vcdr),
        "seconds": result.seconds,
        "disc_found": result.disc_found,
        "confidence": result.confidence,
        "status": "; ".join(result.messages) or "ok",
    }
    experts = sample.extra.get("expert_cdrs")
    if experts:
        row["vcdr_experts"] = float(np.mean(experts))
        row["vcdr_abs_error_experts"] = abs(result.vcdr - row["vcdr_experts"])
    return row


def summarise(rows: Sequence[dict]) -> dict:
    """Per-image means (NaN-aware: an image without a found disc counts as Dice 0 and is listed)."""
    summary = {"images": len(rows), "discs_not_found": sum(not r["disc_found"] for r in rows)}
    for key in SUMMARY_KEYS:
        values = [r[key] for r in rows if key in r and not (isinstance(r[key], float) and math.isnan(r[key]))]
        if values:
            summary[key] = float(np.mean(values))
    return summary


def iter_evaluate(samples: Sequence[Sample], segmenter: Segmenter) -> Iterator[Progress]:
    clock = Stopwatch()
    rows = []
    for index, sample in enumerate(samples):
        rows.append(score_sample(segmenter, sample))
        yield Progress("evaluate", index + 1, len(samples), sample.name, clock())
    report = {"summary": summarise(rows), "images": rows, "provenance": segmenter.provenance}
    yield Progress("evaluate", len(samples), len(samples), "done", clock(), result=report)


def evaluate(data: str | os.PathLike | Sequence[Sample], split: str = "test", weights=None, device="auto", *,
             model=None, tta: bool = False, disc_threshold: float | None = None,
             cup_threshold: float | None = None, progress: Callable[[Progress], None] | None = None) -> dict:
    """Evaluate on a dataset folder (Drishti-GS1 ``split``, or a folder of images and masks) or samples.

    Thresholds left as None are the weights file's own (see :func:`napari_attunet.segment`).

    Returns ``{"summary": {...means...}, "images": [per-image rows], "provenance": {...}}``.
    """
    from .devices import resolve_device
    from .weights import load_model

    samples = load_dataset(data, split) if isinstance(data, (str, os.PathLike)) else list(data)
    device = resolve_device(device)
    model = model if model is not None else load_model(weights, device=device)
    segmenter = Segmenter(model, device, disc_threshold, cup_threshold, tta=tta)
    report = run_to_end(iter_evaluate(samples, segmenter), callback=progress)
    report["data"] = str(data) if isinstance(data, (str, os.PathLike)) else "in-memory samples"
    report["split"] = split
    return report


def format_table(report: dict) -> str:
    """Per-image rows and the mean as an aligned text table."""
    columns = ["image", "dice_od", "dice_oc", "iou_od", "iou_oc", "vcdr", "vcdr_truth", "vcdr_abs_error"]
    if any("vcdr_experts" in r for r in report["images"]):
        columns += ["vcdr_experts", "vcdr_abs_error_experts"]

    def cell(value) -> str:
        if isinstance(value, float):
            return "nan" if math.isnan(value) else f"{value:.4f}"
        return str(value)

    mean_row = {"image": "MEAN", **report["summary"]}
    table = [columns] + [[cell(r.get(c, "")) for c in columns] for r in report["images"] + [mean_row]]
    widths = [max(len(row[i]) for row in table) for i in range(len(columns))]
    lines = ["  ".join(value.ljust(width) for value, width in zip(row, widths)) for row in table]
    lines.insert(1, "  ".join("-" * width for width in widths))
    lines.insert(len(lines) - 1, lines[1])
    summary = report["summary"]
    lines.append(f"{summary['images']} images; discs not found: {summary['discs_not_found']}; "
                 f"weights: {report['provenance']['weights']} ({report['provenance']['weights_sha256'][:12]})")
    return "\n".join(lines)
