"""Clinical measurements from optic disc and cup masks, and overlap metrics."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class Measurements:
    """Cup and disc geometry in pixels of the image the masks belong to.

    ``vcdr`` (vertical cup-to-disc ratio) is the ratio of the cup's to the disc's
    vertical extent, the number clinicians read; ``area_cdr`` the ratio of areas.
    Both are NaN when no disc was found.
    """

    disc_found: bool
    vcdr: float
    area_cdr: float
    disc_area: int
    cup_area: int
    disc_centre_y: float
    disc_centre_x: float
    disc_vertical_diameter: int
    disc_horizontal_diameter: int
    cup_vertical_diameter: int
    cup_horizontal_diameter: int

    def as_dict(self) -> dict:
        return asdict(self)


def _extent(mask: np.ndarray, axis: int) -> int:
    """Number of rows (axis=0) or columns (axis=1) the mask occupies, end to end."""
    hits = np.flatnonzero(mask.any(axis=1 - axis))
    return int(hits[-1] - hits[0] + 1) if hits.size else 0


def measure(disc: np.ndarray, cup: np.ndarray) -> Measurements:
    """Measure disc and cup masks (any dtype; non-zero is inside). The cup counts only inside the disc."""
    disc = np.asarray(disc) != 0
    cup = (np.asarray(cup) != 0) & disc
    if disc.shape != cup.shape or disc.ndim != 2:
        raise ValueError(f"disc and cup must be 2D masks of one shape, got {disc.shape} and {cup.shape}")
    disc_area = int(disc.sum())
    cup_area = int(cup.sum())
    if disc_area == 0:
        nan = math.nan
        return Measurements(False, nan, nan, 0, cup_area, nan, nan, 0, 0, 0, 0)
    ys, xs = np.nonzero(disc)
    disc_v, disc_h = _extent(disc, 0), _extent(disc, 1)
    cup_v, cup_h = _extent(cup, 0), _extent(cup, 1)
    return Measurements(
        disc_found=True,
        vcdr=cup_v / disc_v,
        area_cdr=cup_area / disc_area,
        disc_area=disc_area,
        cup_area=cup_area,
        disc_centre_y=float(ys.mean()),
        disc_centre_x=float(xs.mean()),
        disc_vertical_diameter=disc_v,
        disc_horizontal_diameter=disc_h,
        cup_vertical_diameter=cup_v,
        cup_horizontal_diameter=cup_h,
    )


def dice(prediction: np.ndarray, truth: np.ndarray) -> float:
    """Dice coefficient of two masks; 1.0 when both are empty."""
    prediction, truth = np.asarray(prediction) != 0, np.asarray(truth) != 0
    total = int(prediction.sum()) + int(truth.sum())
    return 1.0 if total == 0 else 2.0 * int((prediction & truth).sum()) / total


def iou(prediction: np.ndarray, truth: np.ndarray) -> float:
    """Intersection over union of two masks; 1.0 when both are empty."""
    prediction, truth = np.asarray(prediction) != 0, np.asarray(truth) != 0
    union = int((prediction | truth).sum())
    return 1.0 if union == 0 else int((prediction & truth).sum()) / union


MAX_DISC_ASPECT = 1.5
"""Discs are round to vertically oval (tall / wide from 0.97 to 1.23 in the 101 Drishti-GS1 ground
truths); an outline beyond this ratio either way has most likely leaked along a vessel or stopped short."""


def disc_shape_warning(m: Measurements) -> str | None:
    """A message when the disc's outline is too elongated to be a disc, else None."""
    if not m.disc_found:
        return None
    tall, wide = m.disc_vertical_diameter, m.disc_horizontal_diameter
    if 1 / MAX_DISC_ASPECT <= tall / wide <= MAX_DISC_ASPECT:
        return None
    return f"implausible disc shape ({tall} x {wide} px, tall x wide): check the outline"
