"""Annotated fundus datasets: Drishti-GS1, REFUGE-style label maps, folders of masks, arrays.

Every loader returns a list of :class:`Sample` (RGB uint8 image, bool disc and cup
masks of the image's size, cup inside disc).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .image_files import IMAGE_SUFFIXES, decode_refuge_map, read_image

MASK_FOLDERS = ("masks", "labels", "gt", "GT", "Disc_Cup_Masks", "annotations")
MASK_SUFFIX = re.compile(r"_(disc|cup|od|oc|mask|label|labels|gt)$", re.IGNORECASE)


@dataclass
class Sample:
    name: str
    image: np.ndarray
    disc: np.ndarray
    cup: np.ndarray
    extra: dict = field(default_factory=dict)
    """Dataset-specific facts, e.g. Drishti-GS1's ``expert_cdrs``."""


def rgb_uint8(image: np.ndarray) -> np.ndarray:
    """Any 2D image -> ``(H, W, 3)`` uint8 (grayscale repeated, alpha dropped, range stretched)."""
    array = np.asarray(image)
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=-1)
    array = array[..., :3]
    if array.shape[-1] == 1:
        array = np.repeat(array, 3, axis=-1)
    if array.dtype == np.uint8:
        return np.ascontiguousarray(array)
    array = array.astype(np.float32)
    low, high = float(array.min()), float(array.max())
    if np.issubdtype(np.asarray(image).dtype, np.integer) and low >= 0:
        high = float(np.iinfo(np.asarray(image).dtype).max)
        low = 0.0
    scaled = (array - low) / max(high - low, 1e-12) * 255.0
    return np.clip(scaled + 0.5, 0, 255).astype(np.uint8)


def make_sample(name: str, image: np.ndarray, disc: np.ndarray, cup: np.ndarray, **extra) -> Sample:
    """Check sizes and build a sample; the cup is limited to the disc."""
    image = rgb_uint8(image)
    disc = np.asarray(disc)
    cup = np.asarray(cup)
    if disc.ndim == 3:
        disc = disc[..., 0]
    if cup.ndim == 3:
        cup = cup[..., 0]
    if disc.shape != image.shape[:2] or cup.shape != image.shape[:2]:
        raise ValueError(
            f"{name}: masks of {disc.shape} and {cup.shape} do not match the image's {image.shape[:2]}"
        )
    disc = disc != 0
    return Sample(name, image, disc, (cup != 0) & disc, dict(extra))


def binary_mask(mask: np.ndarray, fraction: float = 0.5) -> np.ndarray:
    """Inside where a mask or soft map reaches ``fraction`` of its full scale (one rule for every reader).

    Full scale is 1 for boolean masks and for values within [0, 1] (0/1 masks, probabilities),
    255 for values up to 255 (8-bit masks, also when stored as 16-bit or float), and 65535 up
    to 65535.  So 0/255 and 0/65535 masks read as drawn, and a Drishti-GS1 soft map (255 =
    all four experts) at 0.5 gives "at least two experts" (>= 128).  A 3D array uses its
    first channel.
    """
    mask = np.asarray(mask)
    if mask.ndim == 3:
        mask = mask[..., 0]
    if mask.dtype == bool:
        return mask.copy()
    if mask.size == 0:
        return np.zeros(mask.shape, bool)
    low, high = float(np.nanmin(mask)), float(np.nanmax(mask))
    if low < 0 or not np.isfinite(high) or high > 65535:
        raise ValueError(f"mask values run from {low:g} to {high:g}; expected 0..1, 0..255 or 0..65535")
    scale = 1.0 if high <= 1 else 255.0 if high <= 255 else 65535.0
    cut = fraction * scale
    if np.issubdtype(mask.dtype, np.integer):
        cut = np.ceil(cut - 1e-9)  # integer levels: 0.5 of 255 means >= 128
    return mask >= cut


def is_drishti(root: Path) -> bool:
    return (root / "Drishti-GS1_files").is_dir() or ((root / "Training" / "GT").is_dir() and (root / "Test").is_dir())


def load_drishti(root: str | os.PathLike, split: str = "train", threshold: int = 128) -> list[Sample]:
    """Drishti-GS1 release layout; soft maps binarised at ``>= threshold`` (128: two of four experts)."""
    root = Path(root)
    base = root / "Drishti-GS1_files" if (root / "Drishti-GS1_files").is_dir() else root
    folders = {"train": ["Training"], "training": ["Training"], "test": ["Test"], "all": ["Training", "Test"]}
    if split not in folders:
        raise ValueError(f"split must be train, test or all for Drishti-GS1, got {split!r}")
    samples = []
    for folder in folders[split]:
        images = sorted((base / folder / "Images").glob("*.png"))
        if not images:
            raise ValueError(f"{base / folder / 'Images'}: no images found; is this the Drishti-GS1 layout?")
        for path in images:
            gt = base / folder / "GT" / path.stem
            disc = binary_mask(read_image(gt / "SoftMap" / f"{path.stem}_ODsegSoftmap.png"), threshold / 255)
            cup = binary_mask(read_image(gt / "SoftMap" / f"{path.stem}_cupsegSoftmap.png"), threshold / 255)
            cdr_file = gt / f"{path.stem}_cdrValues.txt"
            extra = {"split": folder.lower()}
            if cdr_file.is_file():
                extra["expert_cdrs"] = [float(v) for v in cdr_file.read_text().split()]
            samples.append(make_sample(path.stem, read_image(path), disc, cup, **extra))
    return samples


def _images_in(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.iterdir()
        if p.suffix.lower() in IMAGE_SUFFIXES and not MASK_SUFFIX.search(p.stem) and not p.name.startswith(".")
    )


def _find(folder: Path, stem: str) -> Path | None:
    for suffix in IMAGE_SUFFIXES:
        for candidate in (folder / f"{stem}{suffix}", folder / f"{stem}{suffix.upper()}"):
            if candidate.is_file():
                return candidate
    return None


def load_folder(root: str | os.PathLike) -> list[Sample]:
    """A folder of images with their masks, in either form:

    * ``NAME_disc.png`` and ``NAME_cup.png`` (masks read by :func:`binary_mask`), beside the
      images or in a ``masks/`` (``labels/``, ``gt/``) folder;
    * one REFUGE-style label map per image (255 background, 128 rim, 0 cup) named ``NAME.png``
      (or ``NAME_mask.png``) in a mask folder.

    Images are the files in ``root/images/`` if that exists, else in ``root``.
    """
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"{root}: not a folder")
    image_folder = root / "images" if (root / "images").is_dir() else root
    mask_folders = [image_folder] + [root / name for name in MASK_FOLDERS if (root / name).is_dir()]
    samples = []
    for path in _images_in(image_folder):
        disc_path = cup_path = label_path = None
        for folder in mask_folders:
            disc_path = disc_path or _find(folder, f"{path.stem}_disc") or _find(folder, f"{path.stem}_od")
            cup_path = cup_path or _find(folder, f"{path.stem}_cup") or _find(folder, f"{path.stem}_oc")
            if folder != image_folder:
                label_path = label_path or _find(folder, path.stem) or _find(folder, f"{path.stem}_mask")
        if disc_path and cup_path:
            disc, cup = binary_mask(read_image(disc_path)), binary_mask(read_image(cup_path))
        elif label_path:
            disc, cup = decode_refuge_map(read_image(label_path))
        else:
            raise ValueError(f"{path}: no masks found (expected {path.stem}_disc.png and {path.stem}_cup.png, "
                             f"or a REFUGE-style map {path.stem}.png in a masks/ folder)")
        samples.append(make_sample(path.stem, read_image(path), disc, cup))
    if not samples:
        raise ValueError(f"{image_folder}: no images found")
    return samples


def load_dataset(root: str | os.PathLike, split: str = "train") -> list[Sample]:
    """Load Drishti-GS1 (by its layout, with ``split``) or a folder of images and masks."""
    root = Path(root)
    if not root.exists():
        raise ValueError(f"{root}: no such folder")
    if is_drishti(root):
        return load_drishti(root, split)
    return load_folder(root)


def samples_from_arrays(pairs) -> list[Sample]:
    """In-memory ``(image, disc, cup)`` triples (e.g. napari layers) -> samples."""
    return [make_sample(f"array_{i}", image, disc, cup) for i, (image, disc, cup) in enumerate(pairs)]
