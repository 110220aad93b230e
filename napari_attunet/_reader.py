"""npe2 reader: disc and cup mask files opened as Labels layers.

Recognised by file name (so that ordinary photographs are never claimed):

* binary masks ``NAME_disc.png`` / ``NAME_cup.png`` (also ``_od`` / ``_oc``, PNG, TIFF, BMP):
  inside where they reach half their full scale (0/1, 0/255 and 0/65535 masks read as
  drawn; the engine's training reads them the same way, ``datasets.binary_mask``);
* Drishti-GS1 soft maps ``NAME_ODsegSoftmap.png`` / ``NAME_cupsegSoftmap.png``: inside where
  at least two of the four experts agree (>= 128);
* REFUGE-style maps ``NAME_refuge.png|bmp`` (255 background, 128 rim, 0 cup): two
  layers, disc and cup.  (Called directly, :func:`get_reader` also accepts any image in
  a ``Disc_Cup_Masks`` folder, REFUGE's own layout; napari only offers files by name.)

Layers are named like the segment widget's (``NAME optic disc``, ``NAME optic cup``),
so *Measure* and *Fine-tune* find them next to an image layer called ``NAME``.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ._layers.links import cup_layer_name, disc_layer_name
from ._layers.results import label_style

_BINARY = re.compile(r"^(?P<stem>.+?)[_-](?P<kind>disc|cup|od|oc)$", re.IGNORECASE)
_SOFTMAP = re.compile(r"^(?P<stem>.+?)_(?P<kind>OD|cup)segSoftmap$", re.IGNORECASE)
_REFUGE = re.compile(r"^(?P<stem>.+?)[_-]refuge$", re.IGNORECASE)


def _kind(path: Path) -> tuple[str, str] | None:
    """``(stem, 'disc'|'cup'|'refuge')`` for a recognised mask file name, else None."""
    name = path.stem
    for pattern in (_SOFTMAP, _BINARY):
        match = pattern.match(name)
        if match:
            kind = match["kind"].lower()
            return match["stem"], "disc" if kind in ("disc", "od") else "cup"
    match = _REFUGE.match(name)
    if match:
        return match["stem"], "refuge"
    if path.parent.name.lower() == "disc_cup_masks":
        return name, "refuge"
    return None


def get_reader(path):
    """npe2 reader hook: a reader function for recognised mask files, else None."""
    if isinstance(path, list):
        if not path or any(_kind(Path(str(p))) is None for p in path):
            return None
    elif _kind(Path(str(path))) is None:
        return None
    return read_masks


def _labels(mask: np.ndarray, name: str, role: str) -> tuple:
    return mask.astype(np.uint8), {"name": name, **label_style(role)}, "labels"


def _plane(array: np.ndarray) -> np.ndarray:
    if array.ndim == 3 and array.shape[-1] in (3, 4):
        array = array[..., 0]
    return array


def read_masks(path) -> list[tuple]:
    from .datasets import binary_mask
    from .image_files import decode_refuge_map, read_image

    paths = path if isinstance(path, list) else [path]
    layers = []
    for item in paths:
        item = Path(str(item))
        stem, kind = _kind(item)
        array = _plane(read_image(item))
        if kind == "refuge":
            disc, cup = decode_refuge_map(array)
            layers += [_labels(disc, disc_layer_name(stem), "disc"), _labels(cup, cup_layer_name(stem), "cup")]
            continue
        mask = binary_mask(array)
        name = disc_layer_name(stem) if kind == "disc" else cup_layer_name(stem)
        layers.append(_labels(mask, name, kind))
    return layers
