"""Reading every kind of input file users have: a zoo of generated files, item checks and a fuzz test.

Nothing here is stored in git: every file is written by the test from the sample photograph.
"""

import io
import struct
import warnings
import zlib

import numpy as np
import pytest
import tifffile
from PIL import Image

from napari_attunet import segment
from napari_attunet.image_files import DEFAULT_MAX_PIXELS, IMAGE_SUFFIXES, ImageReadWarning, orient, read_image


@pytest.fixture(scope="module")
def photo(retina):
    """A small non-square fundus photograph (uint8 RGB) to write in every format."""
    return np.ascontiguousarray(retina[100:1300:8, 40:1380:8])  # 150 x 168


@pytest.fixture(scope="module")
def fundus(retina):
    """A non-square fundus photograph large enough for the network (uint8 RGB)."""
    return np.ascontiguousarray(retina[::3, ::3][20:450])  # 430 x 471


def gray(rgb):
    return np.asarray(Image.fromarray(rgb).convert("L"))


def pil(array, path, fmt=None, **options):
    Image.fromarray(array).save(path, format=fmt, **options)
    return path


def with_exif_orientation(array, path, orientation, fmt):
    image = Image.fromarray(array)
    exif = image.getexif()
    exif[0x0112] = orientation
    image.save(path, format=fmt, exif=exif, **({"quality": 95} if fmt == "JPEG" else {}))
    return path


def tiff(array, path, **options):
    if array.ndim == 3 and array.shape[-1] in (3, 4):
        options.setdefault("photometric", "rgb")  # colour samples, as cameras write them
    tifffile.imwrite(path, array, **options)
    return path


def white_under_transparent(rgb):
    """RGBA: a transparent border whose colour is white (as some exporters write it)."""
    height, width = rgb.shape[:2]
    yy, xx = np.mgrid[:height, :width]
    inside = np.hypot((yy - height / 2) / height, (xx - width / 2) / width) < 0.45
    rgba = np.dstack([rgb, np.where(inside, 255, 0).astype(np.uint8)])
    rgba[~inside, :3] = 255
    return rgba, inside


def animated_gif(rgb, path):
    frames = [Image.fromarray(rgb), Image.fromarray(255 - rgb)]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100)
    return path


def header_only_png(width, height, path):
    """A PNG whose header claims ``width`` x ``height`` pixels (a decompression bomb's signature)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    body = zlib.compress(b"\0" * 64)
    idat = b"IDAT" + body
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk))
                     + struct.pack(">I", len(body)) + idat + struct.pack(">I", zlib.crc32(idat)))
    return path


def written(path, data):
    (path.write_text if isinstance(data, str) else path.write_bytes)(data)
    return path


def same(expected):
    def check(array, photo):
        np.testing.assert_array_equal(array, expected(photo))
    return check


def close(expected, tolerance=6.0):
    def check(array, photo):
        reference = expected(photo)
        assert array.shape == reference.shape
        assert np.abs(array.astype(float) - reference).mean() < tolerance
    return check


def scaled(expected, dtype):
    def check(array, photo):
        assert array.dtype == dtype
        reference = expected(photo).astype(np.float64)
        ratio = array.astype(np.float64).max() / reference.max()
        np.testing.assert_allclose(array / ratio, reference, atol=1e-3 * reference.max())
    return check


def rgb(photo):
    return photo


def rgb_black_outside(photo):
    _, inside = white_under_transparent(photo)
    return np.where(inside[..., None], photo, 0)


READ = "reads"
REFUSED = "refused"
WARNS = "warns"

# kind: (write(photo, folder) -> path, outcome, check or message pattern)
ZOO = {
    "png rgb": (lambda p, d: pil(p, d / "a.png"), READ, same(rgb)),
    "png gray": (lambda p, d: pil(gray(p), d / "a.png"), READ, same(gray)),
    "png gray 16 bit": (lambda p, d: pil(gray(p).astype(np.uint16) * 257, d / "a.png"), READ,
                        scaled(gray, np.uint16)),
    "png rgba opaque": (lambda p, d: pil(np.dstack([p, np.full(p.shape[:2], 255, np.uint8)]), d / "a.png"),
                        READ, same(rgb)),
    "png rgba white under transparent": (lambda p, d: pil(white_under_transparent(p)[0], d / "a.png"), READ,
                                         same(rgb_black_outside)),
    "png gray with alpha": (lambda p, d: pil(np.dstack([gray(p), np.full(p.shape[:2], 255, np.uint8)]),
                                             d / "a.png"), READ, same(gray)),
    "png palette": (lambda p, d: pil(gray(p), d / "a.png") and Image.open(d / "a.png").convert("P").save(
        d / "p.png") or d / "p.png", READ, lambda a, p: a.shape == p.shape),
    "png 1 bit": (lambda p, d: (Image.fromarray(gray(p) > 100).save(d / "a.png"), d / "a.png")[1], READ,
                  same(lambda p: gray(p) > 100)),
    "png exif orientation 6": (lambda p, d: with_exif_orientation(np.rot90(p, 1), d / "a.png", 6, "PNG"), READ,
                               same(rgb)),
    "png named .tif": (lambda p, d: pil(p, d / "a.tif", "PNG"), READ, same(rgb)),
    "jpeg rgb": (lambda p, d: pil(p, d / "a.jpg", quality=95), READ, close(rgb)),
    "jpeg gray": (lambda p, d: pil(gray(p), d / "a.jpg", quality=95), READ, close(gray)),
    "jpeg cmyk": (lambda p, d: (Image.fromarray(p).convert("CMYK").save(d / "a.jpg", quality=95),
                                d / "a.jpg")[1], READ, close(rgb, 10)),
    "jpeg exif orientation 8": (lambda p, d: with_exif_orientation(np.rot90(p, -1), d / "a.jpg", 8, "JPEG"),
                                READ, close(rgb)),
    "jpeg named .png": (lambda p, d: pil(p, d / "a.png", "JPEG", quality=95), READ, close(rgb)),
    "bmp rgb": (lambda p, d: pil(p, d / "a.bmp"), READ, same(rgb)),
    "gif single frame": (lambda p, d: pil(gray(p), d / "a.gif"), READ, lambda a, p: a.shape == p.shape),
    "gif animated": (lambda p, d: animated_gif(p, d / "a.gif"), WARNS, "2 frames; only frame 1 is used"),
    "webp lossless rgb": (lambda p, d: pil(p, d / "a.webp", lossless=True), READ, same(rgb)),
    "webp rgba white under transparent": (lambda p, d: pil(white_under_transparent(p)[0], d / "a.webp",
                                                           lossless=True), READ, same(rgb_black_outside)),
    "tiff uint8 rgb": (lambda p, d: tiff(p, d / "a.tif"), READ, same(rgb)),
    "tiff uint16 rgb": (lambda p, d: tiff(p.astype(np.uint16) * 257, d / "a.tif"), READ, scaled(rgb, np.uint16)),
    "tiff uint32 gray": (lambda p, d: tiff(gray(p).astype(np.uint32) << 20, d / "a.tif"), READ,
                         scaled(gray, np.uint32)),
    "tiff int32 gray": (lambda p, d: tiff(gray(p).astype(np.int32) * 1000, d / "a.tif"), READ,
                        scaled(gray, np.int32)),
    "tiff int16 rgb": (lambda p, d: tiff(p.astype(np.int16) * 100, d / "a.tif"), READ, scaled(rgb, np.int16)),
    "tiff float32 rgb": (lambda p, d: tiff(p.astype(np.float32) / 255, d / "a.tif"), READ,
                         scaled(rgb, np.float32)),
    "tiff float64 gray": (lambda p, d: tiff(gray(p) / 255.0, d / "a.tif"), READ, scaled(gray, np.float64)),
    "tiff float16 gray": (lambda p, d: tiff((gray(p) / 255.0).astype(np.float16), d / "a.tif"), READ,
                          lambda a, p: a.dtype == np.float16 and a.shape == p.shape[:2]),
    "tiff planar rgb": (lambda p, d: tiff(np.moveaxis(p, -1, 0).copy(), d / "a.tif", photometric="rgb",
                                          planarconfig="separate"), READ, same(rgb)),
    "tiff rgba unassociated alpha": (lambda p, d: tiff(white_under_transparent(p)[0], d / "a.tif",
                                                       photometric="rgb", extrasamples=["unassalpha"]), READ,
                                     same(rgb_black_outside)),
    "tiff zlib compressed": (lambda p, d: tiff(p, d / "a.tif", compression="zlib"), READ, same(rgb)),
    "tiff lzw compressed (by Pillow)": (lambda p, d: pil(p, d / "a.tif", "TIFF", compression="tiff_lzw"), READ,
                                        same(rgb)),
    "tiff jpeg compressed (by Pillow)": (lambda p, d: pil(p, d / "a.tif", "TIFF", compression="jpeg"), READ,
                                         close(rgb)),
    "tiff packbits compressed (by Pillow)": (lambda p, d: pil(p, d / "a.tif", "TIFF", compression="packbits"),
                                             READ, same(rgb)),
    "tiff big-endian uint16": (lambda p, d: tiff(gray(p).astype(">u2") * 257, d / "a.tif", byteorder=">"), READ,
                               scaled(gray, np.uint16)),
    "bigtiff": (lambda p, d: tiff(p, d / "a.tif", bigtiff=True), READ, same(rgb)),
    "tiff orientation 6": (lambda p, d: tiff(np.rot90(p, 1).copy(), d / "a.tif",
                                             extratags=[(274, "H", 1, 6, True)]), READ, same(rgb)),
    "tiff min-is-white": (lambda p, d: tiff(255 - gray(p), d / "a.tif", photometric="miniswhite"), READ,
                          same(gray)),
    "tiff palette": (lambda p, d: tiff(gray(p), d / "a.tif", photometric="palette",
                                       colormap=np.tile(np.arange(256, dtype=np.uint16) * 257, (3, 1))), READ,
                     scaled(lambda p: np.dstack([gray(p)] * 3), np.uint16)),
    "tiff 1 bit": (lambda p, d: tiff(gray(p) > 100, d / "a.tif"), READ, same(lambda p: gray(p) > 100)),
    "tiff two pages (a stack)": (lambda p, d: tiff(np.stack([gray(p), gray(p)]), d / "a.tif"), READ,
                                 lambda a, p: a.shape == (2, *p.shape[:2])),
    "tiff named .jpg": (lambda p, d: tiff(p, d / "a.jpg"), READ, same(rgb)),
    "tiff complex": (lambda p, d: tiff(gray(p).astype(np.complex64), d / "a.tif"), REFUSED,
                     "complex64 are not supported"),
    "tiff cmyk": (lambda p, d: tiff(np.dstack([p, p[..., :1]]), d / "a.tif", photometric="separated"), REFUSED,
                  "colour space SEPARATED is not supported"),
    "empty file": (lambda p, d: written(d / "a.png", b""), REFUSED, "empty"),
    "text named .png": (lambda p, d: written(d / "a.png", "hello"), REFUSED, "not an image napari-attunet reads"),
    "postscript named .png": (lambda p, d: written(d / "a.png", "%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 9 9"),
                              REFUSED, "not an image napari-attunet reads"),
    "truncated png": (lambda p, d: written(d / "a.png", pil(p, d / "b.png").read_bytes()[:2000]), REFUSED,
                      "cannot read image"),
    "truncated tiff": (lambda p, d: written(d / "a.tif", tiff(p, d / "b.tif").read_bytes()[:3000]), REFUSED,
                       "cannot read image"),
    "15000 x 15000 png": (lambda p, d: header_only_png(15000, 15000, d / "a.png"), REFUSED,
                          "15000 x 15000 pixels.*exceeds the limit"),
    "300 megapixel tiff": (lambda p, d: _huge_tiff(d / "a.tif"), REFUSED, "15000 x 20000 pixels.*exceeds"),
    "missing file": (lambda p, d: d / "missing.png", REFUSED, "no such file"),
    "folder": (lambda p, d: (d / "x.png").mkdir() or d / "x.png", REFUSED, "no such file"),
}


def _huge_tiff(path):
    """A TIFF whose page is 20000 x 15000 pixels (a sparse file: nothing is held in memory)."""
    tifffile.imwrite(path, shape=(20000, 15000), dtype=np.uint8)
    return path


def test_the_zoo_has_at_least_25_kinds():
    assert len(ZOO) >= 25 and sum(outcome == READ for _, outcome, _ in ZOO.values()) >= 25


@pytest.mark.parametrize("kind", list(ZOO))
def test_input_zoo(kind, photo, tmp_path):
    write, outcome, expectation = ZOO[kind]
    path = write(photo, tmp_path)
    if outcome == REFUSED:
        with pytest.raises(ValueError, match=expectation) as info:
            read_image(path)
        assert str(path) in str(info.value)
        return
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        array = read_image(path)
    messages = [str(w.message) for w in caught if issubclass(w.category, ImageReadWarning)]
    if outcome == WARNS:
        assert len(messages) == 1 and expectation in messages[0] and str(path) in messages[0]
        return
    assert not messages
    assert isinstance(array, np.ndarray) and array.dtype.isnative
    assert expectation(array, photo) is not False


# ---------------------------------------------------------------------------- 1: refusals and dtypes

def test_a_decompression_bomb_is_a_value_error_naming_the_file_through_the_api_too(tmp_path):
    path = header_only_png(15000, 15000, tmp_path / "bomb.png")
    for call in (lambda: read_image(path), lambda: segment(str(path), device="cpu")):
        with pytest.raises(ValueError, match=r"bomb.png: 15000 x 15000 pixels \(225 million\) exceeds"):
            call()


def test_the_pixel_limit_is_a_parameter(photo, tmp_path):
    path = pil(photo, tmp_path / "a.png")
    height, width = photo.shape[:2]
    assert read_image(path, max_pixels=height * width).shape == photo.shape
    with pytest.raises(ValueError, match="a.png.*exceeds the limit"):
        read_image(path, max_pixels=height * width - 1)
    assert read_image(path, max_pixels=None).shape == photo.shape
    assert DEFAULT_MAX_PIXELS >= 100_000_000  # a 100-megapixel photograph is read by default


def test_a_png_over_pillows_own_limit_reads_when_the_limit_allows_it(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # Pillow's bomb error fires above 2000 pixels
    path = pil(np.full((60, 60), 7, np.uint8), tmp_path / "a.png")
    assert read_image(path).shape == (60, 60)
    assert Image.MAX_IMAGE_PIXELS == 1000


def dice(a, b):
    return 2 * np.logical_and(a, b).sum() / max(a.sum() + b.sum(), 1)


def test_integer_and_float_tiffs_segment_like_the_8_bit_photo(fundus, tmp_path, default_model):
    reference = segment(fundus, default_model, "cpu", attention=False)
    assert reference.disc_found
    kinds = ((np.uint32, 2**20), (np.int32, 1000), (np.uint16, 257), (np.int16, 100), (np.float32, 1 / 255),
             (np.float64, 1 / 255), (np.uint64, 2**30), (np.int64, 3))
    paths = [tiff((fundus.astype(np.float64) * scale).astype(dtype), tmp_path / f"{np.dtype(dtype).name}.tif")
             for dtype, scale in kinds]
    results = segment(paths, default_model, "cpu", attention=False, batch_size=len(paths))
    for (dtype, _), result in zip(kinds, results):
        assert dice(result.disc, reference.disc) >= 0.99, dtype
        assert dice(result.cup, reference.cup) >= 0.99, dtype


# ---------------------------------------------------------------------------- 3: TIFF orientation

def stored_for(upright, orientation):
    """What a camera stores so that ``orientation`` displays ``upright`` (PIL's inverse operations)."""
    inverse = {1: None, 2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
               4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_90,
               7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_270}[orientation]
    image = Image.fromarray(upright)
    return np.asarray(image if inverse is None else image.transpose(inverse))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_tiff_orientation_is_applied_like_exif(photo, tmp_path, orientation):
    stored = stored_for(photo, orientation)
    path = tiff(stored, tmp_path / "a.tif", extratags=[(274, "H", 1, orientation, True)])
    np.testing.assert_array_equal(read_image(path), photo)
    # Pillow's EXIF implementation agrees with the TIFF one on the same stored pixels.
    exif_file = with_exif_orientation(stored, tmp_path / "a.png", orientation, "PNG")
    np.testing.assert_array_equal(read_image(exif_file), photo)
    # Planar and 16-bit pages are turned alike.
    planar = tiff(np.moveaxis(stored, -1, 0).astype(np.uint16).copy(), tmp_path / "b.tif", photometric="rgb",
                  planarconfig="separate", extratags=[(274, "H", 1, orientation, True)])
    np.testing.assert_array_equal(read_image(planar), photo)


def test_orient_turns_stacks_on_their_image_axes():
    stack = np.arange(2 * 3 * 4).reshape(2, 3, 4)
    np.testing.assert_array_equal(orient(stack, 6, y_axis=1), np.stack([np.rot90(s, -1) for s in stack]))


def test_a_sideways_tiff_gives_the_upright_vcdr(fundus, tmp_path, default_model):
    path = tiff(stored_for(fundus, 6), tmp_path / "sideways.tif", extratags=[(274, "H", 1, 6, True)])
    upright = segment(fundus, default_model, "cpu", attention=False)
    turned = segment(str(path), default_model, "cpu", attention=False)
    assert turned.disc.shape == fundus.shape[:2]
    np.testing.assert_array_equal(turned.disc, upright.disc)
    assert turned.vcdr == upright.vcdr


# ---------------------------------------------------------------------------- 4: smaller ones

def test_planar_rgb_tiff_reads_as_rgb(photo, tmp_path):
    path = tiff(np.moveaxis(photo, -1, 0).copy(), tmp_path / "planar.tif", photometric="rgb",
                planarconfig="separate")
    np.testing.assert_array_equal(read_image(path), photo)


def test_format_is_detected_from_content_not_name(photo, tmp_path):
    for name, fmt in (("png.tif", "PNG"), ("bmp.jpg", "BMP"), ("webp.png", "WEBP")):
        path = pil(photo, tmp_path / name, fmt, **({"lossless": True} if fmt == "WEBP" else {}))
        np.testing.assert_array_equal(read_image(path), photo)
    np.testing.assert_array_equal(read_image(tiff(photo, tmp_path / "tif.png")), photo)


def test_folders_take_every_format_that_files_take(photo, tmp_path):
    from napari_attunet.segment_command import collect_inputs

    formats = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP", ".gif": "GIF", ".webp": "WEBP"}
    assert set(IMAGE_SUFFIXES) == set(formats) | {".tif", ".tiff"}
    for suffix in IMAGE_SUFFIXES:
        path = tmp_path / f"photo{suffix.replace('.', '_')}{suffix}"
        tiff(photo, path) if suffix in (".tif", ".tiff") else pil(photo, path, formats[suffix])
        assert read_image(path).shape[:2] == photo.shape[:2]
    files, problems = collect_inputs([str(tmp_path)])
    assert not problems and sorted(job.source.suffix for job in files) == sorted(IMAGE_SUFFIXES)


def test_rgba_with_white_under_transparent_pixels_is_composited_onto_black(fundus, tmp_path, default_model):
    rgba, inside = white_under_transparent(fundus)
    reference = segment(np.where(inside[..., None], fundus, 0).astype(np.uint8), default_model, "cpu",
                        attention=False)
    assert reference.disc_found
    from_file = segment(str(pil(rgba, tmp_path / "rgba.png")), default_model, "cpu", attention=False)
    from_array = segment(rgba, default_model, "cpu", attention=False)
    for result in (from_file, from_array):
        np.testing.assert_array_equal(result.disc, reference.disc)


def test_an_animated_gif_says_which_frame_is_used(photo, tmp_path):
    path = animated_gif(photo, tmp_path / "movie.gif")
    with pytest.warns(ImageReadWarning, match=r"movie.gif: animated image with 2 frames; only frame 1 is used"):
        first = read_image(path)
    assert first.shape[:2] == photo.shape[:2]


def test_segment_accepts_a_path_and_refuses_bytes(fundus, tmp_path, default_model):
    path = pil(fundus, tmp_path / "x.png")
    from_path = segment(str(path), default_model, "cpu", attention=False)
    from_array = segment(fundus, default_model, "cpu", attention=False)
    np.testing.assert_array_equal(from_path.disc, from_array.disc)
    both = segment([path, str(path)], default_model, "cpu", attention=False)
    assert len(both) == 2 and all(np.array_equal(r.disc, from_array.disc) for r in both)
    with pytest.raises(ValueError, match="missing.png: no such file"):
        segment("missing.png", default_model, "cpu")
    with pytest.raises(ValueError, match="pass an image array or the path"):
        segment(path.read_bytes(), default_model, "cpu")


# ---------------------------------------------------------------------------- fuzz

def small_files(photo):
    tiny = np.ascontiguousarray(photo[:48, :64])
    png, jpeg, tif = io.BytesIO(), io.BytesIO(), io.BytesIO()
    Image.fromarray(tiny).save(png, "PNG")
    Image.fromarray(tiny).save(jpeg, "JPEG", quality=90)
    tifffile.imwrite(tif, tiny, compression="zlib", rowsperstrip=16)
    return {"png": png.getvalue(), "jpg": jpeg.getvalue(), "tif": tif.getvalue()}


def mutate(data: bytes, rng: np.random.Generator) -> bytes:
    data = bytearray(data)
    action = rng.integers(4)
    if action == 0:  # a few random bytes
        for _ in range(rng.integers(1, 9)):
            data[rng.integers(len(data))] = rng.integers(256)
    elif action == 1:  # truncation
        data = data[: rng.integers(1, len(data))]
    elif action == 2:  # bytes inserted
        at = rng.integers(len(data))
        data[at:at] = rng.integers(0, 256, rng.integers(1, 32)).astype(np.uint8).tobytes()
    else:  # a header byte, where the sizes and offsets are
        data[rng.integers(min(64, len(data)))] = rng.integers(256)
    return bytes(data)


@pytest.mark.parametrize("kind", ["png", "jpg", "tif"])
def test_damaged_files_are_clean_errors_or_valid_reads(photo, tmp_path, kind):
    original = small_files(photo)[kind]
    rng = np.random.default_rng({"png": 1, "jpg": 2, "tif": 3}[kind])
    outcomes = {"read": 0, "refused": 0}
    for trial in range(120):
        path = tmp_path / f"mutant_{trial}.{kind}"
        path.write_bytes(mutate(original, rng))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                array = read_image(path)
        except ValueError as error:
            assert str(path) in str(error), error
            outcomes["refused"] += 1
            continue
        assert isinstance(array, np.ndarray) and array.dtype.kind in "biuf" and array.ndim >= 2
        outcomes["read"] += 1
    assert outcomes["refused"] > 0
