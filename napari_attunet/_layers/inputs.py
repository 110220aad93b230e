"""Checks on the image and label layers a widget is given, and the 2D planes and training pairs made from them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .links import cup_layer_name, disc_layer_name


def squeeze_multiscale(data: Any) -> Any:
    """The full-resolution level of a multiscale layer's data (a sequence of arrays).

    napari wraps the levels in ``MultiScaleData``, a Sequence but not a list, whose
    ``np.asarray`` is the *coarsest* level; so any non-array Sequence counts as levels.
    """
    if isinstance(data, Sequence) and not isinstance(data, (str, bytes)):
        if not data:
            raise ValueError("the image layer holds no data")
        return data[0]
    return data


def image_planes(data: Any, rgb: bool = False, name: str = "image") -> tuple[list[np.ndarray], tuple[int, ...]]:
    """Split an image layer's data into the 2D images to segment.

    Args:
        data: the layer's data: ``(H, W)``, ``(H, W, 3|4)`` with ``rgb``, or a stack ``(..., H, W[, C])``.
        rgb: whether the last axis holds colour channels (napari's ``layer.rgb``).
        name: the layer's name, for messages.

    Returns:
        ``(planes, stack_shape)``: the 2D (grayscale or RGB) images, and the shape of the
        leading stack axes (``()`` for a single image).  A stack ``(T, Z, H, W)`` gives
        ``T * Z`` planes and ``stack_shape == (T, Z)``.

    Raises:
        ValueError: with a message fit for a person (empty image, wrong dtype, ...).
    """
    array = np.asarray(squeeze_multiscale(data))
    if array.dtype == bool:
        array = array.astype(np.uint8)
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise ValueError(f"layer '{name}': pixels of type {array.dtype} cannot be segmented; "
                         "open a fundus photograph (grayscale or RGB)")
    spatial = 3 if rgb else 2
    if array.ndim < spatial:
        raise ValueError(f"layer '{name}' of shape {array.shape} is not an image")
    if rgb and array.shape[-1] not in (3, 4):
        raise ValueError(f"layer '{name}': an RGB image needs 3 or 4 channels, got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"layer '{name}' is empty (shape {array.shape})")
    stack_shape = tuple(int(n) for n in array.shape[: array.ndim - spatial])
    plane_shape = array.shape[array.ndim - spatial:]
    planes = list(array.reshape((-1,) + plane_shape)) if stack_shape else [array]
    for index, plane in enumerate(planes):
        if not np.any(plane != plane.flat[0]):
            where = f" (slice {np.unravel_index(index, stack_shape)})" if stack_shape else ""
            raise ValueError(f"layer '{name}'{where} is empty: every pixel has the same value")
    return planes, stack_shape



def label_array(data: Any, what: str) -> np.ndarray:
    array = np.asarray(squeeze_multiscale(data))
    if array.ndim < 2:
        raise ValueError(f"the {what} labels are not an image (shape {array.shape})")
    return array



def training_pairs(image_data: Any, rgb: bool, disc_data: Any, cup_data: Any,
                   name: str = "image") -> tuple[list[tuple[np.ndarray, np.ndarray, np.ndarray]], int]:
    """``(image, disc, cup)`` training triples from an image layer and its two label layers.

    Stacks give one triple per slice; slices whose disc is empty are skipped (their
    number is returned too).  Raises ``ValueError`` for mismatched shapes or when no
    slice has a disc.
    """
    planes, stack_shape = image_planes(image_data, rgb, name)
    disc = label_array(disc_data, f"'{disc_layer_name(name)}'")
    cup = label_array(cup_data, f"'{cup_layer_name(name)}'")
    plane_shape = planes[0].shape[:2]
    expected = stack_shape + plane_shape
    for what, labels in (("disc", disc), ("cup", cup)):
        if labels.shape != expected:
            raise ValueError(f"'{name}': the {what} labels have shape {labels.shape}, "
                             f"but the image has {expected}; they must cover the image pixel for pixel")
    discs = disc.reshape((-1,) + plane_shape)
    cups = cup.reshape((-1,) + plane_shape)
    pairs, skipped = [], 0
    for plane, d, c in zip(planes, discs, cups):
        if not np.any(d):
            skipped += 1
            continue
        pairs.append((plane, d != 0, (c != 0) & (d != 0)))
    if not pairs:
        raise ValueError(f"'{name}': the disc labels are empty; paint the optic disc (and cup) first")
    return pairs, skipped
