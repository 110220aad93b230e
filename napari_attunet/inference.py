"""Optic disc and cup segmentation of whole fundus photographs, coarse to fine.

1. *Locate*: the whole image, padded to a square, is resized to ``coarse_size``
   and passed through the network; the largest optic disc component gives the
   disc's centre and diameter.
2. *Segment*: a square of ``context`` disc diameters around that centre is cut
   from the full-resolution image, resized to ``fine_size`` and passed through the
   same network; its probabilities and attention maps are resampled back into
   the image.  When the disc touches the crop's border or its size disagrees
   with the first estimate, the crop is re-centred once.

The same network does both passes: it is trained on whole-image views and
disc-centred crops alike (see :mod:`napari_attunet.training`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from scipy import ndimage

from . import __version__
from .confidence import Quality, brightness_contrast, crop_quality
from .devices import resolve_device
from .image_files import flatten_alpha
from .measure import Measurements, disc_shape_warning, measure
from .model import AttentionUNet
from .postprocessing import SHAPES, largest_component
from .preprocessing import (
    black_level,
    crop_box,
    crop_padded,
    disc_geometry,
    resize,
    square_pad_box,
    standardise,
    validate_image,
)
from .progress import Progress, Stopwatch, run_to_end

DEFAULT_PREPROCESSING = {
    "coarse_size": 256,
    "fine_size": 256,
    "context": 2.2,
    "normalisation": "per-image, per-channel standardisation (zero mean, unit variance)",
}

NO_DISC_MESSAGE = "no optic disc found"
LOW_CONFIDENCE_MESSAGE = "low confidence: check the outline"
LOW_CONFIDENCE = 0.79
"""Below this confidence the result says :data:`LOW_CONFIDENCE_MESSAGE`.  Chosen on the training
split's stress variants (Youden's J for telling OD Dice < 0.85 from the rest):
``training/confidence_study.py``, docs/model-card.md."""
NO_DISC_BELOW = 0.56
"""A disc-like outline below this confidence is discarded ("no optic disc found"): in photos
without a disc the network draws faint, hesitant candidates.  Chosen on the training split
(``training/no_disc_study.py``)."""
MIN_DISC_CONTRAST = 1.14
"""A doubtful outline (confidence below :data:`LOW_CONFIDENCE`) whose contrast is below this is
discarded: an optic disc is brighter than the retina around it (see
:func:`~napari_attunet.confidence.brightness_contrast`).  Chosen on the training split
(``training/disc_contrast_study.py``)."""
SECOND_LOOK_BELOW = 0.5
"""A first answer below this confidence (or no disc) gets a second look at other zooms."""
BORDER_MESSAGE = "the disc is cut by the image border: the vCDR may be unreliable"
ZOOMS = (0.7, 1.45)
"""Contexts, relative to the default, of the second look at a doubtful disc."""
MAX_RECENTRING = 2
MAX_CANDIDATES = 3
DEFAULT_SHAPE = "components"


@dataclass
class SegmentationResult:
    """Masks, maps and measurements of one image (all arrays have the image's height x width)."""

    disc: np.ndarray
    """bool; the optic disc, cup included."""
    cup: np.ndarray
    """bool; the optic cup, always inside ``disc``."""
    disc_probability: np.ndarray
    cup_probability: np.ndarray
    attention: list[np.ndarray]
    """float32 in [0, 1], one per attention gate (finest first), 0 outside the analysed crop."""
    measurements: Measurements
    provenance: dict
    seconds: float = 0.0
    crop_box: tuple[int, int, int, int] | None = None
    """``(top, left, bottom, right)`` of the disc-centred crop in image pixels (None without a disc)."""
    messages: list[str] = field(default_factory=list)
    confidence: float = 0.0
    """In [0, 1]: how trustworthy the disc outline looks (0 without a disc); below
    :data:`LOW_CONFIDENCE` the messages say :data:`LOW_CONFIDENCE_MESSAGE`."""
    contrast: float = float("nan")
    """How many times brighter the disc is than the retina around it, from the photo's black
    (:func:`~napari_attunet.confidence.brightness_contrast`); NaN without a disc."""

    @property
    def disc_found(self) -> bool:
        return self.measurements.disc_found

    @property
    def vcdr(self) -> float:
        return self.measurements.vcdr

    @property
    def area_cdr(self) -> float:
        return self.measurements.area_cdr

    @property
    def disc_area(self) -> int:
        return self.measurements.disc_area

    @property
    def cup_area(self) -> int:
        return self.measurements.cup_area

    @property
    def disc_centre(self) -> tuple[float, float]:
        return self.measurements.disc_centre_y, self.measurements.disc_centre_x


@dataclass
class Crop:
    """One fine pass over a square ``box`` of an image (``(top, left, bottom, right)``, image pixels)."""

    box: tuple[int, int, int, int]
    probs: torch.Tensor
    """``(2, s, s)`` disc and cup probabilities on the network's grid, on the model's device."""
    maps: list[torch.Tensor]
    """One attention map per gate."""
    numpy: np.ndarray
    """``probs`` on the CPU."""
    quality: Quality
    brightness: np.ndarray
    """``(s, s)``: the crop's brightness on the network's grid, counted from the photo's black."""
    beyond_border: np.ndarray
    """``(s, s)``: which of those pixels lie outside the photo."""


def _preprocessing(model: AttentionUNet) -> dict:
    return {**DEFAULT_PREPROCESSING, **model.weights_info.metadata.get("preprocessing", {})}


def model_thresholds(model: AttentionUNet) -> tuple[float, float]:
    """The (disc, cup) thresholds the model's weights file recommends (0.5 for a bare network)."""
    from .weights import thresholds_from

    return thresholds_from(model.weights_info.metadata)


def provenance(model: AttentionUNet, disc_threshold: float, cup_threshold: float, device: torch.device) -> dict:
    """What every output of this model carries: package, weights and settings."""
    return {
        "package": "napari-attunet",
        "package_version": __version__,
        "weights": model.weights_info.name,
        "weights_sha256": model.weights_info.sha256,
        "disc_threshold": float(disc_threshold),
        "cup_threshold": float(cup_threshold),
        "device": str(device),
    }


def image_tensor(image: np.ndarray, device: torch.device) -> torch.Tensor:
    """Validated image -> ``(3, H, W)`` tensor in its own dtype (no float copy of a large photo)."""
    array = validate_image(image)
    if array.ndim == 2:
        array = array[..., None]
    array = flatten_alpha(array) if array.shape[-1] == 4 else array  # transparent is black, like the border
    if not array.dtype.isnative:
        array = array.astype(array.dtype.newbyteorder("="))
    if array.dtype == np.uint16:
        array = array.astype(np.int32)  # torch lacks most uint16 and uint32 kernels
    elif array.dtype == np.uint32:
        array = array.astype(np.int64)
    elif array.dtype.itemsize == 8 or array.dtype == np.float16:
        array = array.astype(np.float32)
    array = np.ascontiguousarray(array)
    if not array.flags.writeable:  # torch warns on read-only memory (e.g. images from PIL)
        array = array.copy()
    tensor = torch.from_numpy(array).permute(2, 0, 1)
    if tensor.shape[0] == 1:
        tensor = tensor.expand(3, -1, -1)
    if bool((tensor.amax() == tensor.amin()).item()):
        raise ValueError("image is empty: every pixel has the same value")
    return tensor.to(device)


def _resized_crop(image: torch.Tensor, box: tuple[int, int, int, int], size: int) -> torch.Tensor:
    """Cut ``box`` (the photo's black outside it) and resize to ``size``: ``(1, 3, size, size)``, float32."""
    crop = crop_padded(image, box, fill=black_level(image))
    # Subsample very large crops by an integer stride first: cheaper than a float copy of the whole photo.
    stride = max(1, crop.shape[-1] // (4 * size))
    if stride > 1:
        crop = crop[:, ::stride, ::stride]
    return resize(crop[None].to(torch.float32), (size, size))


def _network_input(image: torch.Tensor, box: tuple[int, int, int, int], size: int) -> torch.Tensor:
    """:func:`_resized_crop`, standardised: what the network reads."""
    return standardise(_resized_crop(image, box, size))


def _beyond_border(box: tuple[int, int, int, int], shape, size: int) -> np.ndarray:
    """``(size, size)``: which pixels of ``box`` on the network's grid lie outside an image of ``shape``."""
    top, left, bottom, right = box
    rows = top + (np.arange(size) + 0.5) * (bottom - top) / size
    cols = left + (np.arange(size) + 0.5) * (right - left) / size
    return ((rows < 0) | (rows >= shape[0]))[:, None] | ((cols < 0) | (cols >= shape[1]))[None, :]


def _inside(box: tuple[int, int, int, int], shape) -> tuple[slice, slice, slice, slice] | None:
    """Slices of ``box`` that lie inside an image of ``shape``: (image rows, image cols, box rows, box cols)."""
    top, left, bottom, right = box
    t, le, b, r = max(top, 0), max(left, 0), min(bottom, shape[0]), min(right, shape[1])
    if b <= t or r <= le:
        return None
    return slice(t, b), slice(le, r), slice(t - top, b - top), slice(le - left, r - left)


def _touches_border(mask: np.ndarray) -> bool:
    return bool(mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any())


class Segmenter:
    """Runs one network over images; holds the model, device and thresholds.

    A threshold left as None is the one the model's weights file recommends.  Outlines whose
    confidence is below ``min_confidence`` (None: :data:`NO_DISC_BELOW`, chosen for the shipped
    weights) are discarded as "no optic disc found".
    """

    def __init__(self, model: AttentionUNet, device: torch.device, disc_threshold: float | None = None,
                 cup_threshold: float | None = None, tta: bool = False, shape: str = DEFAULT_SHAPE,
                 min_confidence: float | None = None):
        recommended = model_thresholds(model)
        disc_threshold = recommended[0] if disc_threshold is None else disc_threshold
        cup_threshold = recommended[1] if cup_threshold is None else cup_threshold
        for name, value in (("disc_threshold", disc_threshold), ("cup_threshold", cup_threshold)):
            if not 0.0 < value < 1.0:
                raise ValueError(f"{name} must lie strictly between 0 and 1, got {value}")
        self.model = model.to(device).eval()
        self.device = device
        self.disc_threshold = disc_threshold
        self.cup_threshold = cup_threshold
        self.tta = tta
        if shape not in SHAPES:
            raise ValueError(f"shape must be one of {', '.join(SHAPES)}, got {shape!r}")
        self.min_confidence = NO_DISC_BELOW if min_confidence is None else float(min_confidence)
        self.shape = SHAPES[shape]
        self.settings = _preprocessing(model)
        self.provenance = provenance(model, disc_threshold, cup_threshold, device)

    @torch.inference_mode()
    def _run(self, batch: torch.Tensor, attention: bool,
             deep: bool = False) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor | None]:
        """Probabilities, gate maps and (with ``deep``) the finest deep-supervision head's disc probability."""
        if self.tta:
            both = torch.cat([batch, batch.flip(-1)])
            out = self.model(both, return_attention=attention, return_deep=deep)
            n = batch.shape[0]
            probs = (torch.sigmoid(out.logits[:n]) + torch.sigmoid(out.logits[n:]).flip(-1)) / 2
            maps = [(a[:n] + a[n:].flip(-1)) / 2 for a in out.attention]
            heads = [(torch.sigmoid(d[:n]) + torch.sigmoid(d[n:]).flip(-1)) / 2 for d in out.deep_supervision]
        else:
            out = self.model(batch, return_attention=attention, return_deep=deep)
            probs, maps = torch.sigmoid(out.logits), list(out.attention)
            heads = [torch.sigmoid(d) for d in out.deep_supervision]
        return probs, maps, (heads[0][:, 0] if heads else None)

    def locate(self, images: Sequence[torch.Tensor]) -> list[list[tuple[float, float, float]]]:
        """Disc candidates per image from the whole-image pass: centre (y, x) and diameter in image pixels.

        Candidates are the connected components above the threshold, most probable first
        (at most ``MAX_CANDIDATES``, each with at least a fifth of the first one's probability mass).
        """
        size = self.settings["coarse_size"]
        boxes = [square_pad_box(*image.shape[-2:]) for image in images]
        batch = torch.cat([_network_input(image, box, size) for image, box in zip(images, boxes)])
        probs, _, _ = self._run(batch, attention=False)
        found = []
        for box, disc_probability in zip(boxes, probs[:, 0].cpu().numpy()):
            labels, count = ndimage.label(disc_probability > self.disc_threshold, structure=np.ones((3, 3), bool))
            masses = ndimage.sum_labels(disc_probability, labels, index=np.arange(1, count + 1))
            order = np.argsort(masses)[::-1][:MAX_CANDIDATES]
            scale = (box[2] - box[0]) / size
            candidates = []
            for label in order:
                if masses[label] < 0.2 * masses[order[0]]:
                    break
                y, x, diameter = disc_geometry(labels == label + 1)
                candidates.append((box[0] + (y + 0.5) * scale - 0.5, box[1] + (x + 0.5) * scale - 0.5,
                                   diameter * scale))
            found.append(candidates)
        return found

    def segment_crops(self, images: Sequence[torch.Tensor], discs: Sequence[tuple[float, float, float]],
                      attention: bool) -> list[Crop]:
        """Fine pass on disc-centred crops (a square of ``context`` disc diameters around each disc)."""
        boxes = [crop_box((y, x), max(self.settings["context"] * diameter, 16.0)) for y, x, diameter in discs]
        return self._crops(images, boxes, attention)

    def _crops(self, images: Sequence[torch.Tensor], boxes: Sequence[tuple[int, int, int, int]],
               attention: bool) -> list[Crop]:
        size = self.settings["fine_size"]
        raw = torch.cat([_resized_crop(image, box, size) for image, box in zip(images, boxes)])
        # Brightness counted from each photo's black, for the contrast of its disc.
        blacks = torch.tensor([black_level(image) for image in images], dtype=raw.dtype, device=raw.device)
        brightness = (raw.mean(dim=1) - blacks[:, None, None]).cpu().numpy()
        probs, maps, deep = self._run(standardise(raw), attention, deep=True)
        crops = []
        for i, box in enumerate(boxes):
            crop_probs = probs[i].cpu().numpy()
            quality = crop_quality(crop_probs[0], None if deep is None else deep[i].cpu().numpy(),
                                   self.disc_threshold)
            crops.append(Crop(box, probs[i], [m[i, 0] for m in maps], crop_probs, quality, brightness[i],
                              _beyond_border(box, images[i].shape[-2:], size)))
        return crops

    def _disc_in(self, crop: Crop) -> tuple[float, float, float] | None:
        """Centre (y, x) and diameter of the disc a crop's prediction shows, in image pixels."""
        fine = disc_geometry(largest_component(crop.numpy[0] > self.disc_threshold))
        if fine is None:
            return None
        box = crop.box
        scale = (box[2] - box[0]) / self.settings["fine_size"]
        return box[0] + (fine[0] + 0.5) * scale, box[1] + (fine[1] + 0.5) * scale, fine[2] * scale

    def _refined(self, crop: Crop, disc: tuple[float, float, float]) -> tuple[float, float, float] | None:
        """A better crop centre and size when the fine pass disagrees with the first estimate."""
        found = self._disc_in(crop)
        if found is None:
            return None
        moved = math.dist(found[:2], disc[:2]) > 0.15 * disc[2]
        resized = not 0.75 < found[2] / disc[2] < 1.33
        return found if moved or resized else None

    def _fine(self, images: Sequence[torch.Tensor], jobs: list[tuple[int, tuple[float, float, float]]],
              attention: bool, crops: dict[int, Crop]) -> None:
        """Fine passes from disc estimates ``(image index, disc)``; keeps each image's most confident crop.

        A crop whose disc disagrees with its estimate is re-centred (at most ``MAX_RECENTRING`` times).
        """
        if not jobs:
            return
        first = self.segment_crops([images[i] for i, _ in jobs], [disc for _, disc in jobs], attention)
        best: dict[int, tuple[Crop, tuple[float, float, float]]] = {}
        for (i, disc), crop in zip(jobs, first):
            if i not in best or crop.quality.confidence > best[i][0].quality.confidence:
                best[i] = (crop, disc)
        chosen = {i: crop for i, (crop, _) in best.items()}
        pending = {i: refined for i, (crop, disc) in best.items() if (refined := self._refined(crop, disc))}
        for _ in range(MAX_RECENTRING):
            if not pending:
                break
            chosen.update(zip(pending, self.segment_crops([images[i] for i in pending], list(pending.values()),
                                                          attention)))
            refined = {i: self._refined(chosen[i], disc) for i, disc in pending.items()}
            pending = {i: disc for i, disc in refined.items() if disc is not None}
        for i, crop in chosen.items():
            if i not in crops or crop.quality.confidence > crops[i].quality.confidence:
                crops[i] = crop

    def _second_look(self, images: Sequence[torch.Tensor], doubtful: list[int], attention: bool,
                     crops: dict[int, Crop]) -> None:
        """Other zooms for doubtful images: a found disc is cut again at a tighter and a wider context;
        a photo without a disc is searched again in four overlapping quarters at twice the zoom."""
        boxes, owners = [], []
        for i in doubtful:
            disc = self._disc_in(crops[i]) if i in crops else None
            if disc is not None:
                for factor in ZOOMS:
                    boxes.append(crop_box(disc[:2], max(self.settings["context"] * disc[2] * factor, 16.0)))
                    owners.append(i)
        if boxes:
            for i, crop in zip(owners, self._crops([images[i] for i in owners], boxes, attention)):
                if crop.quality.confidence > crops[i].quality.confidence:
                    crops[i] = crop
        missing = [i for i in doubtful if i not in crops]
        if missing:
            found = self.locate_zoomed([images[i] for i in missing])
            self._fine(images, [(i, disc) for i, discs in zip(missing, found) for disc in discs], attention, crops)

    def locate_zoomed(self, images: Sequence[torch.Tensor]) -> list[list[tuple[float, float, float]]]:
        """:meth:`locate` on four overlapping quarters (0.6 of the side each) of every image."""
        tiles, owners, origins = [], [], []
        for index, image in enumerate(images):
            top, left, bottom, right = square_pad_box(*image.shape[-2:])
            side = bottom - top
            tile = int(round(0.6 * side))
            for y in (top, bottom - tile):
                for x in (left, right - tile):
                    tiles.append(crop_padded(image, (y, x, y + tile, x + tile), fill=black_level(image)))
                    owners.append(index)
                    origins.append((y, x))
        found: list[list[tuple[float, float, float]]] = [[] for _ in images]
        for owner, (y0, x0), discs in zip(owners, origins, self.locate(tiles)):
            found[owner].extend((y + y0, x + x0, d) for y, x, d in discs[:1])
        return found

    def segment_tensors(self, images: Sequence[torch.Tensor], attention: bool = True) -> list[SegmentationResult]:
        """Segment ``(3, H, W)`` tensors; each network pass runs on the whole batch.

        Photos whose first answer is doubtful (no disc, or a confidence below :data:`SECOND_LOOK_BELOW`)
        get a second look that takes the whole photo as the disc crop: the framing of a photo that is
        itself a tight crop around the disc.  The more confident answer is kept.
        """
        clock = Stopwatch()
        candidates = self.locate(images)
        crops: dict[int, Crop] = {}
        self._fine(images, [(i, disc) for i, found in enumerate(candidates) for disc in found], attention, crops)
        doubtful = [i for i in range(len(images))
                    if i not in crops or crops[i].quality.confidence < SECOND_LOOK_BELOW]
        if doubtful:
            self._second_look(images, doubtful, attention, crops)
        per_image = clock() / len(images)
        return [self._result(image.shape[-2:], crops.get(i), attention, per_image) for i, image in enumerate(images)]

    def _contrast(self, crop: Crop) -> float:
        """The contrast of a crop's disc (:func:`~napari_attunet.confidence.brightness_contrast`).

        Measured for the chosen crop only, not for every candidate: it costs about 10 ms.
        """
        disc = largest_component(crop.numpy[0] > self.disc_threshold)
        return brightness_contrast(crop.brightness, disc, crop.beyond_border) if disc.any() else float("nan")

    def _not_a_disc(self, confidence: float, contrast: float) -> str | None:
        """Why a candidate is not taken for an optic disc (None: it is).

        Too faint (confidence below ``min_confidence``), or doubtful and no brighter than the
        retina around it (confidence below :data:`LOW_CONFIDENCE` and contrast below
        :data:`MIN_DISC_CONTRAST`).  ``min_confidence=0`` keeps every candidate.
        """
        if self.min_confidence <= 0:
            return None
        if confidence < self.min_confidence:
            return f"too faint (confidence {confidence:.2f})"
        if confidence < LOW_CONFIDENCE and contrast < MIN_DISC_CONTRAST:
            return f"no brighter than the retina around it (contrast {contrast:.2f})"
        return None

    def _result(self, shape, crop: Crop | None, attention: bool, seconds: float) -> SegmentationResult:
        """Resample a crop's maps into image-sized arrays; masks are post-processed inside the crop only."""
        clock = Stopwatch()
        messages = []
        contrast = self._contrast(crop) if crop is not None else float("nan")
        if crop is not None and (reason := self._not_a_disc(crop.quality.confidence, contrast)):
            messages.append(f"a disc-like candidate was discarded: {reason}")
            crop = None
        disc_p = np.zeros(shape, np.float32)
        cup_p = np.zeros(shape, np.float32)
        disc = np.zeros(shape, bool)
        cup = np.zeros(shape, bool)
        gates = [np.zeros(shape, np.float32) for _ in range(self.model.num_gates)] if attention else []
        box = crop.box if crop is not None else None
        region = _inside(box, shape) if box is not None else None
        offset = (0, 0)
        if region is not None:
            rows, cols, box_rows, box_cols = region
            probs, maps = crop.probs, crop.maps
            # Gate k is on a grid 2**k coarser; bring every map to the crop's grid, then resample once.
            stacked = torch.cat([probs] + [resize(m[None, None].float(), probs.shape[-2:])[0] for m in maps])
            size = (box[2] - box[0], box[3] - box[1])
            stacked = resize(stacked[None].float(), size)[0][:, box_rows, box_cols].clamp_(0, 1).cpu().numpy()
            disc_p[rows, cols], cup_p[rows, cols] = stacked[0], stacked[1]
            local_disc = self.shape(stacked[0] > self.disc_threshold)
            disc[rows, cols] = local_disc
            cup[rows, cols] = self.shape((stacked[1] > self.cup_threshold) & local_disc) & local_disc
            for gate, values in zip(gates, stacked[2:]):
                gate[rows, cols] = values
            offset = (rows.start, cols.start)
        confidence = 0.0
        if not disc.any():
            contrast = float("nan")
            messages.insert(0, NO_DISC_MESSAGE)
            box = None
            for gate in gates:
                gate.fill(0.0)
            measurements = measure(disc, cup)
        else:
            local = measure(disc[region[0], region[1]], cup[region[0], region[1]])
            measurements = replace(local, disc_centre_y=local.disc_centre_y + offset[0],
                                   disc_centre_x=local.disc_centre_x + offset[1])
            confidence = crop.quality.confidence
            if confidence < LOW_CONFIDENCE:
                messages.append(LOW_CONFIDENCE_MESSAGE)
            if warning := disc_shape_warning(measurements):
                messages.append(warning)
            if _touches_border(disc):
                messages.append(BORDER_MESSAGE)
        return SegmentationResult(
            disc=disc,
            cup=cup,
            disc_probability=disc_p,
            cup_probability=cup_p,
            attention=gates,
            measurements=measurements,
            provenance=dict(self.provenance),
            seconds=seconds + clock(),
            crop_box=box,
            messages=messages,
            confidence=confidence,
            contrast=contrast,
        )

    def segment_tensor(self, image: torch.Tensor, attention: bool = True) -> SegmentationResult:
        return self.segment_tensors([image], attention)[0]


def _as_list(images) -> tuple[list, bool]:
    """``(items, many)``; file paths are read (:func:`~napari_attunet.image_files.read_image`)."""
    from .image_files import read_image

    def item(value):
        if isinstance(value, (str, os.PathLike)):
            return read_image(value)
        if isinstance(value, (bytes, bytearray)):
            raise ValueError("got bytes; pass an image array or the path of an image file")
        return value

    if isinstance(images, (np.ndarray, str, os.PathLike, bytes, bytearray)) or not isinstance(images, Sequence):
        return [item(images)], False
    return [item(value) for value in images], True


def iter_segment(images, model: AttentionUNet | None = None, device: str | torch.device = "auto", *,
                 disc_threshold: float | None = None, cup_threshold: float | None = None,
                 attention: bool = True, tta: bool = False, batch_size: int = 4) -> Iterator[Progress]:
    """Segment one image or a list of images, yielding a :class:`Progress` event per stage.

    The last event's ``result`` is a :class:`SegmentationResult` (one image) or a list of them.
    Lists run in batches of ``batch_size`` images (each network pass takes the whole batch).
    Closing the generator cancels at the next stage: at worst after one batch's passes.
    """
    from .weights import load_model

    items, many = _as_list(images)
    for index, item in enumerate(items):  # validate everything before any work
        try:
            validate_image(item)
        except ValueError as error:
            raise ValueError(f"image {index}: {error}" if many else str(error)) from None
    device = resolve_device(device)
    if model is None:
        model = load_model(device=device)
    segmenter = Segmenter(model, device, disc_threshold, cup_threshold, tta)
    clock = Stopwatch()
    results: list[SegmentationResult] = []
    chunks = [items[i : i + batch_size] for i in range(0, len(items), max(1, batch_size))]
    total = 2 * len(chunks)
    for index, chunk in enumerate(chunks):
        first, last = index * batch_size + 1, index * batch_size + len(chunk)
        label = f"image {first}" if len(chunk) == 1 else f"images {first}-{last}"
        tensors = [image_tensor(item, device) for item in chunk]
        yield Progress("segment", 2 * index + 1, total, f"{label} of {len(items)}: loaded", clock())
        results.extend(segmenter.segment_tensors(tensors, attention=attention))
        del tensors
        yield Progress("segment", 2 * index + 2, total, f"{label} of {len(items)}: segmented", clock())
    yield Progress("segment", total, total, "done", clock(), result=results if many else results[0])


def segment(images, model: AttentionUNet | None = None, device: str | torch.device = "auto", *,
            disc_threshold: float | None = None, cup_threshold: float | None = None, attention: bool = True,
            tta: bool = False, batch_size: int = 4, progress: Callable[[Progress], None] | None = None,
            cancel: Callable[[], bool] | None = None):
    """Segment the optic disc and cup of one fundus photograph (or a list of them).

    Args:
        images: ``(H, W)``, ``(H, W, 3)`` or ``(H, W, 4)`` array (any integer or float dtype; alpha is
            composited onto black), the path of an image file, or a list of them.
        model: a network from :func:`napari_attunet.load_model`; None loads the shipped default weights.
        device: ``"auto"`` (CUDA, then MPS, then CPU), ``"cpu"``, ``"cuda"``, ``"cuda:1"`` or ``"mps"``.
        disc_threshold, cup_threshold: probability above which a pixel belongs to the structure;
            None (the default) takes the ones stored in the weights file (0.5 where it has none).
        attention: also return the attention maps of every gate.
        tta: average with the horizontally flipped image (slower, slightly smoother masks).
        batch_size: images per network pass when ``images`` is a list.
        progress: called with every :class:`Progress` event.
        cancel: polled after every event; returning True raises :class:`~napari_attunet.progress.Cancelled`.

    Returns:
        A :class:`SegmentationResult` (a list of them for a list input).  When no disc is
        found the masks are empty, ``vcdr`` is NaN and ``messages`` says so.
    """
    events = iter_segment(images, model, device, disc_threshold=disc_threshold, cup_threshold=cup_threshold,
                          attention=attention, tta=tta, batch_size=batch_size)
    return run_to_end(events, cancel, progress)
