"""Before fine-tuning: do the annotated cups span the sizes the tuned network will meet?"""

import numpy as np
import pytest

from napari_attunet.cup_sizes import NARROW_SPREAD, cup_sizes
from napari_attunet.datasets import make_sample


def annotated(cup_heights, disc_height=40):
    """One photo per cup height: a disc of ``disc_height`` rows and a cup of the given rows (vCDR = ratio)."""
    samples = []
    for index, height in enumerate(cup_heights):
        disc = np.zeros((64, 64), bool)
        disc[10:10 + disc_height, 10:50] = True
        cup = np.zeros_like(disc)
        cup[10:10 + height, 20:40] = True
        samples.append(make_sample(f"eye{index}", np.zeros((64, 64, 3), np.uint8), disc, cup))
    return samples


def test_alike_cups_get_a_warning_that_names_their_range():
    sizes = cup_sizes(annotated([30, 31, 32, 33, 34, 32]))  # vCDR 0.75 to 0.85: glaucomatous eyes only
    assert sizes.vcdrs[0] == pytest.approx(0.75)
    assert sizes.spread < NARROW_SPREAD
    advice = sizes.advice()
    assert advice is not None and "alike in size" in advice and "0.76 to 0.84" in advice
    assert "healthy eyes with small cups" in advice  # large cups annotated: the others are small
    assert sizes.summary() == "annotated cups: vCDR 0.75 to 0.85, median 0.80 (6 photos)"


def test_cups_of_many_sizes_pass_and_photos_without_a_disc_are_left_out():
    samples = annotated([12, 16, 20, 26, 30, 34])  # vCDR 0.30 to 0.85: healthy and glaucomatous eyes
    discless = make_sample("no disc", np.zeros((64, 64, 3), np.uint8), np.zeros((64, 64)), np.zeros((64, 64)))
    sizes = cup_sizes([*samples, discless])
    assert len(sizes.vcdrs) == 6
    assert sizes.advice() is None
    assert cup_sizes([discless]).advice() is None


def test_one_or_two_photos_count_as_alike():
    advice = cup_sizes(annotated([20])).advice()
    assert advice is not None and "vCDR 0.50 to 0.50" in advice
    assert cup_sizes(annotated([])).summary() == "annotated cups: no photo with a disc"


def test_alike_small_cups_suggest_eyes_with_large_ones():
    advice = cup_sizes(annotated([12, 13, 14, 15, 16])).advice()  # vCDR 0.30 to 0.40: healthy eyes only
    assert advice is not None and "glaucomatous eyes with large cups" in advice
