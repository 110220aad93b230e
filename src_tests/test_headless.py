"""A headless engine: napari is not required, and importing the package or using napari's
reader, writers and sample data does not load torch (which takes seconds)."""

import importlib
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

import napari_attunet

REPO = Path(__file__).resolve().parents[1]
GUI_PACKAGES = ("napari", "pyqt5", "pyqt6", "pyside2", "pyside6")


def loaded_after(code: str) -> set[str]:
    """Top-level modules loaded by ``code`` in a fresh interpreter."""
    script = f"{code}\nimport sys\nprint(' '.join(sorted({{m.split('.')[0] for m in sys.modules}})))"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr
    return set(done.stdout.split())


def test_importing_the_package_loads_no_torch_and_no_gui():
    loaded = loaded_after("import napari_attunet")
    assert "torch" not in loaded
    assert not loaded & {"napari", "qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6"}


def test_napari_reader_writer_and_sample_data_load_no_torch(tmp_path):
    mask = tmp_path / "eye_disc.png"
    code = f"""
import numpy as np
from PIL import Image
from napari_attunet._reader import get_reader
from napari_attunet._sample_data import retina_sample
from napari_attunet._writers import write_mask
Image.fromarray(np.full((8, 8), 255, np.uint8)).save({str(mask)!r})
layers = get_reader({str(mask)!r})({str(mask)!r})
assert layers[0][0].sum() == 64, layers
write_mask({str(tmp_path / "saved_disc.png")!r}, layers[0][0], {{}})
retina_sample()
"""
    assert "torch" not in loaded_after(code)
    assert (tmp_path / "saved_disc.png").is_file()


def test_public_names_resolve_on_first_use():
    for name in napari_attunet.__all__:
        assert getattr(napari_attunet, name) is not None, name
    importlib.import_module("napari_attunet.measure")  # the module must not shadow the function of its name
    assert callable(napari_attunet.measure) and napari_attunet.measure.__name__ == "measure"
    with pytest.raises(AttributeError, match="no attribute 'segmentt'"):
        napari_attunet.segmentt  # noqa: B018


def test_napari_and_qt_are_extras_not_requirements():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    required = " ".join(project["dependencies"]).lower()
    assert not any(package in required for package in GUI_PACKAGES), project["dependencies"]
    for extra in ("all", "testing"):
        assert any(r.lower().startswith("napari[") for r in project["optional-dependencies"][extra]), extra
