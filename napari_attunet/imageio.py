"""Reading fundus photographs and masks, writing masks atomically."""

from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path

import numpy as np

from .files import atomic_write_bytes

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as an array, with the JPEG/TIFF EXIF orientation applied.

    Raises ``ValueError`` naming the file when it is missing or cannot be decoded.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    if path.suffix.lower() in (".tif", ".tiff"):
        import tifffile

        try:
            return np.asarray(tifffile.imread(path))
        except Exception as error:  # tifffile raises many types on damaged files
            raise ValueError(f"{path}: cannot read TIFF ({error})") from None
    try:
        with Image.open(path) as image:
            image = ImageOps.exif_transpose(image)
            if image.mode in ("P", "CMYK", "YCbCr", "LA", "PA"):
                image = image.convert("RGBA" if "A" in image.mode else "RGB")
            array = np.asarray(image)
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise ValueError(f"{path}: cannot read image ({error})") from None
    return array


def encode_image(array: np.ndarray, suffix: str) -> bytes:
    """Encode a uint8 array as PNG, BMP or TIFF (by file suffix)."""
    suffix = suffix.lower()
    buffer = io.BytesIO()
    if suffix in (".tif", ".tiff"):
        import tifffile

        tifffile.imwrite(buffer, array, compression="zlib")
    elif suffix in (".png", ".bmp"):
        from PIL import Image

        Image.fromarray(array).save(buffer, format=suffix[1:].upper())
    else:
        raise ValueError(f"cannot write {suffix!r} files; use .png, .tif or .bmp")
    return buffer.getvalue()


def write_image(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write a uint8 image atomically (temporary file, then rename)."""
    atomic_write_bytes(path, encode_image(np.ascontiguousarray(array), Path(path).suffix))


def mask_to_uint8(mask: np.ndarray) -> np.ndarray:
    """Binary mask -> uint8 with 0 background and 255 structure."""
    return np.where(np.asarray(mask) != 0, 255, 0).astype(np.uint8)


def refuge_map(disc: np.ndarray, cup: np.ndarray) -> np.ndarray:
    """REFUGE-style label map: 255 background, 128 disc rim, 0 cup (cup limited to the disc)."""
    disc = np.asarray(disc) != 0
    cup = (np.asarray(cup) != 0) & disc
    out = np.full(disc.shape, 255, np.uint8)
    out[disc] = 128
    out[cup] = 0
    return out


def decode_refuge_map(label_map: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """REFUGE-style map (255 background, 128 rim, 0 cup) -> disc and cup masks (tolerates JPEG noise)."""
    values = np.asarray(label_map)
    if values.ndim == 3:
        values = values[..., 0]
    return values < 192, values < 64


def rows_to_csv(rows: list[dict], columns: list[str]) -> str:
    """CSV text of ``rows`` with ``columns`` (other keys ignored; NaN written as an empty cell)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()})
    return buffer.getvalue()
