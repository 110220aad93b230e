"""napari layer data for segmentation results, and the pure logic behind the widgets.

Everything here is plain numpy and Python: no Qt, no napari import.  Layers are
described as napari *LayerDataTuples* ``(data, kwargs, layer_type)``, which napari
(``viewer.add_<layer_type>(data, **kwargs)`` or ``Layer.create``) turns into layers.
The widgets, the writers and the ``demo --view`` command share these functions, and
tests call them without a viewer or a thread.

Layer naming (the widgets find layers by these names):

* ``<image> optic disc``: Labels, uint8, 1 inside the disc (cup included), red;
* ``<image> optic cup``: Labels, uint8, 1 inside the cup, yellow;
* ``<image> attention <k>``: Image, float32 in [0, 1], one per attention gate
  (k = 1 is the finest), 'inferno' colormap, additive blending over the photo;
* ``<image> disc probability`` / ``<image> cup probability``: Image, float32 in [0, 1] (optional).
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
"""Key in a layer's metadata holding ``{"role", "source", ...}`` for this plugin's layers."""


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
    """Colour and opacity of a ``"disc"`` or ``"cup"`` Labels layer (results and masks read from files)."""
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


def result_layer_data(result, image_name: str, *, scale: Sequence[float] | None = None,
                      translate: Sequence[float] | None = None, show_probabilities: bool = False,
                      stack_shape: Sequence[int] = ()) -> list[tuple[np.ndarray, dict, str]]:
    """napari LayerDataTuples for a :class:`~napari_attunet.inference.SegmentationResult`.

    Args:
        result: one ``SegmentationResult``, or a list of them for a stack (with ``stack_shape``).
        image_name: name of the source image layer; output layers are named after it.
        scale, translate: the source layer's (spatial) scale and translate, so that the
            outputs lie exactly on the photo.  For a stack, give all axes.
        show_probabilities: also return the disc and cup probability maps.
        stack_shape: leading axes of a stack (``()`` for one image).

    Returns:
        ``[(data, kwargs, layer_type), ...]`` in the order to add them (bottom to top):
        the attention maps (when the result has them and a disc was found), the
        probability maps (on request), the disc labels and the cup labels.  Each layer's
        ``metadata`` holds the measurements, the provenance, the messages and
        ``metadata["napari_attunet"] = {"role", "source", ...}``.
    """
    results = list(result) if isinstance(result, (list, tuple)) else [result]
    stack_shape = tuple(int(n) for n in stack_shape)
    if not results:
        raise ValueError("no segmentation result")
    if int(np.prod(stack_shape)) != len(results) and stack_shape:
        raise ValueError(f"{len(results)} results do not fill a stack of shape {stack_shape}")
    if len(results) > 1 and not stack_shape:
        stack_shape = (len(results),)
    first = results[0]
    measurements = measurement_record(results, stack_shape)
    messages = sorted({m for r in results for m in r.messages})
    common: dict[str, Any] = {}
    if scale is not None:
        common["scale"] = tuple(float(s) for s in scale)
    if translate is not None:
        common["translate"] = tuple(float(t) for t in translate)

    def metadata(role: str, **extra) -> dict:
        return {
            METADATA_KEY: {"role": role, "source": image_name, **extra},
            "measurements": measurements,
            "provenance": dict(first.provenance),
            "messages": list(messages),
            "crop_box": [list(r.crop_box) if r.crop_box is not None else None for r in results]
            if stack_shape else (list(first.crop_box) if first.crop_box is not None else None),
        }

    layers: list[tuple[np.ndarray, dict, str]] = []
    gates = len(first.attention)
    if gates and any(_found(r) for r in results):
        for k in range(gates):
            data = _stack([r.attention[k] for r in results], stack_shape, np.float32)
            layers.append((data, {
                "name": attention_layer_name(image_name, k + 1),
                "colormap": ATTENTION_COLORMAP,
                "blending": "additive",
                "contrast_limits": (0.0, 1.0),
                "opacity": 0.7,
                "visible": k == 0,
                "metadata": metadata("attention", gate=k + 1, gates=gates),
                **common,
            }, "image"))
    if show_probabilities:
        for structure in ("disc", "cup"):
            data = _stack([getattr(r, f"{structure}_probability") for r in results], stack_shape, np.float32)
            layers.append((data, {
                "name": probability_layer_name(image_name, structure),
                "colormap": PROBABILITY_COLORMAP,
                "blending": "additive",
                "contrast_limits": (0.0, 1.0),
                "opacity": 0.6,
                "metadata": metadata(f"{structure} probability"),
                **common,
            }, "image"))
    for role, name in (("disc", disc_layer_name(image_name)), ("cup", cup_layer_name(image_name))):
        masks = _stack([getattr(r, role) for r in results], stack_shape, np.uint8)
        layers.append((masks, {"name": name, **label_style(role), "metadata": metadata(role), **common}, "labels"))
    return layers


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


def format_measurements(record: dict | list[dict]) -> str:
    """A short human-readable summary of a measurement record for the widget."""
    if isinstance(record, list):
        found = [r for r in record if r.get("disc_found")]
        if not found:
            return f"{len(record)} slices: no optic disc found"
        vcdrs = [r["vcdr"] for r in found]
        return (f"{len(record)} slices, disc found in {len(found)}\n"
                f"vCDR mean {_fmt(float(np.mean(vcdrs)))} (min {_fmt(min(vcdrs))}, max {_fmt(max(vcdrs))})\n"
                "per-slice values: Export CSV")
    if not record.get("disc_found"):
        return "no optic disc found"
    return (f"vCDR {_fmt(record['vcdr'])}    area CDR {_fmt(record['area_cdr'])}\n"
            f"disc {record['disc_area']} px    cup {record['cup_area']} px\n"
            f"disc {record['disc_vertical_diameter']} x {record['disc_horizontal_diameter']} px (v x h), "
            f"cup {record['cup_vertical_diameter']} x {record['cup_horizontal_diameter']} px")


# --------------------------------------------------------------------------- CSV export


CSV_COLUMNS = [
    "image", "slice", "source", "disc_found", "vcdr", "area_cdr", "disc_area", "cup_area",
    "disc_centre_y", "disc_centre_x", "disc_vertical_diameter", "disc_horizontal_diameter",
    "cup_vertical_diameter", "cup_horizontal_diameter",
    "package_version", "weights", "weights_sha256", "disc_threshold", "cup_threshold", "device",
]


def measurement_rows(image_name: str, record: dict | list[dict], provenance: dict, source: str) -> list[dict]:
    """CSV rows for one image's measurement record; ``source`` says ``network`` or ``edited labels``."""
    records = record if isinstance(record, list) else [record]
    rows = []
    for item in records:
        row = {"image": image_name, "source": source, **provenance, **item}
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
