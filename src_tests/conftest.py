import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
DRISHTI = Path(os.environ.get("NAPARI_ATTUNET_DATA", REPO.parent / "shared" / "data" / "drishti-gs1"))


# Test tiers.  A test is marked by the fixtures it uses, so that the tiers follow what a test
# does: the fast tier (`pytest -m "not gui and not slow"`, or `tox -e fast`) runs the engine
# with `tiny_model`, a small network with seeded random weights; CI runs every tier.
GUI_FIXTURES = {"make_napari_viewer", "viewer", "qtbot", "messages"}  # napari windows, Qt widgets
SLOW_FIXTURES = {"drishti", "retina", "default_model"}  # a dataset split; the shipped network on full photos


def pytest_configure(config):
    import torch

    torch.set_num_threads(min(2, torch.get_num_threads()))


def pytest_collection_modifyitems(config, items):
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if fixtures & GUI_FIXTURES:
            item.add_marker(pytest.mark.gui)
        if fixtures & SLOW_FIXTURES:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def drishti() -> Path:
    if not (DRISHTI / "Drishti-GS1_files").is_dir():
        pytest.skip(f"Drishti-GS1 not found at {DRISHTI} (set NAPARI_ATTUNET_DATA to the dataset folder)")
    return DRISHTI


@pytest.fixture(scope="session")
def retina() -> np.ndarray:
    import skimage.data

    return skimage.data.retina()


@pytest.fixture(scope="session")
def default_model():
    from napari_attunet import load_model

    return load_model(device="cpu")


@pytest.fixture(scope="session")
def retina_result(retina, default_model):
    from napari_attunet import segment

    return segment(retina, default_model, device="cpu")


@pytest.fixture(scope="session")
def tiny_model():
    """A small Attention U-Net (3 levels, 4 base channels, about 8,000 parameters) with seeded random weights.

    Its masks mean nothing; the fast tier uses it to run everything around the network (input
    handling, coarse-to-fine passes, measurements, files, the CLI) in a fraction of a second.
    """
    import torch

    from napari_attunet import AttentionUNet

    torch.manual_seed(0)
    return AttentionUNet(base_channels=4, depth=3).eval()


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory, tiny_model) -> Path:
    """``tiny_model`` saved as a weights file, for the CLI."""
    from napari_attunet import save_weights

    path = tmp_path_factory.mktemp("weights") / "tiny.safetensors"
    save_weights(tiny_model, path, {"training": {"data": "none: seeded random weights for tests"}})
    return path


def synthetic_fundus(size: int = 256, disc_radius: int = 40, cup_radius: int = 18, seed: int = 0):
    """A fundus-like picture (dark red background, bright disc, brighter cup) with its masks."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    centre = size / 2
    r = np.hypot(yy - centre, xx - centre)
    disc = r <= disc_radius
    cup = r <= cup_radius
    image = np.zeros((size, size, 3), np.float32)
    image[..., 0] = 120
    image[..., 1] = 50
    image[..., 2] = 20
    image[disc] = (230, 170, 120)
    image[cup] = (250, 230, 200)
    image += rng.normal(0, 4, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8), disc, cup


@pytest.fixture
def viewer(make_napari_viewer):
    return make_napari_viewer()


@pytest.fixture
def messages(monkeypatch):
    """Every notification the widgets show, as ``(level, text)``."""
    import napari_attunet._widgets._base as base_module
    import napari_attunet._widgets.finetune_widget as finetune_module

    seen = []
    for module in (base_module, finetune_module):
        for level in ("show_error", "show_warning", "show_info"):
            if hasattr(module, level):
                monkeypatch.setattr(module, level, lambda text, level=level: seen.append((level, text)))
    return seen
