"""Any framing and any intensity encoding: the answer depends on the photo, not on how it was framed or stored."""

import numpy as np
import pytest

from napari_attunet import segment
from napari_attunet.inference import BORDER_MESSAGE, LOW_CONFIDENCE, LOW_CONFIDENCE_MESSAGE
from napari_attunet.measure import dice


@pytest.fixture(scope="module")
def photo(retina):
    """A non-square photo (padding is needed before the whole-image pass), 8 bits."""
    return retina[150:1250, :]


@pytest.fixture(scope="module")
def photo_result(photo, default_model):
    return segment(photo, default_model, device="cpu", attention=False)


@pytest.mark.parametrize("encoding", ["float -1..1", "int16 - 1000", "uint16 + 1000", "gain 0.3 + 0.2", "uint32"])
def test_intensity_gain_and_offset_do_not_change_the_masks(encoding, photo, photo_result, default_model):
    values = photo.astype(np.float64)
    image = {
        "float -1..1": lambda: (values / 127.5 - 1).astype(np.float32),
        "int16 - 1000": lambda: (values - 1000).astype(np.int16),
        "uint16 + 1000": lambda: (values + 1000).astype(np.uint16),
        "gain 0.3 + 0.2": lambda: (values / 255 * 0.3 + 0.2).astype(np.float32),
        "uint32": lambda: (values * 70000).astype(np.uint32),
    }[encoding]()
    result = segment(image, default_model, device="cpu", attention=False)
    assert photo_result.disc_found and result.disc_found
    assert dice(result.disc, photo_result.disc) >= 0.99
    assert dice(result.cup, photo_result.cup) >= 0.99


def test_confidence_is_a_score_in_the_unit_interval(retina_result, photo_result):
    for result in (retina_result, photo_result):
        assert 0.0 <= result.confidence <= 1.0
        assert (LOW_CONFIDENCE_MESSAGE in result.messages) == (result.confidence < LOW_CONFIDENCE)


def test_no_disc_means_zero_confidence(default_model):
    dark = np.full((300, 300, 3), 30, np.uint8)
    dark[::7] = 35
    result = segment(dark, default_model, device="cpu", attention=False)
    assert not result.disc_found and result.confidence == 0.0


def test_contrast_tells_a_bright_disc_from_a_region_like_its_surroundings():
    from napari_attunet.confidence import brightness_contrast

    yy, xx = np.mgrid[:120, :120]
    disc = (yy - 60) ** 2 + (xx - 60) ** 2 < 25**2
    rng = np.random.default_rng(0)
    retina = rng.normal(100, 10, (120, 120))
    bright = retina + 50 * disc
    assert brightness_contrast(bright, disc) == pytest.approx(1.5, abs=0.02)
    assert brightness_contrast(retina, disc) == pytest.approx(1.0, abs=0.02)  # no brighter than around it
    assert brightness_contrast(0.3 * bright, disc) == pytest.approx(brightness_contrast(bright, disc))  # gain
    # Padding beyond the photo's border is not retina: left out of the ring.
    padded = bright.copy()
    outside = xx >= 95
    padded[outside] = 0.0
    assert brightness_contrast(padded, disc, outside) == pytest.approx(brightness_contrast(bright, disc), abs=0.02)
    assert np.isnan(brightness_contrast(bright, disc, np.ones_like(disc)))  # no ring inside the photo
    tight = (np.abs(yy - 60) > 32) | (np.abs(xx - 60) > 32)  # a crop of 1.3 diameters: mostly disc
    assert np.isnan(brightness_contrast(bright, disc, tight))  # too little retina around it to say


def test_the_contrast_does_not_depend_on_the_intensity_offset(photo, photo_result, default_model):
    shifted = segment((photo.astype(np.float32) + 1000.0), default_model, device="cpu", attention=False)
    assert photo_result.contrast > 1.1
    assert shifted.contrast == pytest.approx(photo_result.contrast, rel=1e-3)


@pytest.mark.parametrize(("confidence", "contrast", "kept"), [
    (0.85, 1.0, True),     # confident outlines are kept whatever their contrast
    (0.70, 1.5, True),     # doubtful but much brighter than the retina around it: a disc
    (0.70, 1.0, False),    # doubtful and no brighter: not a disc
    (0.70, float("nan"), True),  # contrast not measurable (no retina around it): not held against it
    (0.40, 1.5, False),    # too faint
])
def test_which_candidates_count_as_a_disc(default_model, confidence, contrast, kept):
    import torch

    from napari_attunet.inference import Segmenter

    assert (Segmenter(default_model, torch.device("cpu"))._not_a_disc(confidence, contrast) is None) == kept
    assert Segmenter(default_model, torch.device("cpu"), min_confidence=0.0)._not_a_disc(confidence, contrast) is None


def test_a_disc_cut_by_the_border_is_reported(retina, retina_result, default_model):
    y, x = (int(v) for v in retina_result.disc_centre)
    cut = retina[y - 300 : y + 300, x - 80 : x + 500]  # the border runs through the disc
    result = segment(cut, default_model, device="cpu", attention=False)
    assert result.disc_found
    assert BORDER_MESSAGE in result.messages
    whole = segment(retina[y - 300 : y + 300, : x + 300], default_model, device="cpu", attention=False)
    assert BORDER_MESSAGE not in whole.messages


@pytest.mark.parametrize("box", [(450, 850, 550, 950), (500, 900, 650, 1050)])
def test_a_macula_crop_without_a_disc_says_so(box, retina, default_model):
    top, bottom, left, right = box
    result = segment(retina[top:bottom, left:right], default_model, device="cpu", attention=False)
    assert not result.disc_found
    assert result.messages[0] == "no optic disc found"


def test_a_crop_that_is_mostly_disc_is_found(retina, retina_result, default_model):
    y, x = (int(v) for v in retina_result.disc_centre)
    half = int(0.6 * retina_result.measurements.disc_vertical_diameter)  # the disc fills about 80% of the side
    result = segment(retina[y - half : y + half, x - half : x + half], default_model, device="cpu", attention=False)
    assert result.disc_found
    assert result.disc.sum() > 0.3 * result.disc.size
