"""How far to trust an outline: a per-image confidence from what the network itself shows.

Three signs, each in [0, 1], computed on the fine pass's disc-centred crop:

* *agreement*: Dice between the disc of the network's output and that of its coarser
  deep-supervision head (the decoder one level up).  On photos like its training data the
  two agree closely; on what it has not learnt to read they drift apart.
* *margin*: how decided the disc probability is around the outline: the mean of
  ``|2p - 1|`` in a band of a fifth of the disc's diameter around it.  A blurred, hesitant
  edge scores low.
* *shape*: how disc-like the outline is: its solidity (area over convex area) times a
  penalty for an aspect ratio beyond the 1:1.25 that real discs show.

The confidence is their product: any one sign of trouble pulls it down.  It is a score, not
a calibrated probability; ``training/confidence_study.py`` measures how well it separates
good from bad outlines and where the low-confidence threshold lies.

Beside it, *contrast* says whether the outlined region is brighter than the retina around it,
as an optic disc is: its mean brightness over that of a ring half a diameter wide around it,
both counted from the photo's black (1: no brighter).  Gain and offset leave it unchanged;
gamma does not (``training/disc_contrast_study.py`` measures it on photos with and without a
disc, a brightened camera included).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .measure import dice
from .postprocessing import largest_component

MIN_RING_INSIDE = 0.5
"""The share of the ring around a disc that must lie inside the photo for its contrast to be
measured: in a crop of 1.25 disc diameters about a third of it does, in one of 2 all of it."""


@dataclass(frozen=True)
class Quality:
    confidence: float
    agreement: float
    margin: float
    shape: float

    @classmethod
    def none(cls) -> Quality:
        return cls(0.0, 0.0, 0.0, 0.0)


def brightness_contrast(luminance: np.ndarray, disc: np.ndarray, outside: np.ndarray | None = None) -> float:
    """How many times brighter ``disc`` is than the ring half a diameter wide around it.

    ``luminance`` counts from the photo's black (0 is its darkest value), so that gain and
    offset change nothing.  ``outside``: pixels that are not part of the photo (padding beyond
    its border), left out of the ring.  NaN (not measured) when less than
    :data:`MIN_RING_INSIDE` of the ring lies inside the photo, as in a crop that is mostly
    disc, or when the ring is black.
    """
    rows, cols = np.nonzero(disc)
    if rows.size == 0:
        return float("nan")
    diameter = max(rows.max() - rows.min() + 1, cols.max() - cols.min() + 1)
    # The whole ring, also where it runs beyond the crop: that part is not known to be retina.
    margin = int(np.ceil(0.5 * diameter)) + 1
    ring = ndimage.distance_transform_edt(~np.pad(disc, margin)) <= 0.5 * diameter
    ring &= ~np.pad(disc, margin)
    known = np.pad(np.ones_like(disc) if outside is None else ~outside, margin)
    whole = np.count_nonzero(ring)
    ring &= known
    if np.count_nonzero(ring) < MIN_RING_INSIDE * whole:
        return float("nan")
    ring = ring[margin:-margin, margin:-margin]
    around = float(luminance[ring].mean()) if ring.any() else 0.0
    if around <= 0:
        return float("nan")
    return float(luminance[disc].mean()) / around


def _shape_score(disc: np.ndarray) -> float:
    from skimage.measure import regionprops

    props = regionprops(disc.astype(np.uint8))[0]
    solidity = float(props.solidity)
    rows, cols = np.nonzero(disc)
    tall, wide = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
    aspect = max(tall, wide) / min(tall, wide)
    return solidity * min(1.0, 1.25 / aspect) ** 2


def crop_quality(disc_probability: np.ndarray, deep_probability: np.ndarray | None,
                 threshold: float) -> Quality:
    """The signs and confidence of one crop's disc (``(s, s)`` probabilities of the fine pass)."""
    disc = largest_component(disc_probability > threshold)
    if disc.sum() < 9:
        return Quality.none()
    agreement = 1.0 if deep_probability is None else dice(disc, largest_component(deep_probability > threshold))
    rows, cols = np.nonzero(disc)
    diameter = max(rows.max() - rows.min() + 1, cols.max() - cols.min() + 1)
    width = max(1, int(round(0.1 * diameter)))
    band = ndimage.binary_dilation(disc, iterations=width) & ~ndimage.binary_erosion(disc, iterations=width)
    margin = float(np.abs(2 * disc_probability[band] - 1).mean()) if band.any() else 0.0
    shape = _shape_score(disc)
    return Quality(agreement * margin * shape, agreement, margin, shape)
