"""Framings and camera variants of annotated photos, shared by the study scripts.

Each transform takes a :class:`~napari_attunet.datasets.Sample` and returns a new one whose
image *and* masks are transformed alike, so that Dice is measured against the right truth.

Framings (``frame``): a square of ``k`` ground-truth disc diameters around the ground-truth
disc centre (as public disc-centred datasets and other clinics' crops are framed), resized to
``size`` pixels or kept at the photo's own resolution; the full photo; and a full-field
framing (the photo shrunk by 2 on a black canvas about 10 disc diameters wide, the disc
about a tenth of the width, as in a 45-degree photo).

Camera variants (``CAMERAS``): defocus blur, a colour cast, gamma, grayscale, JPEG and low
resolution.
"""

from __future__ import annotations

import io

import numpy as np
from skimage.transform import resize as sk_resize

from napari_attunet.datasets import Sample, make_sample
from napari_attunet.preprocessing import disc_geometry


def _resize(array: np.ndarray, size: int, mask: bool) -> np.ndarray:
    if mask:
        return sk_resize(array.astype(np.float32), (size, size), order=1, anti_aliasing=True) >= 0.5
    out = sk_resize(array, (size, size, array.shape[2]), order=1, anti_aliasing=True, preserve_range=True)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def crop(sample: Sample, k: float, size: int | None = 350) -> Sample:
    """A square of ``k`` disc diameters around the disc centre (black beyond the photo), resized to ``size``."""
    cy, cx, diameter = disc_geometry(sample.disc)
    side = max(int(round(k * diameter)), 8)
    top, left = int(round(cy - side / 2)), int(round(cx - side / 2))
    height, width = sample.disc.shape
    out = [np.zeros((side, side, 3), np.uint8), np.zeros((side, side), bool), np.zeros((side, side), bool)]
    t, le, b, r = max(top, 0), max(left, 0), min(top + side, height), min(left + side, width)
    for target, source in zip(out, (sample.image, sample.disc, sample.cup)):
        target[t - top : b - top, le - left : r - left] = source[t:b, le:r]
    if size is not None:
        out = [_resize(out[0], size, False), _resize(out[1], size, True), _resize(out[2], size, True)]
    return make_sample(sample.name, *out)


def full_field(sample: Sample) -> Sample:
    """The photo shrunk by 2, off-centre on a black square about 10 disc diameters wide."""
    image = sample.image[::2, ::2]
    disc, cup = sample.disc[::2, ::2], sample.cup[::2, ::2]
    cy, cx, diameter = disc_geometry(disc)
    side = max(int(10 * diameter), max(image.shape[:2]) + 1)
    out = [np.zeros((side, side, 3), np.uint8), np.zeros((side, side), bool), np.zeros((side, side), bool)]
    # Disc at about a quarter of the width from the left, like a 45-degree photo of a right eye.
    top = max(0, min(side - image.shape[0], int(side / 2 - cy)))
    left = max(0, min(side - image.shape[1], int(side / 4 - cx)))
    for target, source in zip(out, (image, disc, cup)):
        target[top : top + source.shape[0], left : left + source.shape[1]] = source
    return make_sample(sample.name, *out)


def frame(sample: Sample, framing: str) -> Sample:
    """``"full photo"``, ``"full field"``, ``"k=1.4"`` (350 px) or ``"k=1.4 native"`` (not resized)."""
    if framing == "full photo":
        return sample
    if framing == "full field":
        return full_field(sample)
    k = float(framing.split()[0].removeprefix("k="))
    return crop(sample, k, None if framing.endswith("native") else 350)


def _blur(image):
    from scipy.ndimage import gaussian_filter

    sigma = 0.006 * max(image.shape[:2])  # about 2 px at 350 px: a soft, out-of-focus photo
    return np.clip(gaussian_filter(image.astype(np.float32), (sigma, sigma, 0)) + 0.5, 0, 255).astype(np.uint8)


def _cast(image):
    return np.clip(image * np.array([0.75, 1.1, 1.35]), 0, 255).astype(np.uint8)


def _gamma(image):
    return (255 * (image / 255.0) ** 1.6).astype(np.uint8)


def _grayscale(image):
    gray = (image @ np.array([0.299, 0.587, 0.114])).astype(np.uint8)
    return np.repeat(gray[..., None], 3, axis=-1)


def jpeg(image: np.ndarray, quality: int = 30) -> np.ndarray:
    """``image`` (uint8 RGB) saved as JPEG at ``quality`` and read back."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    return np.asarray(Image.open(buffer).convert("RGB"))


def _low_resolution(image):
    height, width = image.shape[:2]
    small = sk_resize(image, (max(height // 4, 8), max(width // 4, 8), 3), order=1, anti_aliasing=True,
                      preserve_range=True)
    return np.clip(sk_resize(small, (height, width, 3), order=1, preserve_range=True) + 0.5, 0, 255).astype(np.uint8)


CAMERAS = {"as taken": None, "blur": _blur, "colour cast": _cast, "gamma 1.6": _gamma, "grayscale": _grayscale,
           "JPEG q30": jpeg, "low resolution /4": _low_resolution}


def recolour(sample: Sample, camera: str) -> Sample:
    transform = CAMERAS[camera]
    if transform is None:
        return sample
    return make_sample(sample.name, transform(sample.image), sample.disc, sample.cup, **sample.extra)
