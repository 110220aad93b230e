"""Training views cover the framings and cameras users have."""

import numpy as np
import pytest
import torch
from conftest import synthetic_fundus

from napari_attunet.augment import camera, sample_view
from napari_attunet.preprocessing import disc_geometry


@pytest.fixture(scope="module")
def photo():
    image, disc, cup = synthetic_fundus(size=512, disc_radius=40, cup_radius=18)[0:3]
    pixels = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)
    masks = torch.from_numpy(np.stack([disc, cup]).astype(np.uint8))
    return pixels, masks, disc_geometry(disc)


def disc_fractions(photo, count=40, **fractions):
    pixels, masks, geometry = photo
    generator = torch.Generator().manual_seed(0)
    out = []
    for _ in range(count):
        x, y = sample_view(pixels, masks, geometry, 128, generator, **fractions)
        assert x.shape == (3, 128, 128) and y.shape == (2, 128, 128) and torch.isfinite(x).all()
        disc = (y[0] > 0.5).numpy()
        if disc.any():
            out.append(disc_geometry(disc)[2] / 128)
    return np.array(out)


def test_locate_views_of_full_photos_show_a_small_disc(photo):
    sizes = disc_fractions(photo, whole_image_fraction=1.0, tight_photo_fraction=0.0)
    # 3.5 to 12 disc diameters per side: the disc spans about 8% to 29% of the view.
    assert sizes.min() > 0.05 and sizes.max() < 0.35


def test_locate_views_of_tight_crops_show_a_disc_filling_most_of_the_view(photo):
    sizes = disc_fractions(photo, whole_image_fraction=1.0, tight_photo_fraction=1.0)
    # 1.15 to 3 disc diameters per side: up to about 87% of the view.
    assert sizes.max() > 0.7 and sizes.min() > 0.25


def test_simulated_tight_photos_are_black_beyond_their_border(photo):
    pixels, masks, geometry = photo
    generator = torch.Generator().manual_seed(3)
    darkest = []
    for _ in range(20):  # disc-crop views of a tight photo reach past its border
        x, _ = sample_view(pixels, masks, geometry, 128, generator, whole_image_fraction=0.0,
                           tight_photo_fraction=1.0)
        darkest.append(float((x.amin(dim=0) == x.amin()).float().mean()))
    assert max(darkest) > 0.05


def test_camera_keeps_the_range_and_varies_the_look(photo):
    pixels = photo[0].float() / 255
    generator = torch.Generator().manual_seed(1)
    looks = [camera(pixels, generator) for _ in range(12)]
    for look in looks:
        assert look.shape == pixels.shape and float(look.min()) >= 0 and float(look.max()) <= 1
    means = torch.stack([look.mean(dim=(1, 2)) for look in looks])
    assert float(means.std(dim=0).min()) > 0.01  # colour and exposure differ between views
    gray = [bool((look[0] == look[1]).all() and (look[1] == look[2]).all()) for look in looks]
    assert not all(gray)


def test_the_same_seed_gives_the_same_views(photo):
    pixels, masks, geometry = photo
    first = sample_view(pixels, masks, geometry, 96, torch.Generator().manual_seed(7))
    second = sample_view(pixels, masks, geometry, 96, torch.Generator().manual_seed(7))
    assert all(torch.equal(a, b) for a, b in zip(first, second))
