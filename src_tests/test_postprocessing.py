import numpy as np
from skimage.draw import ellipse as draw_ellipse

from napari_attunet.postprocessing import convex, ellipse, largest_component


def test_ellipse_fit_ignores_a_leak_along_a_vessel():
    truth = np.zeros((300, 300), bool)
    rr, cc = draw_ellipse(150, 150, 60, 45, shape=truth.shape, rotation=0.4)
    truth[rr, cc] = True
    leaky = truth.copy()
    leaky[40:150, 146:154] = True  # a thin leak upwards
    fitted = ellipse(leaky)
    assert (fitted & ~truth).sum() < 0.02 * truth.sum()
    assert (truth & ~fitted).sum() < 0.02 * truth.sum()


def test_components_keep_the_largest_and_fill_holes():
    mask = np.zeros((50, 50), bool)
    mask[5:25, 5:25] = True
    mask[10:15, 10:15] = False  # a hole
    mask[40:45, 40:45] = True  # a smaller island
    out = largest_component(mask)
    assert out[12, 12] and not out[42, 42]
    assert convex(np.zeros((5, 5), bool)).sum() == 0
