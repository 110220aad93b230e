"""Measuring (possibly edited) label layers, the widget's result text, and the CSV export."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .inputs import label_array


def measure_labels(disc_data: Any, cup_data: Any):
    """Measure (possibly edited) disc and cup labels; any non-zero label counts as inside.

    Returns a :class:`~napari_attunet.measure.Measurements` for 2D labels, or a list of
    ``(slice index, Measurements)`` for stacks (leading axes).  Cup pixels outside the
    disc are ignored, as in :func:`napari_attunet.measure.measure`.
    """
    from ..measure import measure

    disc = label_array(disc_data, "disc")
    cup = label_array(cup_data, "cup")
    if disc.shape != cup.shape:
        raise ValueError(f"the disc labels {disc.shape} and the cup labels {cup.shape} differ in shape")
    if disc.ndim == 2:
        return measure(disc != 0, cup != 0)
    stack_shape = disc.shape[:-2]
    discs = disc.reshape((-1,) + disc.shape[-2:])
    cups = cup.reshape((-1,) + cup.shape[-2:])
    return [(tuple(int(i) for i in np.unravel_index(n, stack_shape)), measure(d != 0, c != 0))
            for n, (d, c) in enumerate(zip(discs, cups))]


def measurements_as_record(measured) -> dict | list[dict]:
    """:func:`measure_labels` output -> what layer metadata stores (see :func:`measurement_record`)."""
    if isinstance(measured, list):
        return [{"slice": list(index), **m.as_dict()} for index, m in measured]
    return measured.as_dict()


def cup_outside_disc(disc_data: Any, cup_data: Any) -> int:
    """Number of cup pixels outside the disc (ignored by the measurements)."""
    disc = label_array(disc_data, "disc")
    cup = label_array(cup_data, "cup")
    if disc.shape != cup.shape:
        return 0
    return int(np.count_nonzero((cup != 0) & (disc == 0)))


def _fmt(value: float, digits: int = 3) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def format_measurements(record: dict | list[dict], confidence: float | list[float] | None = None) -> str:
    """A short human-readable summary of a measurement record for the widget (short lines, no wrapping).

    ``confidence``: the network's confidence in the disc outline (one per slice for a stack);
    None after measuring edited labels, which it no longer describes.
    """
    if isinstance(record, list):
        found = [r for r in record if r.get("disc_found")]
        if not found:
            return f"{len(record)} slices: no optic disc found"
        vcdrs = [r["vcdr"] for r in found]
        lines = [f"{len(record)} slices, disc found in {len(found)}",
                 f"vCDR mean {_fmt(float(np.mean(vcdrs)))}",
                 f"min {_fmt(min(vcdrs))}, max {_fmt(max(vcdrs))}"]
        if isinstance(confidence, list) and confidence:
            lines.append(f"confidence min {_fmt(min(confidence), 3)}")
        return "\n".join(lines + ["per-slice values: Export CSV"])
    if not record.get("disc_found"):
        return "no optic disc found"
    first = f"vCDR {_fmt(record['vcdr'])}   area CDR {_fmt(record['area_cdr'])}"
    lines = [first]
    if isinstance(confidence, (int, float)):
        lines.append(f"confidence {_fmt(float(confidence), 3)}")
    lines += [f"disc {record['disc_vertical_diameter']} x {record['disc_horizontal_diameter']} px (v x h)",
              f"cup {record['cup_vertical_diameter']} x {record['cup_horizontal_diameter']} px (v x h)",
              f"areas: disc {record['disc_area']} px, cup {record['cup_area']} px"]
    return "\n".join(lines)


RESULT_TEXT_LINES = 5
"""Lines the widget's result text needs at most (:func:`format_measurements`)."""


# --------------------------------------------------------------------------- CSV export


CSV_COLUMNS = [
    "image", "slice", "source", "confidence", "disc_found", "vcdr", "area_cdr", "disc_area", "cup_area",
    "disc_centre_y", "disc_centre_x", "disc_vertical_diameter", "disc_horizontal_diameter",
    "cup_vertical_diameter", "cup_horizontal_diameter",
    "package_version", "weights", "weights_sha256", "disc_threshold", "cup_threshold", "device",
]


def measurement_rows(image_name: str, record: dict | list[dict], provenance: dict, source: str,
                     confidence: float | list[float] | None = None) -> list[dict]:
    """CSV rows for one image's measurement record; ``source`` says ``network`` or ``edited labels``.

    ``confidence`` (the network's, one per slice for a stack) is written for ``network`` rows only.
    """
    records = record if isinstance(record, list) else [record]
    confidences = confidence if isinstance(confidence, list) else [confidence] * len(records)
    rows = []
    for item, score in zip(records, confidences):
        row = {"image": image_name, "source": source, **provenance, **item}
        if score is not None and source == "network":
            row["confidence"] = round(float(score), 3)
        if "slice" in item:
            row["slice"] = "/".join(str(i) for i in item["slice"])
        rows.append(row)
    return rows


def csv_text(rows: list[dict]) -> str:
    """CSV with :data:`CSV_COLUMNS` (NaN written as an empty cell)."""
    from ..image_files import rows_to_csv

    return rows_to_csv(rows, CSV_COLUMNS)

