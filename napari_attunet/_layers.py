"""napari layer data for segmentation results, and the pure logic behind the widgets.

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

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

DISC_COLOUR = (1.0, 0.0, 0.0, 1.0)
"""Red, as in the blog's figures."""
CUP_COLOUR = (1.0, 1.0, 0.0, 1.0)
"""Yellow."""
TRANSPARENT = (0.0, 0.0, 0.0, 0.0)
ATTENTION_COLORMAP = "inferno"
PROBABILITY_COLORMAP = "viridis"
METADATA_KEY = "napari_attunet"
"""Key in a layer's metadata holding ``{"role", "source", "photo", ...}`` for this plugin's layers."""
PHOTO_ROLE = "photo"
"""Role of a photo layer that has results: its ``metadata[METADATA_KEY]`` is ``{"role": "photo", "id": ...}``."""
LABEL_ROLES = ("disc", "cup")


# --------------------------------------------------------------------------- links to the photo


def new_photo_id() -> str:
    """A fresh identifier linking a photo layer to its result layers."""
    import uuid

    return uuid.uuid4().hex


def plugin_entry(metadata: Any) -> dict:
    """``metadata[METADATA_KEY]`` of a layer (an empty dict for layers this plugin did not tag)."""
    entry = metadata.get(METADATA_KEY) if isinstance(metadata, dict) else None
    return entry if isinstance(entry, dict) else {}


def is_photo_metadata(metadata: Any) -> bool:
    """Whether a layer with this metadata can be segmented (not one of the plugin's own maps)."""
    role = plugin_entry(metadata).get("role")
    return role is None or role == PHOTO_ROLE


def with_link(metadata: Any, role: str, photo_id: str, source: str) -> dict:
    """``metadata`` (copied) with its plugin entry pointing at the photo ``photo_id`` in ``role``."""
    metadata = dict(metadata) if isinstance(metadata, dict) else {}
    metadata[METADATA_KEY] = {**plugin_entry(metadata), "role": role, "photo": photo_id, "source": source}
    return metadata


# --------------------------------------------------------------------------- names


def disc_layer_name(image_name: str) -> str:
    return f"{image_name} optic disc"


def cup_layer_name(image_name: str) -> str:
    return f"{image_name} optic cup"


def attention_layer_name(image_name: str, gate: int) -> str:
    """``gate`` counts from 1 (the finest gate)."""
    return f"{image_name} attention {gate}"


def probability_layer_name(image_name: str, structure: str) -> str:
    return f"{image_name} {structure} probability"


def output_layer_names(image_name: str, gates: int, probabilities: bool = False) -> list[str]:
    names = [attention_layer_name(image_name, k) for k in range(1, gates + 1)]
    if probabilities:
        names += [probability_layer_name(image_name, "disc"), probability_layer_name(image_name, "cup")]
    return names + [disc_layer_name(image_name), cup_layer_name(image_name)]


def label_style(role: str) -> dict:
    """Colour and opacity of a ``"disc"`` or ``"cup"`` Labels layer (results and masks read from files).

    Filled at low opacity, so that the photo stays readable inside.  (napari's contour mode
    would recompute the outline of the whole photo on every brush stroke: about 0.3 s
    for a 1411 x 1411 photo on a 2-core machine.)
    """
    colour = DISC_COLOUR if role == "disc" else CUP_COLOUR
    return {"colormap": {None: colour, 0: TRANSPARENT, 1: colour}, "opacity": 0.4 if role == "disc" else 0.5}


# --------------------------------------------------------------------------- input images


def _squeeze_multiscale(data: Any) -> Any:
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
    array = np.asarray(_squeeze_multiscale(data))
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


# --------------------------------------------------------------------------- results -> layers


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


# --------------------------------------------------------------------------- measuring edited labels


def _label_array(data: Any, what: str) -> np.ndarray:
    array = np.asarray(_squeeze_multiscale(data))
    if array.ndim < 2:
        raise ValueError(f"the {what} labels are not an image (shape {array.shape})")
    return array


def measure_labels(disc_data: Any, cup_data: Any):
    """Measure (possibly edited) disc and cup labels; any non-zero label counts as inside.

    Returns a :class:`~napari_attunet.measure.Measurements` for 2D labels, or a list of
    ``(slice index, Measurements)`` for stacks (leading axes).  Cup pixels outside the
    disc are ignored, as in :func:`napari_attunet.measure.measure`.
    """
    from .measure import measure

    disc = _label_array(disc_data, "disc")
    cup = _label_array(cup_data, "cup")
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
    disc = _label_array(disc_data, "disc")
    cup = _label_array(cup_data, "cup")
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
    from .imageio import rows_to_csv

    return rows_to_csv(rows, CSV_COLUMNS)


# --------------------------------------------------------------------------- training pairs


def training_pairs(image_data: Any, rgb: bool, disc_data: Any, cup_data: Any,
                   name: str = "image") -> tuple[list[tuple[np.ndarray, np.ndarray, np.ndarray]], int]:
    """``(image, disc, cup)`` training triples from an image layer and its two label layers.

    Stacks give one triple per slice; slices whose disc is empty are skipped (their
    number is returned too).  Raises ``ValueError`` for mismatched shapes or when no
    slice has a disc.
    """
    planes, stack_shape = image_planes(image_data, rgb, name)
    disc = _label_array(disc_data, f"'{disc_layer_name(name)}'")
    cup = _label_array(cup_data, f"'{cup_layer_name(name)}'")
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
