"""Weights files: safetensors tensors plus JSON metadata; loading never executes code.

A file holds the network's ``state_dict`` and, in the safetensors header's string
metadata, one key ``napari_attunet`` with a JSON document::

    {"format": 1, "config": {...AttentionUNet kwargs...}, "classes": [...],
     "preprocessing": {...}, "thresholds": {"disc": 0.5, "cup": 0.5, "source": "..."},
     "training": {...}, "metrics": {...}, "package_version": "..."}

``thresholds`` are the probabilities above which a pixel counts as disc or cup, the
values this network's figures were measured with; files without the key use 0.5.

safetensors parses a length-prefixed JSON header and raw tensor bytes; unlike
``torch.load`` on a pickle it cannot run code, so weights from strangers are safe
to open.
"""

from __future__ import annotations

import hashlib
import json
import os
from importlib import resources
from pathlib import Path

import torch
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import save as save_safetensors_bytes

from . import __version__
from .devices import resolve_device
from .files import atomic_write_bytes
from .model import AttentionUNet

METADATA_KEY = "napari_attunet"
FORMAT_VERSION = 1
CLASSES = ["optic disc", "optic cup"]
DEFAULT_WEIGHTS_NAME = "attention_unet_drishti.safetensors"
DEFAULT_THRESHOLD = 0.5
UNCALIBRATED_THRESHOLDS = {"disc": DEFAULT_THRESHOLD, "cup": DEFAULT_THRESHOLD,
                           "source": "default 0.5, not calibrated for these weights"}


class WeightsError(ValueError):
    """A weights file is missing, damaged or not a napari-attunet network."""


def default_weights_path() -> Path:
    return Path(str(resources.files("napari_attunet") / "weights" / DEFAULT_WEIGHTS_NAME))


def save_weights(model: AttentionUNet, path: str | os.PathLike, metadata: dict | None = None) -> str:
    """Save ``model`` atomically with its config and ``metadata``; returns the file's SHA-256."""
    document = {
        "format": FORMAT_VERSION,
        "config": model.config,
        "classes": CLASSES,
        "package_version": __version__,
        **(getattr(model, "metadata", None) or {}),
        **(metadata or {}),
    }
    document["config"] = model.config
    tensors = {name: tensor.detach().to("cpu").contiguous() for name, tensor in model.state_dict().items()}
    data = save_safetensors_bytes(tensors, metadata={METADATA_KEY: json.dumps(document)})
    atomic_write_bytes(path, data)
    return hashlib.sha256(data).hexdigest()


def _header(data: bytes, path: Path) -> dict:
    """Parse and check the safetensors header before handing the bytes to the parser."""
    if len(data) < 8:
        raise WeightsError(f"{path}: file is truncated ({len(data)} bytes); not a weights file")
    if data[:2] in (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05") or data[:4] == b"PK\x03\x04":
        raise WeightsError(
            f"{path}: this is a pickle or a torch.save archive; napari-attunet only loads .safetensors "
            "files, because pickles can execute code when opened"
        )
    length = int.from_bytes(data[:8], "little")
    if length <= 0 or 8 + length > len(data):
        raise WeightsError(f"{path}: not a safetensors file, or truncated (header of {length} bytes in a "
                           f"file of {len(data)} bytes)")
    try:
        header = json.loads(data[8 : 8 + length])
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise WeightsError(f"{path}: corrupt safetensors header ({error})") from None
    if not isinstance(header, dict):
        raise WeightsError(f"{path}: corrupt safetensors header (not a JSON object)")
    return header


def thresholds_from(metadata: dict) -> tuple[float, float]:
    """The (disc, cup) thresholds a weights file's metadata recommends; 0.5 for what it leaves out."""
    stored = metadata.get("thresholds") or {}
    if not isinstance(stored, dict):
        raise ValueError(f"metadata 'thresholds' must be an object, got {stored!r}")
    values = []
    for key in ("disc", "cup"):
        value = stored.get(key, DEFAULT_THRESHOLD)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < value < 1.0:
            raise ValueError(f"metadata threshold {key!r} must be a number strictly between 0 and 1, got {value!r}")
        values.append(float(value))
    return values[0], values[1]


def stored_thresholds(path: str | os.PathLike | None = None) -> tuple[float, float]:
    """The (disc, cup) thresholds a weights file stores (None: the shipped weights), from its header."""
    return thresholds_from(read_metadata(default_weights_path() if path is None else path))


def read_metadata(path: str | os.PathLike) -> dict:
    """The napari-attunet metadata of a weights file, from its header alone (raises :class:`WeightsError`)."""
    path = Path(path)
    _check_file(path)
    with open(path, "rb") as file:
        prefix = file.read(8)
        length = int.from_bytes(prefix, "little") if len(prefix) == 8 else 0
        head = prefix + file.read(length) if 0 < length <= path.stat().st_size - 8 else prefix
    return _metadata(_header(head, path), path)


def _check_file(path: Path) -> None:
    if not path.exists():
        raise WeightsError(f"{path}: weights file not found")
    if not path.is_file():
        raise WeightsError(f"{path}: not a file")


def _read(path: Path) -> bytes:
    _check_file(path)
    return path.read_bytes()


def _metadata(header: dict, path: Path) -> dict:
    raw = (header.get("__metadata__") or {}).get(METADATA_KEY)
    if raw is None:
        raise WeightsError(f"{path}: a safetensors file, but not napari-attunet weights "
                           f"(no '{METADATA_KEY}' metadata; foreign architecture?)")
    try:
        metadata = json.loads(raw)
        metadata["config"] = dict(metadata["config"])
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise WeightsError(f"{path}: napari-attunet metadata is damaged ({error})") from None
    if metadata.get("format", 0) > FORMAT_VERSION:
        raise WeightsError(f"{path}: written by a newer napari-attunet (format {metadata['format']}); upgrade")
    try:
        thresholds_from(metadata)
    except ValueError as error:
        raise WeightsError(f"{path}: {error}") from None
    return metadata


def _parse(path: Path, data: bytes) -> tuple[dict, dict]:
    metadata = _metadata(_header(data, path), path)
    try:
        tensors = load_safetensors_bytes(data)
    except Exception as error:  # the parser raises its own error types on damaged files
        raise WeightsError(f"{path}: damaged tensor data ({error})") from None
    return tensors, metadata


def model_from_bytes(data: bytes, name: str = "<bytes>") -> AttentionUNet:
    """Build a network from the bytes of a weights file."""
    path = Path(name)
    tensors, metadata = _parse(path, data)
    config = metadata["config"]
    try:
        model = AttentionUNet(**config)
    except (TypeError, ValueError) as error:
        raise WeightsError(f"{path}: unsupported network configuration {config} ({error})") from None
    try:
        missing, unexpected = model.load_state_dict(tensors, strict=False)
    except RuntimeError as error:  # shape mismatches
        raise WeightsError(f"{path}: tensors do not match the network in its metadata ({error})") from None
    if missing or unexpected:
        raise WeightsError(
            f"{path}: tensors do not match the Attention U-Net described in its metadata "
            f"(missing {list(missing)[:3]}, unexpected {list(unexpected)[:3]})"
        )
    model.metadata = {k: v for k, v in metadata.items() if k not in ("config", "format")}
    model.weights_name = path.name
    model.weights_sha256 = hashlib.sha256(data).hexdigest()
    return model


def load_model(path: str | os.PathLike | None = None, device: str | torch.device = "auto") -> AttentionUNet:
    """Load a network from a ``.safetensors`` weights file (``None``: the shipped default weights).

    The returned model is in eval mode on ``device`` and carries ``metadata``,
    ``weights_name`` and ``weights_sha256``.  Raises :class:`WeightsError` (a
    ``ValueError``) naming the file and the problem for missing, truncated, corrupt
    or foreign files.
    """
    device = resolve_device(device)
    path = default_weights_path() if path is None else Path(path)
    model = model_from_bytes(_read(path), str(path))
    return model.to(device).eval()
