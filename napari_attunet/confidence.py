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
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .measure import dice
from .postprocessing import largest_component


@dataclass(frozen=True)
class Quality:
    confidence: float
    agreement: float
    margin: float
    shape: float

    @classmethod
    def none(cls) -> Quality:
        return cls(0.0, 0.0, 0.0, 0.0)


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
