"""What the widgets of one napari session share: loaded networks and fine-tuned weights.

* :func:`get_model` loads a weights file once per device and keeps it (loading takes
  about a second; segmenting again with the same weights should not pay it again).
* :data:`session` lists weights fine-tuned in this session; the fine-tune widget adds to
  it and the segment widget offers them in its *weights* menu.
"""

from __future__ import annotations

import threading
from pathlib import Path

from psygnal import Signal

DEFAULT_WEIGHTS = "default (shipped, Drishti-GS1)"
FROM_FILE = "from file…"

_lock = threading.Lock()
_models: dict[tuple[str, str], object] = {}


def get_model(path: str | Path | None, device: str):
    """A network for ``path`` (None: the shipped default weights) on ``device``, cached.

    A file is reloaded when it changed on disk (e.g. overwritten by fine-tuning).
    Raises :class:`~napari_attunet.weights.WeightsError` (a ValueError) for bad files.
    """
    from ..weights import default_weights_path, load_model

    file = Path(path) if path is not None else default_weights_path()
    stamp = f"{file.resolve()}|{file.stat().st_mtime_ns if file.exists() else 0}"
    key = (stamp, str(device))
    with _lock:
        model = _models.get(key)
    if model is None:
        model = load_model(path, device=device)
        with _lock:
            _models.clear()  # keep one network in memory
            _models[key] = model
    return model


def is_empty_path(value) -> bool:
    """A file field left empty (magicgui gives ``.`` or nothing)."""
    return value is None or str(value) in ("", ".")


def chosen_weights(choice: str, file_value, no_file_message: str) -> Path | None:
    """The weights file a *weights* menu names (None: the shipped default); ValueError when unusable."""
    if choice == DEFAULT_WEIGHTS:
        return None
    if choice == FROM_FILE:
        if is_empty_path(file_value):
            raise ValueError(no_file_message)
        path = Path(file_value)
        if not path.is_file():
            raise ValueError(f"weights file not found: {path}")
        return path
    path = session.weights.get(choice)
    if path is None or not Path(path).is_file():
        raise ValueError(f"the fine-tuned weights {choice!r} are no longer on disk")
    return Path(path)


class Session:
    """Weights fine-tuned in this napari session: ``{label: path}``, newest last."""

    changed = Signal()
    selected = Signal(str)
    """Emitted with a label when a widget asks the segment widget to use those weights."""

    def __init__(self) -> None:
        self.weights: dict[str, Path] = {}

    def add(self, path: str | Path) -> str:
        path = Path(path)
        label = f"fine-tuned: {path.name}"
        self.weights.pop(label, None)
        self.weights[label] = path
        self.changed.emit()
        return label

    def use(self, path: str | Path) -> str:
        """Register ``path`` and ask segment widgets to select it."""
        label = self.add(path)
        self.selected.emit(label)
        return label

    def choices(self) -> list[str]:
        return [DEFAULT_WEIGHTS, *reversed(self.weights), FROM_FILE]


session = Session()
