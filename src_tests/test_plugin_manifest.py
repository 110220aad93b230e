"""The npe2 manifest: valid, registered through the entry point, with its widgets, reader, writers and sample."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

npe2 = pytest.importorskip("npe2")
REPO = Path(__file__).resolve().parents[1]


def _npe2_command() -> list[str]:
    beside = Path(sys.executable).with_name("npe2")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("npe2")
    if found is None:
        pytest.skip("the npe2 command is not installed")
    return [found]


def test_npe2_validate_with_imports():
    completed = subprocess.run([*_npe2_command(), "validate", "napari-attunet", "--imports"],
                               capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "valid" in completed.stdout


def test_manifest_contents():
    import tomllib

    manifest = npe2.PluginManifest.from_distribution("napari-attunet")
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert manifest.name == project["name"] == "napari-attunet"
    contributions = manifest.contributions
    assert {w.display_name for w in contributions.widgets} == {"Segment optic disc & cup", "Fine-tune model"}
    assert [s.key for s in contributions.sample_data] == ["retina"]
    writers = {w.command: (w.layer_types, w.filename_extensions) for w in contributions.writers}
    assert writers["napari-attunet.write_mask"] == (["labels"], [".png", ".tif", ".tiff"])
    assert writers["napari-attunet.write_refuge_map"] == (["labels{2}"], [".png", ".bmp"])
    segment_menu = {item.command for item in contributions.menus["napari/layers/segment"]}
    assert segment_menu == {"napari-attunet.segment_widget", "napari-attunet.finetune_widget"}


def test_writers_are_chosen_by_napari(make_napari_viewer, tmp_path):
    """napari's own save path (``viewer.layers.save``, File > Save Selected Layers) reaches the writers."""
    import numpy as np

    from napari_attunet.image_files import read_image

    viewer = make_napari_viewer()
    disc = np.zeros((64, 80), np.uint8)
    disc[10:50, 20:60] = 1
    cup = np.zeros_like(disc)
    cup[20:40, 30:50] = 1
    viewer.add_labels(disc, name="eye optic disc")
    viewer.add_labels(cup, name="eye optic cup")
    viewer.layers.selection = set(viewer.layers)
    written = viewer.layers.save(str(tmp_path / "eye_refuge.png"), selected=True)  # napari picks the writer
    assert written == [str(tmp_path / "eye_refuge.png")]
    values = read_image(written[0])
    assert values.shape == (64, 80) and set(np.unique(values)) == {0, 128, 255}
    viewer.layers.selection = {viewer.layers["eye optic cup"]}
    written = viewer.layers.save(str(tmp_path / "eye_cup.tif"), selected=True, plugin="napari-attunet")
    mask = read_image(written[0])
    assert mask.shape == (64, 80) and set(np.unique(mask)) == {0, 255} and (mask == 255).sum() == cup.sum()
    viewer.layers.clear()
    (opened,) = viewer.open(str(tmp_path / "eye_cup.tif"), plugin="napari-attunet")
    assert opened.name == "eye optic cup" and type(opened).__name__ == "Labels"
    np.testing.assert_array_equal(opened.data, cup)


@pytest.mark.parametrize("path, ours", [
    ("/data/eye_disc.png", True), ("/data/eye_cup.TIF", True), ("/data/eye_oc.png", True),
    ("/data/Drishti-GS1/drishtiGS_001_ODsegSoftmap.png", True),
    ("/data/Drishti-GS1/drishtiGS_001_cupsegSoftmap.png", True),
    ("/data/eye_refuge.bmp", True), ("/data/eye.png", False), ("/data/discovery.png", False),
])
def test_reader_is_offered_for_mask_names_only(path, ours):
    pm = npe2.PluginManager.instance()
    pm.discover()
    offered = {reader.command for reader in pm.iter_compatible_readers([path])}
    assert ("napari-attunet.get_reader" in offered) == ours

