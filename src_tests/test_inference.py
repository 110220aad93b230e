"""Behaviour of segment() with the shipped default weights."""

import math

import numpy as np
import pytest

from napari_attunet import iter_segment, segment
from napari_attunet.progress import Cancelled


def test_sample_photo_disc_is_outlined_at_a_plausible_size(retina_result):
    # skimage.data.retina(): the disc's edge is soft; readings of its height range from about 140 px
    # to 165-175 px (by eye on a grid), and its pale peripapillary halo reaches about 215 px. An
    # outline of only the bright centre (89 px tall) or beyond the halo is wrong.
    assert 120 < retina_result.measurements.disc_vertical_diameter < 230
    assert 120 < retina_result.measurements.disc_horizontal_diameter < 230


def test_an_outline_that_takes_in_the_halo_is_flagged(retina_result):
    # The default weights' outline of the sample includes part of the pale halo (about 214 x 189 px):
    # the confidence must say so rather than present it as certain.
    if retina_result.measurements.disc_vertical_diameter > 190:
        assert "low confidence: check the outline" in retina_result.messages


def test_sample_photo_disc_is_found_where_it_is(retina_result, retina, default_model):
    result = retina_result
    assert result.disc.shape == retina.shape[:2] and result.disc.dtype == bool
    assert result.disc_found
    assert set(result.messages) <= {"low confidence: check the outline"}
    y, x = result.disc_centre
    # skimage.data.retina(): disc centred near x = 240, y = 650.
    assert abs(y - 650) < 60 and abs(x - 240) < 60
    assert not (result.cup & ~result.disc).any()
    assert 0 < result.vcdr < 1 and 0 < result.area_cdr < 1
    assert len(result.attention) == default_model.num_gates
    for attention in result.attention:
        assert attention.shape == retina.shape[:2] and attention.dtype == np.float32
        assert attention.min() >= 0 and attention.max() <= 1
        top, left, bottom, right = result.crop_box
        outside = attention.copy()
        outside[max(top, 0):bottom, max(left, 0):right] = 0
        assert not outside.any()  # zero outside the analysed crop
    assert result.provenance["weights_sha256"] == default_model.weights_info.sha256
    assert result.provenance["package_version"]


@pytest.mark.parametrize("variant", ["rgba", "gray", "uint16", "float01", "float255"])
def test_colour_layouts_and_dtypes_agree(variant, retina, retina_result, default_model):
    image = {
        "rgba": lambda a: np.dstack([a, np.full(a.shape[:2], 255, np.uint8)]),
        "gray": lambda a: a.mean(axis=2).astype(np.uint8),
        "uint16": lambda a: a.astype(np.uint16) * 257,
        "float01": lambda a: a.astype(np.float32) / 255,
        "float255": lambda a: a.astype(np.float64),
    }[variant](retina)
    result = segment(image, default_model, device="cpu", attention=False)
    assert result.disc_found
    overlap = (result.disc & retina_result.disc).sum() / retina_result.disc.sum()
    assert overlap > (0.8 if variant == "gray" else 0.97)
    assert result.attention == []


def test_a_list_runs_batched_and_matches_single_images(retina, retina_result, default_model):
    small = retina[::2, ::2]
    results = segment([retina, small], default_model, device="cpu", batch_size=2)
    assert len(results) == 2
    assert results[0].disc.shape == retina.shape[:2] and results[1].disc.shape == small.shape[:2]
    assert abs(results[0].vcdr - retina_result.vcdr) < 0.02
    assert abs(results[1].disc_centre[0] * 2 - retina_result.disc_centre[0]) < 20


@pytest.mark.parametrize(
    "image,message",
    [
        (np.zeros((3, 64, 64, 3), np.uint8), "not a single 2D image"),
        (np.zeros((64, 64, 7), np.uint8), "stack or volume"),
        (np.zeros((20, 300), np.uint8), "too small"),
        (np.full((100, 100, 3), 7, np.uint8), "empty"),
        (np.full((100, 100), np.nan, np.float32), "NaN"),
        (np.array(["a"] * 4096).reshape(64, 64), "dtype"),
    ],
)
def test_bad_input_gets_a_clear_value_error(image, message, default_model):
    with pytest.raises(ValueError, match=message):
        segment(image, default_model, device="cpu")


def test_image_without_a_disc_gives_an_explicit_empty_result(default_model):
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:400, :400]
    dark = (40 + 10 * np.sin(xx / 30.0) + rng.normal(0, 2, (400, 400))).astype(np.uint8)
    result = segment(np.dstack([dark, dark // 2, dark // 4]), default_model, device="cpu")
    assert not result.disc_found
    assert result.messages[0] == "no optic disc found"
    assert not result.disc.any() and not result.cup.any()
    assert math.isnan(result.vcdr)
    assert len(result.attention) == default_model.num_gates and not any(a.any() for a in result.attention)


def test_progress_events_and_cancellation(retina, default_model):
    events = list(iter_segment([retina[::4, ::4]] * 3, default_model, device="cpu", batch_size=1))
    assert [e.step for e in events[:-1]] == list(range(1, 7))
    assert len(events[-1].result) == 3
    seen = []
    with pytest.raises(Cancelled):
        segment([retina[::4, ::4]] * 3, default_model, device="cpu", batch_size=1,
                progress=seen.append, cancel=lambda: len(seen) >= 2)
    assert len(seen) == 2


def test_thresholds_must_be_probabilities(retina, default_model):
    with pytest.raises(ValueError, match="disc_threshold"):
        segment(retina, default_model, device="cpu", disc_threshold=1.5)


def test_unavailable_device_is_named(retina, default_model):
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(ValueError, match="CUDA is not available"):
        segment(retina, default_model, device="cuda")
