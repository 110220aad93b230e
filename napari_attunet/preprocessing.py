"""Turning user images into network input: validation, colour handling, crops, resizing.

Everything here works on torch tensors so that the same code serves inference
(on any device) and training.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

MIN_SIDE = 32
"""Images smaller than this (height or width, pixels) are rejected."""


def validate_image(image) -> np.ndarray:
    """Return ``image`` as an ``(H, W)`` or ``(H, W, C)`` array or raise ``ValueError``.

    Accepts grayscale, RGB and RGBA in any integer or floating dtype.
    """
    array = np.asarray(image)
    if array.dtype == bool:
        array = array.astype(np.uint8)
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise ValueError(f"image dtype {array.dtype} is not supported; expected integer or float pixels")
    if array.ndim == 3 and array.shape[-1] not in (1, 3, 4):
        raise ValueError(
            f"image of shape {array.shape} looks like a stack or volume; expected one 2D image "
            "(H, W), (H, W, 3) or (H, W, 4); segment the slices one by one"
        )
    if array.ndim not in (2, 3):
        raise ValueError(
            f"image of shape {array.shape} is not a single 2D image; expected (H, W), (H, W, 3) or (H, W, 4)"
        )
    height, width = array.shape[:2]
    if min(height, width) < MIN_SIDE:
        raise ValueError(f"image of {height} x {width} pixels is too small; at least {MIN_SIDE} x {MIN_SIDE} is needed")
    if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
        raise ValueError("image contains NaN or infinite values")
    return array


def standardise(batch: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Per image and channel zero mean, unit variance: removes camera gain and colour casts."""
    mean = batch.mean(dim=(-2, -1), keepdim=True)
    std = batch.std(dim=(-2, -1), keepdim=True)
    return (batch - mean) / (std + eps)


def disc_geometry(disc: np.ndarray) -> tuple[float, float, float] | None:
    """Centre (y, x) and diameter (larger extent) of a disc mask, in its pixels; None when empty."""
    if not disc.any():
        return None
    ys, xs = np.nonzero(disc)
    diameter = max(ys.max() - ys.min() + 1, xs.max() - xs.min() + 1)
    return float(ys.mean()), float(xs.mean()), float(diameter)


def crop_box(centre_yx: tuple[float, float], side: float) -> tuple[int, int, int, int]:
    """Square box ``(top, left, bottom, right)`` of ``side`` pixels around a centre (may leave the image)."""
    half = side / 2.0
    top = int(round(centre_yx[0] - half))
    left = int(round(centre_yx[1] - half))
    size = max(int(round(side)), 1)
    return top, left, top + size, left + size


def crop_padded(image: torch.Tensor, box: tuple[int, int, int, int], fill: float = 0) -> torch.Tensor:
    """Cut ``box`` from ``(C, H, W)``; parts outside the image get ``fill``.

    For photos, ``fill`` is the photo's black (its darkest value, see :func:`black_level`),
    like a fundus border, so that an intensity offset cannot change the result.
    """
    top, left, bottom, right = box
    _, height, width = image.shape
    inner = image[:, max(top, 0) : min(bottom, height), max(left, 0) : min(right, width)]
    pad = (max(-left, 0), max(right - width, 0), max(-top, 0), max(bottom - height, 0))
    if any(pad):
        inner = F.pad(inner, pad, value=fill)
    return inner


def black_level(image: torch.Tensor) -> float:
    """The darkest value of a ``(C, H, W)`` photo: what padding beyond its border is filled with."""
    return float(image.amin())


def resize(batch: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of ``(N, C, H, W)`` with antialiasing when shrinking."""
    if tuple(batch.shape[-2:]) == tuple(size):
        return batch
    shrinking = batch.shape[-2] > size[0] or batch.shape[-1] > size[1]
    if shrinking and batch.device.type == "mps":
        return F.interpolate(batch, size=size, mode="area")
    return F.interpolate(batch, size=size, mode="bilinear", align_corners=False, antialias=shrinking)


def square_pad_box(height: int, width: int) -> tuple[int, int, int, int]:
    """The centred square box that holds the whole image (used for the whole-image pass)."""
    return crop_box((height / 2.0, width / 2.0), max(height, width))
