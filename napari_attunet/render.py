"""Pictures of results: overlays (disc red, cup yellow) and attention maps as PNG-ready arrays."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

DISC_COLOUR = (255, 0, 0)
CUP_COLOUR = (255, 255, 0)


def _outline(mask: np.ndarray, width: int) -> np.ndarray:
    eroded = ndimage.binary_erosion(mask, iterations=width)
    return mask & ~eroded


def overlay(image: np.ndarray, disc: np.ndarray, cup: np.ndarray, alpha: float = 0.3) -> np.ndarray:
    """RGB uint8 picture: the photo with the disc tinted red and the cup yellow, outlines drawn solid."""
    from .datasets import rgb_uint8

    picture = rgb_uint8(image).astype(np.float32)
    width = max(1, round(max(disc.shape) / 500))
    for mask, colour in ((disc & ~cup, DISC_COLOUR), (cup, CUP_COLOUR)):
        picture[mask] = (1 - alpha) * picture[mask] + alpha * np.asarray(colour, np.float32)
    for mask, colour in ((disc, DISC_COLOUR), (cup, CUP_COLOUR)):
        picture[_outline(mask, width)] = colour
    return picture.astype(np.uint8)


def attention_to_uint8(attention: np.ndarray) -> np.ndarray:
    """Attention coefficients in [0, 1] -> uint8 0..255 (a plain grey PNG keeps the values readable)."""
    return np.round(np.clip(attention, 0.0, 1.0) * 255).astype(np.uint8)
