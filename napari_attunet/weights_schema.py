"""The schema of a weights file's metadata: every field's type and bounds.

A weights file may come from anyone, so its metadata is checked field by field before
anything is built from it: a wrong type or an absurd size (``base_channels: 1000000``
would allocate terabytes, ``coarse_size: 0`` would divide by zero when segmenting) is
refused with the field's dotted name.  Settings that change the network's answers
(``config``, ``preprocessing``) accept only the keys listed here: a key this version
does not know means the file needs a newer napari-attunet.  Descriptive fields
(``training``, ``metrics``, ``fine_tuned_from``) are checked for their shape only.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

from .model import NORMS

FORMAT_VERSION = 1
CLASSES = ["optic disc", "optic cup"]
MAX_TEXT = 100_000
"""Longest accepted string (characters): descriptions and commands, not data."""


class SchemaError(ValueError):
    """A metadata field has the wrong type or lies outside its bounds; ``field`` is its dotted name."""

    def __init__(self, field: str, problem: str):
        super().__init__(f"metadata field {field!r} {problem}")
        self.field = field


Check = Callable[[Any, str], None]


def integer(low: int, high: int) -> Check:
    def check(value, field):
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise SchemaError(field, f"must be an integer from {low} to {high}, got {value!r}")
    return check


def number(low: float, high: float, *, open_interval: bool = False) -> Check:
    def check(value, field):
        real = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        if not real or not ((low < value < high) if open_interval else (low <= value <= high)):
            bounds = f"strictly between {low} and {high}" if open_interval else f"from {low} to {high}"
            raise SchemaError(field, f"must be a number {bounds}, got {value!r}")
    return check


def boolean(value, field) -> None:
    if not isinstance(value, bool):
        raise SchemaError(field, f"must be true or false, got {value!r}")


def text(value, field) -> None:
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        raise SchemaError(field, f"must be a string of at most {MAX_TEXT} characters, got {_short(value)}")


def one_of(*choices: Any) -> Check:
    def check(value, field):
        if value not in choices or isinstance(value, bool) != isinstance(choices[0], bool):
            raise SchemaError(field, f"must be one of {', '.join(map(repr, choices))}, got {_short(value)}")
    return check


def sha256_hex(value, field) -> None:
    if not isinstance(value, str) or not re.fullmatch(r"[0-9a-f]{64}", value):
        raise SchemaError(field, f"must be 64 lowercase hexadecimal digits, got {_short(value)}")


def strings(value, field) -> None:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise SchemaError(field, f"must be a list of strings, got {_short(value)}")


def json_object(value, field) -> None:
    if not isinstance(value, dict):
        raise SchemaError(field, f"must be a JSON object, got {_short(value)}")


def obj(fields: dict[str, Check], *, closed: bool, required: tuple[str, ...] = (),
        nullable: bool = False) -> Check:
    """A JSON object whose listed keys are checked; ``closed`` refuses keys not listed."""
    def check(value, field):
        if value is None and nullable:
            return
        json_object(value, field)
        for key in required:
            if key not in value:
                raise SchemaError(_join(field, key), "is missing")
        for key, item in value.items():
            if key in fields:
                fields[key](item, _join(field, key))
            elif closed:
                raise SchemaError(_join(field, key), "is not a setting this version of napari-attunet knows "
                                                    "(written by a newer version?)")
    return check


def classes(value, field) -> None:
    if value != CLASSES:
        raise SchemaError(field, f"must be {CLASSES} (the network's output channels), got {_short(value)}")


def format_version(value, field) -> None:
    integer(1, 10**6)(value, field)
    if value > FORMAT_VERSION:
        raise SchemaError(field, f"is {value}: written by a newer napari-attunet (this one reads format "
                                 f"{FORMAT_VERSION}); upgrade")


CONFIG = {
    "in_channels": one_of(3),
    "out_channels": one_of(2),
    "base_channels": integer(1, 128),
    "depth": integer(2, 7),
    "norm": one_of(*NORMS),
    "attention": boolean,
    "deep_supervision": boolean,
}
"""``AttentionUNet`` keyword arguments; the bounds keep a network within a few GB."""

PREPROCESSING = {
    "coarse_size": integer(32, 2048),
    "fine_size": integer(32, 2048),
    "context": number(1.0, 10.0),
    "normalisation": text,
}
"""Inference settings; a new setting must be added here, or files that carry it are refused."""

THRESHOLDS = {"disc": number(0.0, 1.0, open_interval=True), "cup": number(0.0, 1.0, open_interval=True),
              "source": text}

TRAINING = {
    "config": json_object, "data": text, "train_images": strings, "validation_images": strings,
    "command": text, "epochs_trained": integer(0, 10**7), "seconds": number(0.0, 1e10), "device": text,
    "torch_version": text, "package_version": text,
}


def _lineage(value, field) -> None:
    obj({"weights": text, "sha256": text, "training": obj(TRAINING, closed=False), "metrics": json_object,
         "fine_tuned_from": _lineage}, closed=False, nullable=True)(value, field)


SCHEMA = obj({
    "format": format_version,
    "config": obj(CONFIG, closed=True),
    "classes": classes,
    "package_version": text,
    "preprocessing": obj(PREPROCESSING, closed=True),
    "thresholds": obj(THRESHOLDS, closed=False),
    "training": obj(TRAINING, closed=False),
    "metrics": json_object,
    "fine_tuned_from": _lineage,
    "tensors_sha256": sha256_hex,
}, closed=False, required=("config",))
"""The whole document; other top-level keys are descriptive and accepted as they are."""


def validate_metadata(document: Any) -> None:
    """Raise :class:`SchemaError` naming the first field that breaks :data:`SCHEMA`."""
    if not isinstance(document, dict):
        raise SchemaError("(document)", f"must be a JSON object, got {_short(document)}")
    SCHEMA(document, "")


def _join(field: str, key: str) -> str:
    return f"{field}.{key}" if field else key


def _short(value: Any) -> str:
    shown = repr(value)
    return shown if len(shown) <= 60 else shown[:57] + "..."
