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
from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
from scipy import ndimage

from . import __version__
from .devices import resolve_device
from .measure import Measurements, measure
from .model import AttentionUNet
from .preprocessing import crop_box, crop_padded, resize, square_pad_box, standardise, validate_image
from .progress import Progress, Stopwatch, run_to_end

DEFAULT_PREPROCESSING = {
    "coarse_size": 256,
    "fine_size": 256,
    "context": 2.2,
    "normalisation": "per-image, per-channel standardisation (zero mean, unit variance)",
}

NO_DISC_MESSAGE = "no optic disc found"


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


def _preprocessing(model: AttentionUNet) -> dict:
    return {**DEFAULT_PREPROCESSING, **getattr(model, "metadata", {}).get("preprocessing", {})}


def provenance(model: AttentionUNet, disc_threshold: float, cup_threshold: float, device: torch.device) -> dict:
    """What every output of this model carries: package, weights and settings."""
    return {
        "package": "napari-attunet",
        "package_version": __version__,
        "weights": getattr(model, "weights_name", "in-memory model"),
        "weights_sha256": getattr(model, "weights_sha256", ""),
        "disc_threshold": float(disc_threshold),
        "cup_threshold": float(cup_threshold),
        "device": str(device),
    }


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 8-connected component of ``mask`` with its holes filled (empty stays empty)."""
    labels, count = ndimage.label(mask, structure=np.ones((3, 3), bool))
    if count == 0:
        return np.zeros_like(mask, dtype=bool)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return ndimage.binary_fill_holes(labels == sizes.argmax())


def _disc_geometry(disc: np.ndarray) -> tuple[float, float, float] | None:
    """Centre (y, x) and diameter (larger extent) of a disc mask, in its pixels."""
    if not disc.any():
        return None
    ys, xs = np.nonzero(disc)
    diameter = max(ys.max() - ys.min() + 1, xs.max() - xs.min() + 1)
    return float(ys.mean()), float(xs.mean()), float(diameter)


def _to_tensor(image: np.ndarray, device: torch.device) -> torch.Tensor:
    """Validated image -> ``(3, H, W)`` tensor in its own dtype (no float copy of a large photo)."""
    array = validate_image(image)
    if array.ndim == 2:
        array = array[..., None]
    array = array[..., :3]
    if array.dtype == np.uint16:
        array = array.astype(np.int32)  # torch lacks most uint16 kernels
    elif array.dtype.itemsize == 8 or array.dtype == np.float16:
        array = array.astype(np.float32)
    tensor = torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1)
    if tensor.shape[0] == 1:
        tensor = tensor.expand(3, -1, -1)
    if bool((tensor.amax() == tensor.amin()).item()):
        raise ValueError("image is empty: every pixel has the same value")
    return tensor.to(device)


def _network_input(image: torch.Tensor, box: tuple[int, int, int, int], size: int) -> torch.Tensor:
    """Cut ``box`` (zero outside the image), resize to ``size`` and standardise: ``(1, 3, size, size)``."""
    crop = crop_padded(image, box)
    # Subsample very large crops by an integer stride first: cheaper than a float copy of the whole photo.
    stride = max(1, crop.shape[-1] // (4 * size))
    if stride > 1:
        crop = crop[:, ::stride, ::stride]
    return standardise(resize(crop[None].to(torch.float32), (size, size)))


def _paste(full: np.ndarray, patch: torch.Tensor, box: tuple[int, int, int, int]) -> None:
    """Resample ``patch`` ``(h, w)`` to ``box``'s size and write the part inside ``full``."""
    top, left, bottom, right = box
    height, width = full.shape
    t, l, b, r = max(top, 0), max(left, 0), min(bottom, height), min(right, width)
    if b <= t or r <= l:
        return
    resized = resize(patch[None, None].float(), (bottom - top, right - left))[0, 0]
    full[t:b, l:r] = resized[t - top : b - top, l - left : r - left].cpu().numpy()


class Segmenter:
    """Runs one network over images; holds the model, device and thresholds."""

    def __init__(self, model: AttentionUNet, device: torch.device, disc_threshold: float = 0.5,
                 cup_threshold: float = 0.5, tta: bool = False):
        for name, value in (("disc_threshold", disc_threshold), ("cup_threshold", cup_threshold)):
            if not 0.0 < value < 1.0:
                raise ValueError(f"{name} must lie strictly between 0 and 1, got {value}")
        self.model = model.to(device).eval()
        self.device = device
        self.disc_threshold = disc_threshold
        self.cup_threshold = cup_threshold
        self.tta = tta
        self.settings = _preprocessing(model)
        self.provenance = provenance(model, disc_threshold, cup_threshold, device)

    @torch.inference_mode()
    def _run(self, batch: torch.Tensor, attention: bool) -> tuple[torch.Tensor, list[torch.Tensor]]:
        if self.tta:
            both = torch.cat([batch, batch.flip(-1)])
            out = self.model(both, return_attention=attention)
            n = batch.shape[0]
            probs = (torch.sigmoid(out.logits[:n]) + torch.sigmoid(out.logits[n:]).flip(-1)) / 2
            maps = [(a[:n] + a[n:].flip(-1)) / 2 for a in out.attention]
        else:
            out = self.model(batch, return_attention=attention)
            probs, maps = torch.sigmoid(out.logits), list(out.attention)
        return probs, maps

    def locate(self, image: torch.Tensor) -> tuple[float, float, float] | None:
        """Disc centre (y, x) and diameter in image pixels from the whole-image pass, or None."""
        height, width = image.shape[-2:]
        box = square_pad_box(height, width)
        size = self.settings["coarse_size"]
        probs, _ = self._run(_network_input(image, box, size), attention=False)
        disc = largest_component(probs[0, 0].cpu().numpy() > self.disc_threshold)
        geometry = _disc_geometry(disc)
        if geometry is None:
            return None
        scale = (box[2] - box[0]) / size
        y, x, diameter = geometry
        return box[0] + (y + 0.5) * scale - 0.5, box[1] + (x + 0.5) * scale - 0.5, diameter * scale

    def segment_crop(self, image: torch.Tensor, centre: tuple[float, float], diameter: float,
                     attention: bool):
        size = self.settings["fine_size"]
        box = crop_box(centre, max(self.settings["context"] * diameter, 16.0))
        probs, maps = self._run(_network_input(image, box, size), attention)
        return box, probs[0], [m[0, 0] for m in maps]

    def segment_tensor(self, image: torch.Tensor, attention: bool = True) -> SegmentationResult:
        clock = Stopwatch()
        height, width = image.shape[-2:]
        shape = (height, width)
        disc_p = np.zeros(shape, np.float32)
        cup_p = np.zeros(shape, np.float32)
        messages: list[str] = []
        box = None
        maps: list[torch.Tensor] = []
        located = self.locate(image)
        if located is None:
            messages.append(NO_DISC_MESSAGE)
        else:
            centre, diameter = located[:2], located[2]
            box, probs, maps = self.segment_crop(image, centre, diameter, attention)
            fine = _disc_geometry(largest_component(probs[0].cpu().numpy() > self.disc_threshold))
            if fine is not None:
                scale = (box[2] - box[0]) / self.settings["fine_size"]
                new_centre = (box[0] + (fine[0] + 0.5) * scale, box[1] + (fine[1] + 0.5) * scale)
                new_diameter = fine[2] * scale
                moved = math.dist(new_centre, centre) > 0.15 * diameter
                resized = not 0.75 < new_diameter / diameter < 1.33
                if moved or resized:
                    box, probs, maps = self.segment_crop(image, new_centre, new_diameter, attention)
            _paste(disc_p, probs[0], box)
            _paste(cup_p, probs[1], box)
        disc = largest_component(disc_p > self.disc_threshold)
        cup = largest_component((cup_p > self.cup_threshold) & disc)
        if located is not None and not disc.any():
            messages.append(NO_DISC_MESSAGE)
            box = None
        attention_maps = []
        if attention:
            gates = maps if box is not None else [None] * self.model.num_gates
            for gate in gates:
                full = np.zeros(shape, np.float32)
                if gate is not None:
                    _paste(full, gate, box)
                    np.clip(full, 0.0, 1.0, out=full)
                attention_maps.append(full)
        return SegmentationResult(
            disc=disc,
            cup=cup,
            disc_probability=disc_p,
            cup_probability=cup_p,
            attention=attention_maps,
            measurements=measure(disc, cup),
            provenance=dict(self.provenance),
            seconds=clock(),
            crop_box=box,
            messages=messages,
        )


def _as_list(images) -> tuple[list, bool]:
    if isinstance(images, np.ndarray) or not isinstance(images, Sequence):
        return [images], False
    return list(images), True


def iter_segment(images, model: AttentionUNet | None = None, device: str | torch.device = "auto", *,
                 disc_threshold: float = 0.5, cup_threshold: float = 0.5, attention: bool = True,
                 tta: bool = False) -> Iterator[Progress]:
    """Segment one image or a list of images, yielding a :class:`Progress` event per stage.

    The last event's ``result`` is a :class:`SegmentationResult` (one image) or a list of them.
    Closing the generator cancels at the next stage (at worst one network pass later).
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
    results = []
    total = 2 * len(items)
    for index, item in enumerate(items):
        tensor = _to_tensor(item, device)
        yield Progress("segment", 2 * index + 1, total, f"image {index + 1} of {len(items)}: loaded", clock())
        results.append(segmenter.segment_tensor(tensor, attention=attention))
        del tensor
        yield Progress("segment", 2 * index + 2, total, f"image {index + 1} of {len(items)}: segmented", clock())
    yield Progress("segment", total, total, "done", clock(), result=results if many else results[0])


def segment(images, model: AttentionUNet | None = None, device: str | torch.device = "auto", *,
            disc_threshold: float = 0.5, cup_threshold: float = 0.5, attention: bool = True,
            tta: bool = False, progress: Callable[[Progress], None] | None = None,
            cancel: Callable[[], bool] | None = None):
    """Segment the optic disc and cup of one fundus photograph (or a list of them).

    Args:
        images: ``(H, W)``, ``(H, W, 3)`` or ``(H, W, 4)`` array (any integer or float dtype), or a list.
        model: a network from :func:`napari_attunet.load_model`; None loads the shipped default weights.
        device: ``"auto"`` (CUDA, then MPS, then CPU), ``"cpu"``, ``"cuda"``, ``"cuda:1"`` or ``"mps"``.
        disc_threshold, cup_threshold: probability above which a pixel belongs to the structure.
        attention: also return the attention maps of every gate.
        tta: average with the horizontally flipped image (slower, slightly smoother masks).
        progress: called with every :class:`Progress` event.
        cancel: polled after every event; returning True raises :class:`~napari_attunet.progress.Cancelled`.

    Returns:
        A :class:`SegmentationResult` (a list of them for a list input).  When no disc is
        found the masks are empty, ``vcdr`` is NaN and ``messages`` says so.
    """
    events = iter_segment(images, model, device, disc_threshold=disc_threshold, cup_threshold=cup_threshold,
                          attention=attention, tta=tta)
    return run_to_end(events, cancel, progress)
