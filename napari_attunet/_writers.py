"""npe2 writers for label layers: binary masks (PNG/TIFF) and REFUGE-style disc/cup maps.

* one Labels layer -> a binary mask, 0 outside and 255 inside (any non-zero label), at the
  layer's pixel size (the image's size for the segment widget's layers); PNG or TIFF
  (a TIFF may hold a stack);
* a disc and a cup Labels layer selected together -> one REFUGE-style map: 255
  background, 128 disc rim, 0 cup (PNG or BMP).

Every file is written through :func:`napari_attunet.image_files.write_image`: a temporary
file in the same folder, then an atomic rename, so a failure never leaves half a file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ._layers.inputs import squeeze_multiscale
from ._layers.links import METADATA_KEY

MASK_SUFFIXES = (".png", ".tif", ".tiff")
MAP_SUFFIXES = (".png", ".bmp")


def _array(data: Any) -> np.ndarray:
    return np.asarray(squeeze_multiscale(data))  # multiscale: the full-resolution level


def _check_suffix(path: str, allowed: tuple[str, ...], what: str) -> Path:
    path = Path(path)
    if path.suffix.lower() not in allowed:
        raise ValueError(f"{path.name}: {what} can be saved as {', '.join(allowed)}, not {path.suffix or 'no suffix'}")
    return path


def mask_image(data: Any) -> np.ndarray:
    """Labels data -> uint8 mask (0 outside, 255 inside any label)."""
    from .image_files import mask_to_uint8

    array = _array(data)
    if array.ndim < 2:
        raise ValueError(f"labels of shape {array.shape} are not an image")
    return mask_to_uint8(array)


def write_mask(path: str, data: Any, meta: dict) -> list[str]:
    """Save one Labels layer as a binary mask (0 / 255); a stack only as TIFF."""
    from .image_files import write_image

    target = _check_suffix(path, MASK_SUFFIXES, "a binary mask")
    mask = mask_image(data)
    if mask.ndim > 2 and target.suffix.lower() == ".png":
        raise ValueError(f"{target.name}: the labels are a stack of shape {mask.shape}; "
                         "save stacks as .tif, or one slice at a time")
    write_image(target, mask)
    return [str(target)]


def _role(layer: tuple) -> str | None:
    data, meta, _ = layer
    own = (meta.get("metadata") or {}).get(METADATA_KEY) or {}
    if own.get("role") in ("disc", "cup"):
        return own["role"]
    name = str(meta.get("name", "")).lower()
    if name.endswith(("optic cup", "_cup", " cup", "_oc")):
        return "cup"
    if name.endswith(("optic disc", "_disc", " disc", "_od")):
        return "disc"
    return None


def disc_and_cup(layer_data: list[tuple]) -> tuple[np.ndarray, np.ndarray]:
    """Pick the disc and the cup among two Labels layers: by role or name, else by area."""
    if len(layer_data) != 2:
        raise ValueError(f"a REFUGE-style map needs exactly two label layers (disc and cup), got {len(layer_data)}")
    roles = [_role(layer) for layer in layer_data]
    arrays = [_array(layer[0]) for layer in layer_data]
    if sorted(r for r in roles if r) == ["cup", "disc"]:
        disc = arrays[roles.index("disc")]
        cup = arrays[roles.index("cup")]
    else:  # the cup lies inside the disc: the larger one is the disc
        areas = [int(np.count_nonzero(a)) for a in arrays]
        disc, cup = (arrays[0], arrays[1]) if areas[0] >= areas[1] else (arrays[1], arrays[0])
    if disc.shape != cup.shape:
        raise ValueError(f"the disc {disc.shape} and cup {cup.shape} label layers differ in shape")
    if disc.ndim != 2:
        raise ValueError(f"a REFUGE-style map is one 2D image; these labels have shape {disc.shape}")
    return disc, cup


def write_refuge_map(path: str, layer_data: list[tuple]) -> list[str]:
    """Save a disc and a cup Labels layer as one REFUGE-style map (255 / 128 / 0)."""
    from .image_files import refuge_map, write_image

    target = _check_suffix(path, MAP_SUFFIXES, "a REFUGE-style map")
    disc, cup = disc_and_cup(layer_data)
    write_image(target, refuge_map(disc, cup))
    return [str(target)]
