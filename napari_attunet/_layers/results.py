"""napari layer data for segmentation results: the LayerDataTuples the widgets and ``demo --view`` add.

Everything here is plain numpy and Python: no Qt, no napari import.  Layers are
described as napari *LayerDataTuples* ``(data, kwargs, layer_type)``, which napari
(``viewer.add_<layer_type>(data, **kwargs)`` or ``Layer.create``) turns into layers.
The widgets, the writers and the ``demo --view`` command share these functions, and
tests call them without a viewer or a thread.

Result layers (named after their photo when they are made; renaming any layer
keeps them working, because the link is an identifier in their metadata):

* ``<image> optic disc``: Labels, uint8, photo-sized, 1 inside the disc (cup included), red;
* ``<image> optic cup``: Labels, uint8, photo-sized, 1 inside the cup, yellow;
* ``<image> attention <k>``: Image, float32 in [0, 1], one per attention gate
  (k = 1 is the finest), 'inferno' colormap, additive blending, added hidden; only
  the analysed crop around the disc (the map is 0 elsewhere), placed with ``translate``;
* ``<image> disc probability`` / ``<image> cup probability``: Image, float32 in [0, 1]
  (optional), cropped like the attention maps.

Every layer's ``metadata[METADATA_KEY]`` holds ``{"role", "source", "photo", ...}``:
``photo`` is the identifier the photo layer carries in its own
``metadata[METADATA_KEY] == {"role": "photo", "id": ...}``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .links import (
    METADATA_KEY,
    attention_layer_name,
    cup_layer_name,
    disc_layer_name,
    new_photo_id,
    probability_layer_name,
)

DISC_COLOUR = (1.0, 0.0, 0.0, 1.0)
"""Red, as in the blog's figures."""
CUP_COLOUR = (1.0, 1.0, 0.0, 1.0)
"""Yellow."""
TRANSPARENT = (0.0, 0.0, 0.0, 0.0)
ATTENTION_COLORMAP = "inferno"
PROBABILITY_COLORMAP = "viridis"


def label_style(role: str) -> dict:
    """Colour and opacity of a ``"disc"`` or ``"cup"`` Labels layer (results and masks read from files).

    Filled at low opacity, so that the photo stays readable inside.  (napari's contour mode
    would recompute the outline of the whole photo on every brush stroke: about 0.3 s
    for a 1411 x 1411 photo on a 2-core machine.)
    """
    colour = DISC_COLOUR if role == "disc" else CUP_COLOUR
    return {"colormap": {None: colour, 0: TRANSPARENT, 1: colour}, "opacity": 0.4 if role == "disc" else 0.5}



def _stack(arrays: list[np.ndarray], stack_shape: tuple[int, ...], dtype) -> np.ndarray:
    if not stack_shape:
        return np.asarray(arrays[0]).astype(dtype, copy=False)
    stacked = np.stack([np.asarray(a).astype(dtype, copy=False) for a in arrays])
    return stacked.reshape(stack_shape + stacked.shape[1:])


def _found(result) -> bool:
    return bool(result.measurements.disc_found)


def measurement_record(results: Sequence, stack_shape: tuple[int, ...] = ()) -> dict | list[dict]:
    """Measurements of one result (a dict) or of a stack (a list of dicts with ``slice``)."""
    if not stack_shape:
        return dict(results[0].measurements.as_dict())
    out = []
    for index, result in enumerate(results):
        row = {"slice": [int(i) for i in np.unravel_index(index, stack_shape)]}
        row.update(result.measurements.as_dict())
        out.append(row)
    return out


def analysed_box(results: Sequence, plane_shape: Sequence[int]) -> tuple[int, int, int, int]:
    """The part of the photo outside which every map of ``results`` is 0: ``(top, left, bottom, right)``.

    The union of the results' crop boxes (one per slice of a stack), clipped to the photo;
    the whole photo when no result has a crop.
    """
    height, width = int(plane_shape[0]), int(plane_shape[1])
    boxes = [r.crop_box for r in results if r.crop_box is not None]
    if not boxes:
        return 0, 0, height, width
    top = max(0, min(int(b[0]) for b in boxes))
    left = max(0, min(int(b[1]) for b in boxes))
    bottom = min(height, max(int(b[2]) for b in boxes))
    right = min(width, max(int(b[3]) for b in boxes))
    if bottom <= top or right <= left:
        return 0, 0, height, width
    return top, left, bottom, right


def crop_translate(scale: Sequence[float] | None, translate: Sequence[float] | None,
                   offset: Sequence[float]) -> tuple[float, ...]:
    """``translate`` of a layer whose data start ``offset`` pixels into a photo with ``scale`` and ``translate``.

    For photos without rotation or shear; the widget composes the full transform.
    """
    offset = np.asarray(offset, float)
    scale = np.ones_like(offset) if scale is None else np.asarray(scale, float)
    translate = np.zeros_like(offset) if translate is None else np.asarray(translate, float)
    return tuple(float(t) for t in translate + scale * offset)


def result_layer_data(result, image_name: str, *, photo_id: str | None = None,
                      scale: Sequence[float] | None = None, translate: Sequence[float] | None = None,
                      show_probabilities: bool = False,
                      stack_shape: Sequence[int] = ()) -> list[tuple[np.ndarray, dict, str]]:
    """napari LayerDataTuples for a :class:`~napari_attunet.inference.SegmentationResult`.

    Args:
        result: one ``SegmentationResult``, or a list of them for a stack (with ``stack_shape``).
        image_name: name of the source image layer; output layers are named after it.
        photo_id: the photo layer's link identifier (see :func:`new_photo_id`); None: a new one.
        scale, translate: the source layer's scale and translate, so that the outputs lie
            exactly on the photo.  For a stack, give all axes.
        show_probabilities: also return the disc and cup probability maps.
        stack_shape: leading axes of a stack (``()`` for one image).

    Returns:
        ``[(data, kwargs, layer_type), ...]`` in the order to add them (bottom to top):
        the attention maps (when the result has them and a disc was found, hidden), the
        probability maps (on request), the disc labels and the cup labels.
        The disc and cup labels are photo-sized (the brush works anywhere); the maps
        cover only :func:`analysed_box` (0 elsewhere), their ``translate`` places them, and
        ``metadata[METADATA_KEY]["offset"]`` says where they start in photo pixels.
        Each layer's ``metadata`` holds the measurements, the confidence, the provenance,
        the messages and ``metadata[METADATA_KEY] = {"role", "source", "photo", ...}``.
    """
    results = list(result) if isinstance(result, (list, tuple)) else [result]
    stack_shape = tuple(int(n) for n in stack_shape)
    if not results:
        raise ValueError("no segmentation result")
    if int(np.prod(stack_shape)) != len(results) and stack_shape:
        raise ValueError(f"{len(results)} results do not fill a stack of shape {stack_shape}")
    if len(results) > 1 and not stack_shape:
        stack_shape = (len(results),)
    photo_id = photo_id or new_photo_id()
    first = results[0]
    measurements = measurement_record(results, stack_shape)
    messages = sorted({m for r in results for m in r.messages})
    confidence = [float(r.confidence) for r in results] if stack_shape else float(first.confidence)
    labels_place: dict[str, Any] = {}
    if scale is not None:
        labels_place["scale"] = tuple(float(s) for s in scale)
    if translate is not None:
        labels_place["translate"] = tuple(float(t) for t in translate)
    top, left, bottom, right = analysed_box(results, first.disc.shape)
    offset = (0,) * len(stack_shape) + (top, left)
    maps_place = {**labels_place, "translate": crop_translate(scale, translate, offset)}

    def metadata(role: str, **extra) -> dict:
        return {
            METADATA_KEY: {"role": role, "source": image_name, "photo": photo_id, **extra},
            "measurements": measurements,
            "confidence": confidence,
            "provenance": dict(first.provenance),
            "messages": list(messages),
            "crop_box": [list(r.crop_box) if r.crop_box is not None else None for r in results]
            if stack_shape else (list(first.crop_box) if first.crop_box is not None else None),
        }

    def cropped(arrays: list[np.ndarray]) -> np.ndarray:
        return _stack([np.asarray(a)[top:bottom, left:right] for a in arrays], stack_shape, np.float32)

    layers: list[tuple[np.ndarray, dict, str]] = []
    gates = len(first.attention)
    if gates and any(_found(r) for r in results):
        for k in range(gates):
            layers.append((cropped([r.attention[k] for r in results]), {
                "name": attention_layer_name(image_name, k + 1),
                "colormap": ATTENTION_COLORMAP,
                "blending": "additive",
                "contrast_limits": (0.0, 1.0),
                "opacity": 0.7,
                "visible": False,
                "metadata": metadata("attention", gate=k + 1, gates=gates, offset=list(offset)),
                **maps_place,
            }, "image"))
    if show_probabilities:
        for structure in ("disc", "cup"):
            layers.append((cropped([getattr(r, f"{structure}_probability") for r in results]), {
                "name": probability_layer_name(image_name, structure),
                "colormap": PROBABILITY_COLORMAP,
                "blending": "additive",
                "contrast_limits": (0.0, 1.0),
                "opacity": 0.6,
                "metadata": metadata(f"{structure} probability", offset=list(offset)),
                **maps_place,
            }, "image"))
    for role, name in (("disc", disc_layer_name(image_name)), ("cup", cup_layer_name(image_name))):
        masks = _stack([getattr(r, role) for r in results], stack_shape, np.uint8)
        layers.append((masks, {"name": name, **label_style(role), "metadata": metadata(role),
                               **labels_place}, "labels"))
    return layers


def disc_view(record: dict | list[dict], stack_index: int | None = None
              ) -> tuple[int | None, tuple[float, float], float] | None:
    """Where the disc lies, for the camera: ``(slice, (centre y, centre x), extent)`` in photo pixels.

    ``record``: a measurement record (:func:`measurement_record`).  For a stack, the slice
    ``stack_index`` (flat) when it has a disc, else the first slice that has one.  The
    extent is the larger of the disc's vertical and horizontal diameters.  None without a disc.
    """
    records = record if isinstance(record, list) else [record]
    order = list(range(len(records)))
    if stack_index is not None and 0 <= stack_index < len(records):
        order.insert(0, order.pop(stack_index))
    for index in order:
        item = records[index]
        if item.get("disc_found"):
            extent = float(max(item["disc_vertical_diameter"], item["disc_horizontal_diameter"]))
            return (index if isinstance(record, list) else None,
                    (float(item["disc_centre_y"]), float(item["disc_centre_x"])), extent)
    return None

