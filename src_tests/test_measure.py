import math

import numpy as np

from napari_attunet.measure import dice, disc_shape_warning, iou, measure


def ellipse(shape, cy, cx, ry, rx):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1


def test_vertical_cdr_uses_vertical_extents():
    disc = ellipse((200, 200), 100, 100, 50, 40)
    cup = ellipse((200, 200), 100, 100, 30, 10)
    m = measure(disc, cup)
    assert m.disc_found
    assert m.disc_vertical_diameter == 101 and m.cup_vertical_diameter == 61
    assert math.isclose(m.vcdr, 61 / 101)
    assert math.isclose(m.area_cdr, cup.sum() / disc.sum())
    assert (m.disc_centre_y, m.disc_centre_x) == (100.0, 100.0)


def test_cup_outside_the_disc_is_ignored_and_no_disc_gives_nan():
    disc = ellipse((100, 100), 50, 50, 20, 20)
    cup = ellipse((100, 100), 10, 10, 5, 5)  # outside the disc
    assert measure(disc, cup).cup_area == 0 and measure(disc, cup).vcdr == 0
    empty = measure(np.zeros((10, 10)), np.zeros((10, 10)))
    assert not empty.disc_found and math.isnan(empty.vcdr)


def test_dice_and_iou():
    a = np.zeros((10, 10), bool)
    b = np.zeros((10, 10), bool)
    a[:, :5] = True
    b[:, :4] = True
    assert math.isclose(dice(a, b), 2 * 40 / 90)
    assert math.isclose(iou(a, b), 40 / 50)
    assert dice(np.zeros(3), np.zeros(3)) == 1.0


def test_a_disc_that_leaked_along_a_vessel_is_flagged_and_real_discs_are_not():
    oval = measure(ellipse((300, 300), 150, 150, 60, 52), np.zeros((300, 300)))  # vertically oval, as discs are
    assert disc_shape_warning(oval) is None
    leaked = measure(ellipse((300, 300), 150, 150, 120, 50), np.zeros((300, 300)))  # 2.4 times taller than wide
    assert disc_shape_warning(leaked) == "implausible disc shape (241 x 101 px, tall x wide): check the outline"
    assert disc_shape_warning(measure(ellipse((300, 300), 150, 150, 30, 80), np.zeros((300, 300))))
    assert disc_shape_warning(measure(np.zeros((10, 10)), np.zeros((10, 10)))) is None
