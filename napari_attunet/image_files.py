"""Reading fundus photographs and masks, writing masks atomically.

:func:`read_image` decides the format from the file's content, not its name: TIFF
(and BigTIFF) through tifffile, PNG, JPEG, BMP, GIF and WebP through Pillow.  Every
file it cannot read, or will not read, is a ``ValueError`` naming the file:

* at most ``max_pixels`` pixels (:data:`DEFAULT_MAX_PIXELS`, 150 million: a 100-megapixel
  photograph fits; it is checked from the header, before anything is decoded);
* integer (8 to 64 bit, signed or not), float and 1-bit pixels; other kinds are refused;
* the EXIF (JPEG, PNG, WebP) or TIFF orientation is applied, all eight of them;
* transparency is composited onto black, the colour of a fundus photograph's border;
* planar TIFFs ``(3, H, W)`` read as RGB; palette images as RGB; inverted grayscale
  TIFFs (MinIsWhite) are inverted back;
* of an animated image (GIF, PNG, WebP) the first frame is read, with an
  :class:`ImageReadWarning` that says so.
"""

from __future__ import annotations

import csv
import io
import math
import os
import threading
import warnings
from pathlib import Path

import numpy as np

from .atomic import atomic_write_bytes

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".webp")
"""File names that folders are searched for (explicit files are read whatever their name)."""
PILLOW_FORMATS = ("PNG", "JPEG", "MPO", "BMP", "GIF", "WEBP")
"""What Pillow may decode (MPO: camera JPEGs with a preview image); nothing else is tried."""
FORMAT_NAMES = "PNG, JPEG, TIFF, BMP, GIF or WebP"
DEFAULT_MAX_PIXELS = 150_000_000
"""Largest image :func:`read_image` decodes unless told otherwise: a 100-megapixel photograph
takes about 1.3 GB while it is read and segmented (docs/reliability.md)."""
_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_PILLOW_LIMIT = threading.Lock()


class ImageReadWarning(UserWarning):
    """A file was read, but not all of it was used (e.g. the first frame of an animation)."""


class _Refused(ValueError):
    """A refusal whose message already names the file."""


def read_image(path: str | os.PathLike, *, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read an image file as an array (format from its content), with its orientation applied.

    Returns ``(H, W)`` or ``(H, W, 3)`` for photographs and masks (a multi-page TIFF keeps
    its pages in front: ``(N, H, W[, 3])``).  ``max_pixels`` (None: no limit) bounds
    the pixels decoded.  Raises ``ValueError`` naming the file when it is missing,
    too large, of an unsupported kind or cannot be decoded.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    try:
        with open(path, "rb") as file:
            head = file.read(4)
        if not head:
            raise _Refused(f"{path}: the file is empty")
        array = _read_tiff(path, max_pixels) if head in _TIFF_MAGIC else _read_pillow(path, max_pixels,
                                                                                       _pillow_formats())
        return _native(path, array)
    except _Refused:
        raise
    except MemoryError:
        raise ValueError(f"{path}: too large to decode in the memory available") from None
    except Exception as error:  # decoders raise many types on damaged files
        raise ValueError(f"{path}: cannot read image ({type(error).__name__}: {error})") from None


def _check_pixels(path: Path, width: int, height: int, max_pixels: int | None, pages: int = 1) -> None:
    pixels = width * height * pages
    if max_pixels is not None and pixels > max_pixels:
        size = f"{width} x {height}" + (f" x {pages} pages of" if pages > 1 else "")
        raise _Refused(f"{path}: {size} pixels ({pixels / 1e6:.0f} million) exceeds the limit of "
                       f"{max_pixels / 1e6:g} million pixels; raise the limit (max_pixels, --max-pixels) if this "
                       "machine has the memory, or reduce the image")


def _native(path: Path, array: np.ndarray) -> np.ndarray:
    """Refuse pixel kinds the pipeline cannot use; native byte order."""
    if array.dtype.kind not in "biuf":
        raise _Refused(f"{path}: pixels of type {array.dtype} are not supported; expected integer or float")
    if not array.dtype.isnative:
        array = array.astype(array.dtype.newbyteorder("="))
    return array


def flatten_alpha(array: np.ndarray) -> np.ndarray:
    """Composite an image with an alpha channel (last) onto black; drops the channel.

    Integer alpha is relative to its type's maximum, float alpha to 1.  Images whose
    alpha is opaque everywhere only lose the channel.
    """
    colour, alpha = array[..., :-1], array[..., -1:]
    full = np.iinfo(array.dtype).max if array.dtype.kind in "iu" else 1.0
    if array.dtype.kind == "b" or bool((alpha >= full).all()):
        out = colour
    elif array.dtype == np.uint8:
        out = ((colour.astype(np.uint16) * alpha + 127) // 255).astype(np.uint8)
    elif array.dtype.kind in "iu":
        weights = np.clip(alpha, 0, full).astype(np.float64) / full
        out = np.rint(colour * weights).astype(array.dtype)
    else:
        out = (colour * np.clip(alpha, 0.0, 1.0)).astype(array.dtype)
    return out[..., 0] if out.shape[-1] == 1 else out


# ---------------------------------------------------------------------------- Pillow

def _pillow_formats() -> tuple[str, ...]:
    """:data:`PILLOW_FORMATS` that this Pillow registers (newer ones open MPO files as JPEG)."""
    from PIL import (  # noqa: F401 (importing the plugins registers their formats)
        BmpImagePlugin,
        GifImagePlugin,
        Image,
        JpegImagePlugin,
        MpoImagePlugin,
        PngImagePlugin,
        WebPImagePlugin,
    )

    return tuple(name for name in PILLOW_FORMATS if name in Image.OPEN)


def _open_pillow(path: Path, formats: tuple[str, ...]):
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit applies
            try:
                return Image.open(path, formats=formats)
            except Image.DecompressionBombError:  # over Pillow's limit: the caller checks against its own
                with _PILLOW_LIMIT:
                    saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
                    try:
                        return Image.open(path, formats=formats)
                    finally:
                        Image.MAX_IMAGE_PIXELS = saved
    except UnidentifiedImageError:
        raise _Refused(f"{path}: not an image napari-attunet reads ({FORMAT_NAMES})") from None


def _read_pillow(path: Path, max_pixels: int | None, formats: tuple[str, ...]) -> np.ndarray:
    from PIL import ImageOps

    with _open_pillow(path, formats) as image:
        _check_pixels(path, image.width, image.height, max_pixels)
        frames = getattr(image, "n_frames", 1)
        if frames > 1 and image.format != "MPO":  # an MPO's second image is the camera's preview
            warnings.warn(f"{path}: animated image with {frames} frames; only frame 1 is used",
                          ImageReadWarning, stacklevel=4)
        image.load()
        ImageOps.exif_transpose(image, in_place=True)  # no copy: a 100 MP photo is 300 MB
        mode = image.mode
        if mode == "P":
            image = image.convert("RGBA" if "transparency" in image.info else "RGB")
        elif mode in ("PA", "RGBa", "La"):
            image = image.convert("RGBA" if mode != "La" else "LA")
        elif mode in ("CMYK", "YCbCr", "LAB", "HSV", "RGBX"):
            image = image.convert("RGB")
        elif mode == "L" and "transparency" in image.info:
            image = image.convert("LA")
        elif mode == "RGB" and "transparency" in image.info:
            image = image.convert("RGBA")
        array = np.asarray(image)
        if image.mode in ("RGBA", "LA"):
            array = flatten_alpha(array)
    return array


# ---------------------------------------------------------------------------- TIFF

_MINISWHITE, _MINISBLACK, _RGB, _PALETTE, _YCBCR = 0, 1, 2, 3, 6
_ASSOCIATED_ALPHA = 1


def _read_tiff(path: Path, max_pixels: int | None) -> np.ndarray:
    import tifffile

    with tifffile.TiffFile(path) as tif:
        if not tif.series or not tif.pages:
            raise _Refused(f"{path}: a TIFF file without images")
        series = tif.series[0]
        page = series.pages[0] if series.pages and series.pages[0] is not None else tif.pages.first
        axes, shape = series.axes, series.shape
        *pages, height, width = [n for n, axis in zip(shape, axes) if axis != "S"] or [0, 0]
        _check_pixels(path, width, height, max_pixels, math.prod(pages))
        if np.dtype(series.dtype).kind not in "biuf":
            raise _Refused(f"{path}: TIFF pixels of type {series.dtype} are not supported; expected integer "
                           "or float")
        photometric = int(page.photometric)
        if photometric not in (_MINISWHITE, _MINISBLACK, _RGB, _PALETTE, _YCBCR):
            raise _Refused(f"{path}: TIFF colour space {page.photometric.name} is not supported; save it as "
                           "RGB or grayscale")
        try:
            array = series.asarray()
        except (KeyError, ValueError) as error:  # compressions tifffile decodes only with imagecodecs (LZW, ...)
            if "imagecodecs" not in str(error):
                raise
            return _read_pillow(path, max_pixels, ("TIFF",))
        if "S" in axes and axes.index("S") != len(axes) - 1:  # planar: samples first
            array = np.moveaxis(array, axes.index("S"), -1)
        colour = "S" in axes  # the last axis holds samples (channels)
        if photometric == _PALETTE and page.colormap is not None:
            array, colour = np.moveaxis(np.asarray(page.colormap)[:, array], 0, -1), True
        elif photometric == _MINISWHITE and array.dtype.kind != "b":  # 1-bit: as tifffile writes masks
            if array.dtype.kind != "u":
                raise _Refused(f"{path}: inverted grayscale (MinIsWhite) TIFF with {array.dtype} pixels is "
                               "not supported")
            array = np.iinfo(array.dtype).max - array
        elif colour and array.shape[-1] in (2, 4) and page.extrasamples:
            colour = array.shape[-1] == 4
            if page.extrasamples[0] == _ASSOCIATED_ALPHA:  # colour already multiplied by alpha
                array = array[..., :-1]
                array = array[..., 0] if array.shape[-1] == 1 else array
            else:
                array = flatten_alpha(array)
        orientation = page.tags.get("Orientation")
        return orient(array, int(orientation.value) if orientation is not None else 1,
                      array.ndim - 2 - int(colour))


def orient(array: np.ndarray, orientation: int, y_axis: int = 0) -> np.ndarray:
    """Apply a TIFF/EXIF orientation (1-8) to the rows (``y_axis``) and columns after it.

    The numbers say where the stored first row and column belong: 6 means the stored
    image is rotated 90 degrees clockwise for display, 8 counter-clockwise, 2, 4, 5 and 7
    add a mirror.  Unknown values are left as stored, as viewers do.
    """
    y, x = y_axis, y_axis + 1
    if orientation == 2:
        return np.flip(array, x)
    if orientation == 3:
        return np.flip(array, (y, x))
    if orientation == 4:
        return np.flip(array, y)
    if orientation == 5:
        return np.swapaxes(array, y, x)
    if orientation == 6:
        return np.flip(np.swapaxes(array, y, x), x)
    if orientation == 7:
        return np.flip(np.swapaxes(array, y, x), (y, x))
    if orientation == 8:
        return np.flip(np.swapaxes(array, y, x), y)
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
    write_csv_rows(buffer, rows, columns)
    return buffer.getvalue()


def write_csv_rows(file, rows, columns: list[str]) -> None:
    """Write the header and ``rows`` (any iterable, consumed once) as CSV text into ``file``."""
    writer = csv.DictWriter(file, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()})
