"""The plugin's pure parts (no viewer, no thread): layer data, input checks, measuring, CSV, writers, reader."""

import csv
import io
import math
import os

import numpy as np
import pytest

from napari_attunet._layers.inputs import image_planes, training_pairs
from napari_attunet._layers.links import METADATA_KEY, output_layer_names
from napari_attunet._layers.measurements import (
    RESULT_TEXT_LINES,
    csv_text,
    cup_outside_disc,
    format_measurements,
    measure_labels,
    measurement_rows,
    measurements_as_record,
)
from napari_attunet._layers.results import (
    CUP_COLOUR,
    DISC_COLOUR,
    analysed_box,
    disc_view,
    measurement_record,
    result_layer_data,
)
from napari_attunet._reader import get_reader
from napari_attunet._writers import disc_and_cup, write_mask, write_refuge_map
from napari_attunet.image_files import decode_refuge_map, read_image
from napari_attunet.inference import SegmentationResult
from napari_attunet.measure import measure

CROP = (20, 10, 100, 90)
"""The fake results' analysed crop (top, left, bottom, right)."""


def fake_result(shape=(120, 100), gates=4, disc_found=True, confidence=0.8) -> SegmentationResult:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    r = np.hypot(yy - 60, xx - 50)
    disc = (r < 30) if disc_found else np.zeros(shape, bool)
    cup = (r < 12) & disc
    inside = np.zeros(shape, bool)
    inside[CROP[0]:CROP[2], CROP[1]:CROP[3]] = True
    attention = [np.where(inside, np.clip(1 - r / (20 * (k + 1)), 0, 1), 0).astype(np.float32)
                 for k in range(gates)]
    return SegmentationResult(
        disc=disc, cup=cup, disc_probability=disc.astype(np.float32) * 0.9,
        cup_probability=cup.astype(np.float32) * 0.8, attention=attention if disc_found else
        [np.zeros(shape, np.float32)] * gates, measurements=measure(disc, cup),
        provenance={"package_version": "0.1.0", "weights": "w.safetensors", "weights_sha256": "abc",
                    "disc_threshold": 0.5, "cup_threshold": 0.5, "device": "cpu"},
        crop_box=CROP if disc_found else None, confidence=confidence if disc_found else 0.0,
        messages=[] if disc_found else ["no optic disc found"])


def test_result_layer_data_names_types_and_values():
    result = fake_result()
    layers = result_layer_data(result, "photo", photo_id="eye-1", scale=(2.0, 2.0), translate=(5.0, -3.0))
    names = [kwargs["name"] for _, kwargs, _ in layers]
    assert names == ["photo attention 1", "photo attention 2", "photo attention 3", "photo attention 4",
                     "photo optic disc", "photo optic cup"]
    assert names == output_layer_names("photo", 4)
    top, left, bottom, right = CROP
    for data, kwargs, layer_type in layers:
        assert kwargs["scale"] == (2.0, 2.0)
        assert kwargs["metadata"]["provenance"]["weights_sha256"] == "abc"
        assert kwargs["metadata"]["measurements"]["vcdr"] == pytest.approx(result.vcdr)
        assert kwargs["metadata"]["confidence"] == pytest.approx(0.8)
        assert kwargs["metadata"][METADATA_KEY]["source"] == "photo"
        assert kwargs["metadata"][METADATA_KEY]["photo"] == "eye-1"  # the link, whatever the names
        if layer_type == "image":  # maps: the analysed crop only, placed where it lies on the photo
            assert data.shape == (bottom - top, right - left)
            assert kwargs["translate"] == (5.0 + 2 * top, -3.0 + 2 * left)
            assert kwargs["metadata"][METADATA_KEY]["offset"] == [top, left]
            assert data.dtype == np.float32 and 0 <= data.min() and data.max() <= 1
            assert kwargs["colormap"] == "inferno" and kwargs["blending"] == "additive"
            assert kwargs["contrast_limits"] == (0.0, 1.0)
        else:  # labels: photo-sized, so that the brush works anywhere
            assert data.shape == (120, 100) and kwargs["translate"] == (5.0, -3.0)
            assert layer_type == "labels" and data.dtype == np.uint8
            assert set(np.unique(data)) <= {0, 1}
    for k, (data, _, _) in enumerate(layers[:4]):
        np.testing.assert_array_equal(data, result.attention[k][top:bottom, left:right])
    disc, cup = layers[-2][0], layers[-1][0]
    np.testing.assert_array_equal(disc, result.disc)
    np.testing.assert_array_equal(cup, result.cup)
    assert layers[-2][1]["colormap"][1] == DISC_COLOUR == (1.0, 0.0, 0.0, 1.0)
    assert layers[-1][1]["colormap"][1] == CUP_COLOUR == (1.0, 1.0, 0.0, 1.0)
    assert [kwargs["metadata"][METADATA_KEY].get("gate") for _, kwargs, _ in layers[:4]] == [1, 2, 3, 4]
    # the attention maps are added hidden, so that the photo and the disc and cup stay readable
    assert [kwargs["visible"] for _, kwargs, _ in layers[:4]] == [False] * 4


def test_result_layer_data_options():
    result = fake_result(gates=2)
    with_probabilities = result_layer_data(result, "x", show_probabilities=True)
    assert [k["name"] for _, k, _ in with_probabilities] == [
        "x attention 1", "x attention 2", "x disc probability", "x cup probability", "x optic disc", "x optic cup"]
    no_attention = fake_result(gates=0)
    assert [k["name"] for _, k, _ in result_layer_data(no_attention, "x")] == ["x optic disc", "x optic cup"]
    # no disc: empty label layers to paint in, no attention layers, the message travels along
    nothing = result_layer_data(fake_result(disc_found=False), "x")
    assert [k["name"] for _, k, _ in nothing] == ["x optic disc", "x optic cup"]
    assert not nothing[0][0].any()
    assert nothing[0][1]["metadata"]["messages"] == ["no optic disc found"]
    assert format_measurements(nothing[0][1]["metadata"]["measurements"]) == "no optic disc found"


def test_result_layer_data_for_a_stack():
    results = [fake_result(), fake_result(disc_found=False), fake_result(), fake_result()]
    layers = result_layer_data(results, "stack", stack_shape=(2, 2))
    for data, _kwargs, layer_type in layers:  # one crop for all slices: the union of their crops
        assert data.shape == ((2, 2, 80, 80) if layer_type == "image" else (2, 2, 120, 100))
    assert layers[0][1]["metadata"][METADATA_KEY]["offset"] == [0, 0, 20, 10]
    assert layers[0][1]["translate"] == (0.0, 0.0, 20.0, 10.0)
    assert layers[0][1]["metadata"]["confidence"] == [0.8, 0.0, 0.8, 0.8]
    disc = layers[-2][0]
    assert disc[0, 0].any() and not disc[0, 1].any()
    record = layers[-2][1]["metadata"]["measurements"]
    assert [r["slice"] for r in record] == [[0, 0], [0, 1], [1, 0], [1, 1]]
    assert "4 slices, disc found in 3" in format_measurements(record)
    with pytest.raises(ValueError, match="do not fill"):
        result_layer_data(results, "stack", stack_shape=(3,))


@pytest.mark.parametrize("data, rgb, message", [
    (np.zeros((64, 64), np.uint8), False, "empty"),
    (np.full((64, 64, 3), 7, np.uint8), True, "empty"),
    (np.zeros((0, 64), np.uint8), False, "empty"),
    (np.ones(64, np.uint8), False, "not an image"),
    (np.ones((64, 64, 2), np.uint8), True, "3 or 4 channels"),
    (np.array([["a", "b"], ["c", "d"]]), False, "cannot be segmented"),
])
def test_image_planes_refuses_bad_input(data, rgb, message):
    with pytest.raises(ValueError, match=message):
        image_planes(data, rgb, "bad")


def test_image_planes_splits_stacks():
    rng = np.random.default_rng(0)
    planes, shape = image_planes(rng.integers(0, 255, (64, 80, 3), dtype=np.uint8), True)
    assert shape == () and planes[0].shape == (64, 80, 3)
    planes, shape = image_planes(rng.random((2, 3, 64, 80)), False)
    assert shape == (2, 3) and len(planes) == 6 and planes[4].shape == (64, 80)
    planes, shape = image_planes([rng.random((64, 80)), rng.random((32, 40))], False)  # multiscale
    assert shape == () and planes[0].shape == (64, 80)


def test_measure_labels_counts_any_label_and_ignores_cup_outside_disc():
    result = fake_result()
    disc = result.disc.astype(np.uint8)
    cup = result.cup.astype(np.uint8) * 3  # any non-zero label counts
    cup[0:5, 0:5] = 1  # outside the disc: ignored
    m = measure_labels(disc, cup)
    assert m.vcdr == pytest.approx(result.vcdr) and m.cup_area == result.cup_area
    assert cup_outside_disc(disc, cup) == 25
    stacked = measure_labels(np.stack([disc, disc * 0]), np.stack([cup, cup]))
    assert [index for index, _ in stacked] == [(0,), (1,)]
    assert stacked[0][1].disc_found and not stacked[1][1].disc_found
    assert measurements_as_record(stacked)[1]["slice"] == [1]
    with pytest.raises(ValueError, match="differ in shape"):
        measure_labels(disc, cup[:10])


def test_multiscale_labels_are_measured_at_full_resolution():
    from napari.layers._multiscale_data import MultiScaleData

    result = fake_result()
    disc, cup = result.disc.astype(np.uint8), result.cup.astype(np.uint8)
    pyramid = [MultiScaleData([mask, mask[::2, ::2]]) for mask in (disc, cup)]
    m = measure_labels(*pyramid)  # np.asarray(MultiScaleData) is the coarsest level
    assert m.disc_area == result.disc_area and m.vcdr == pytest.approx(result.vcdr)


def test_analysed_box_is_the_union_of_the_crops_inside_the_photo():
    one, other = fake_result(), fake_result()
    one.crop_box, other.crop_box = (-10, 5, 50, 60), (30, 40, 130, 95)  # crops may reach past the border
    assert analysed_box([one, other], (120, 100)) == (0, 5, 120, 95)
    assert analysed_box([fake_result(disc_found=False)], (120, 100)) == (0, 0, 120, 100)


def test_disc_view_finds_the_disc_for_the_camera():
    record = measurement_record([fake_result()])
    index, (y, x), extent = disc_view(record)
    assert index is None and (y, x) == pytest.approx((60, 50), abs=1) and extent == pytest.approx(59, abs=2)
    stack = measurement_record([fake_result(disc_found=False), fake_result()], (2,))
    assert disc_view(stack, 0)[0] == 1  # the shown slice has no disc: the first that has one
    assert disc_view(measurement_record([fake_result(disc_found=False)])) is None


def test_result_text_has_short_lines_and_the_confidence():
    result = fake_result()
    text = format_measurements(measurement_record([result]), 0.8)
    lines = text.splitlines()
    assert len(lines) <= RESULT_TEXT_LINES and max(len(line) for line in lines) <= 40
    assert f"vCDR {result.vcdr:.3f}" in text and "confidence 0.800" in text
    assert "confidence" not in format_measurements(measurement_record([result]))


def test_csv_rows():
    result = fake_result()
    record = measurement_record([result])
    rows = measurement_rows("photo", record, result.provenance, "network", 0.8)
    rows += measurement_rows("empty", measurement_record([fake_result(disc_found=False)]),
                                     result.provenance, "edited labels")
    parsed = list(csv.DictReader(io.StringIO(csv_text(rows))))
    assert parsed[0]["image"] == "photo" and float(parsed[0]["vcdr"]) == pytest.approx(result.vcdr)
    assert parsed[0]["weights_sha256"] == "abc" and parsed[0]["disc_threshold"] == "0.5"
    assert parsed[0]["confidence"] == "0.8" and parsed[1]["confidence"] == ""
    assert parsed[1]["vcdr"] == "" and parsed[1]["source"] == "edited labels"


def test_training_pairs():
    rng = np.random.default_rng(1)
    image = rng.integers(0, 255, (2, 64, 64, 3), dtype=np.uint8)
    disc = np.zeros((2, 64, 64), np.uint8)
    disc[0, 20:40, 20:40] = 1
    cup = np.zeros_like(disc)
    cup[0, 25:35, 25:35] = 1
    cup[0, 0:3, 0:3] = 1  # outside the disc: dropped
    pairs, skipped = training_pairs(image, True, disc, cup, "s")
    assert len(pairs) == 1 and skipped == 1
    _, d, c = pairs[0]
    assert d.dtype == bool and c.sum() == 100
    with pytest.raises(ValueError, match="cover the image"):
        training_pairs(image[0], True, disc, cup, "s")
    with pytest.raises(ValueError, match="empty"):
        training_pairs(image[1], True, disc[1], cup[1], "s")


def _no_temporary_files(folder):
    return not [p for p in os.listdir(folder) if p.endswith(".tmp")]


@pytest.mark.parametrize("suffix", [".png", ".tif", ".tiff"])
def test_mask_writer_round_trip(tmp_path, suffix):
    labels = fake_result().cup.astype(np.uint8) * 2
    path = tmp_path / f"photo_cup{suffix}"
    assert write_mask(str(path), labels, {"name": "photo optic cup"}) == [str(path)]
    back = read_image(path)
    assert back.shape == labels.shape and back.dtype == np.uint8
    np.testing.assert_array_equal(back, np.where(labels != 0, 255, 0))
    assert _no_temporary_files(tmp_path)
    # the plugin's reader opens it again as a cup labels layer named after the image
    reader = get_reader(str(path))
    (data, kwargs, layer_type), = reader(str(path))
    assert layer_type == "labels" and kwargs["name"] == "photo optic cup"
    np.testing.assert_array_equal(data, labels != 0)


def test_mask_writer_refuses_wrong_suffix_and_png_stacks(tmp_path):
    with pytest.raises(ValueError, match="binary mask"):
        write_mask(str(tmp_path / "m.jpg"), np.ones((8, 8), np.uint8), {})
    with pytest.raises(ValueError, match="stack"):
        write_mask(str(tmp_path / "m.png"), np.ones((2, 8, 8), np.uint8), {})
    write_mask(str(tmp_path / "m.tif"), np.ones((2, 8, 8), np.uint8), {})
    assert read_image(tmp_path / "m.tif").shape == (2, 8, 8)
    assert sorted(os.listdir(tmp_path)) == ["m.tif"]


@pytest.mark.parametrize("suffix", [".png", ".bmp"])
def test_refuge_writer_round_trip(tmp_path, suffix):
    result = fake_result()
    disc = (result.disc.astype(np.uint8), {"name": "photo optic disc"}, "labels")
    cup = (result.cup.astype(np.uint8), {"name": "photo optic cup"}, "labels")
    path = tmp_path / f"photo_refuge{suffix}"
    for order in ([cup, disc], [disc, cup]):  # order of selection does not matter
        assert write_refuge_map(str(path), order) == [str(path)]
        values = read_image(path)
        assert values.shape == result.disc.shape and set(np.unique(values)) == {0, 128, 255}
        assert (values == 0).sum() == result.cup.sum()
        assert (values == 128).sum() == result.disc.sum() - result.cup.sum()
        back_disc, back_cup = decode_refuge_map(values)
        np.testing.assert_array_equal(back_disc, result.disc)
        np.testing.assert_array_equal(back_cup, result.cup)
    assert _no_temporary_files(tmp_path)
    layers = get_reader(str(path))(str(path))
    assert [k["name"] for _, k, _ in layers] == ["photo optic disc", "photo optic cup"]


def test_refuge_writer_picks_disc_by_area_without_names(tmp_path):
    result = fake_result()
    unnamed = [(result.cup.astype(np.uint8), {"name": "Labels"}, "labels"),
               (result.disc.astype(np.uint8), {"name": "Labels [1]"}, "labels")]
    disc, cup = disc_and_cup(unnamed)
    assert disc.sum() > cup.sum()
    with pytest.raises(ValueError, match="exactly two"):
        write_refuge_map(str(tmp_path / "x.png"), unnamed[:1])
    with pytest.raises(ValueError, match="REFUGE-style map can be saved"):
        write_refuge_map(str(tmp_path / "x.tif"), unnamed)


def test_failed_write_leaves_no_file(tmp_path, monkeypatch):
    import napari_attunet.weights as weights

    def broken_fsync(fd):
        raise OSError("disk full")

    monkeypatch.setattr(weights.os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="disk full"):
        write_mask(str(tmp_path / "mask.png"), np.ones((8, 8), np.uint8), {})
    assert os.listdir(tmp_path) == []


def test_reader_recognises_mask_names_only():
    assert get_reader("/data/photo.png") is None
    assert get_reader("/data/photo_disc.png") is not None
    assert get_reader("/data/drishtiGS_002_ODsegSoftmap.png") is not None
    assert get_reader("/data/Disc_Cup_Masks/g0001.bmp") is not None
    assert get_reader(["/data/a_disc.png", "/data/a.png"]) is None


def test_reader_soft_maps(tmp_path):
    from napari_attunet.image_files import write_image

    soft = np.zeros((40, 40), np.uint8)
    soft[10:30, 10:30] = 64  # one expert of four
    soft[15:25, 15:25] = 191  # three of four
    path = tmp_path / "drishtiGS_001_ODsegSoftmap.png"
    write_image(path, soft)
    (data, kwargs, _), = get_reader(str(path))(str(path))
    assert kwargs["name"] == "drishtiGS_001 optic disc" and data.sum() == 100 and data.dtype == np.uint8


def test_sample_data_is_the_skimage_retina():
    from napari_attunet._sample_data import retina_sample

    (data, kwargs, layer_type), = retina_sample()
    assert data.shape == (1411, 1411, 3) and data.dtype == np.uint8
    assert kwargs["rgb"] and kwargs["name"] == "retina" and layer_type == "image"


def test_plugin_core_modules_import_no_qt():
    import subprocess
    import sys

    code = ("import sys, napari_attunet._layers.links, napari_attunet._layers.inputs, "
            "napari_attunet._layers.results, napari_attunet._layers.measurements, "
            "napari_attunet._writers, napari_attunet._reader, "
            "napari_attunet._sample_data; bad = [m for m in sys.modules if m.split('.')[0] in "
            "('qtpy', 'PyQt5', 'PyQt6', 'PySide2', 'PySide6', 'napari', 'magicgui')]; print(bad); "
            "sys.exit(1 if bad else 0)")
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert completed.returncode == 0, completed.stdout + completed.stderr


def test_format_measurements_nan_safe():
    text = format_measurements(measurement_record([fake_result()]))
    assert text.startswith("vCDR ") and "nan" not in text
    assert math.isnan(fake_result(disc_found=False).vcdr)
