"""Weights files: safetensors tensors plus JSON metadata; loading never executes code.

A file holds the network's ``state_dict`` and, in the safetensors header's string
metadata, one key ``napari_attunet`` with a JSON document::

    {"format": 1, "config": {...AttentionUNet kwargs...}, "classes": [...],
     "preprocessing": {...}, "thresholds": {"disc": 0.5, "cup": 0.5, "source": "..."},
     "training": {...}, "metrics": {...}, "package_version": "...",
     "tensors_sha256": "..."}

Every field is checked against :data:`SCHEMA` (types and bounds) before a network is
built; a refusal names the file and the field.  ``tensors_sha256`` is a checksum of the
tensors (names, dtypes, shapes and bytes): it is written with every file and verified on
loading, so damaged tensor values are refused instead of answering "no optic disc found"
for every photograph.  Files written before it existed load with a note.

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
import warnings
from importlib import resources
from pathlib import Path

import torch
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import save as save_safetensors_bytes

from . import __version__
from .atomic import atomic_write_bytes
from .devices import resolve_device
from .model import AttentionUNet, WeightsInfo
from .weights_schema import CLASSES, FORMAT_VERSION, SchemaError, validate_metadata

METADATA_KEY = "napari_attunet"
DEFAULT_WEIGHTS_NAME = "attention_unet_drishti.safetensors"
DEFAULT_THRESHOLD = 0.5
UNCALIBRATED_THRESHOLDS = {"disc": DEFAULT_THRESHOLD, "cup": DEFAULT_THRESHOLD,
                           "source": "default 0.5, not calibrated for these weights"}
NO_CHECKSUM_NOTE = ("has no tensor checksum (written by an older napari-attunet), so its tensor values "
                    "could not be verified; saving it again (e.g. calibrate --apply) adds one")


class WeightsError(ValueError):
    """A weights file is missing, damaged or not a napari-attunet network."""


class WeightsWarning(UserWarning):
    """A weights file loads, but something about it deserves a look."""


def default_weights_path() -> Path:
    return Path(str(resources.files("napari_attunet") / "weights" / DEFAULT_WEIGHTS_NAME))


def tensors_sha256(tensors: dict[str, torch.Tensor]) -> str:
    """Checksum of a state dict: every tensor's name, dtype, shape and bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].detach().to("cpu").contiguous()
        digest.update(f"{name}|{str(tensor.dtype).removeprefix('torch.')}|{list(tensor.shape)}\n".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().data)
    return digest.hexdigest()


def save_weights(model: AttentionUNet, path: str | os.PathLike, metadata: dict | None = None) -> str:
    """Save ``model`` atomically with its config and ``metadata``; returns the file's SHA-256.

    The document is checked against the schema before anything is written, and gains
    the checksum of the tensors written.
    """
    tensors = {name: tensor.detach().to("cpu").contiguous() for name, tensor in model.state_dict().items()}
    document = {
        "format": FORMAT_VERSION,
        "config": model.config,
        "classes": CLASSES,
        "package_version": __version__,
        **model.weights_info.metadata,
        **(metadata or {}),
    }
    document["format"] = FORMAT_VERSION
    document["config"] = model.config
    document["tensors_sha256"] = tensors_sha256(tensors)
    validate_metadata(document)
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
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
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
    """The checked napari-attunet document of a parsed safetensors header."""
    strings = header.get("__metadata__")
    if strings is not None and not isinstance(strings, dict):
        raise WeightsError(f"{path}: corrupt safetensors header ('__metadata__' must be an object of strings, "
                           f"got {type(strings).__name__})")
    raw = (strings or {}).get(METADATA_KEY)
    if raw is None:
        raise WeightsError(f"{path}: a safetensors file, but not napari-attunet weights "
                           f"(no '{METADATA_KEY}' metadata; foreign architecture?)")
    if not isinstance(raw, str):
        raise WeightsError(f"{path}: napari-attunet metadata is damaged (not a string)")
    try:
        metadata = json.loads(raw)
    except (json.JSONDecodeError, RecursionError) as error:
        raise WeightsError(f"{path}: napari-attunet metadata is damaged ({error})") from None
    try:
        validate_metadata(metadata)
    except RecursionError:
        raise WeightsError(f"{path}: napari-attunet metadata is nested too deeply") from None
    except SchemaError as error:
        raise WeightsError(f"{path}: {error}") from None
    return metadata


def _check_tensor_layout(path: Path, header: dict, config: dict) -> None:
    """Compare the header's tensor names and shapes with the network the config describes.

    The network is built on the ``meta`` device (no memory), so a file that claims a huge
    network is refused before anything is allocated.
    """
    with torch.device("meta"):
        expected = {name: tuple(t.shape) for name, t in AttentionUNet(**config).state_dict().items()}
    stored = {name: entry for name, entry in header.items() if name != "__metadata__"}
    missing = sorted(set(expected) - set(stored))
    unexpected = sorted(set(stored) - set(expected))
    if missing or unexpected:
        raise WeightsError(
            f"{path}: tensors do not match the Attention U-Net described in its metadata "
            f"(missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    for name, shape in expected.items():
        entry = stored[name]
        if not isinstance(entry, dict) or tuple(entry.get("shape") or ()) != shape:
            found = entry.get("shape") if isinstance(entry, dict) else entry
            raise WeightsError(f"{path}: tensors do not match the network in its metadata (tensor {name!r} "
                               f"has shape {found}, the network needs {list(shape)})")


def _check_tensor_values(path: Path, tensors: dict[str, torch.Tensor], metadata: dict) -> list[str]:
    """Refuse non-finite or damaged tensors; returns notes (no checksum to verify)."""
    for name, tensor in tensors.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise WeightsError(f"{path}: tensor {name!r} holds NaN or infinite values; the file is damaged")
    expected = metadata.get("tensors_sha256")
    if expected is None:
        return [f"{path.name} {NO_CHECKSUM_NOTE}"]
    if tensors_sha256(tensors) != expected:
        raise WeightsError(f"{path}: the tensors do not match the checksum in the metadata (field "
                           "'tensors_sha256'); the file is damaged")
    return []


def model_from_bytes(data: bytes, name: str = "<bytes>") -> AttentionUNet:
    """Build a network from the bytes of a weights file.

    In order: the header and every metadata field are checked, then the tensors' names
    and shapes against the described network, then their values (finite, checksum);
    only then is the network built.
    """
    path = Path(name)
    header = _header(data, path)
    metadata = _metadata(header, path)
    config = metadata["config"]
    _check_tensor_layout(path, header, config)
    try:
        tensors = load_safetensors_bytes(data)
    except Exception as error:  # the parser raises its own error types on damaged files
        raise WeightsError(f"{path}: damaged tensor data ({error})") from None
    notes = _check_tensor_values(path, tensors, metadata)
    model = AttentionUNet(**config)
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as error:  # dtypes that cannot be copied
        raise WeightsError(f"{path}: tensors do not match the network in its metadata ({error})") from None
    for note in notes:
        warnings.warn(note, WeightsWarning, stacklevel=3)
    model.weights_info = WeightsInfo(
        name=path.name,
        sha256=hashlib.sha256(data).hexdigest(),
        metadata={k: v for k, v in metadata.items() if k not in ("config", "format")},
        notes=notes,
    )
    return model


def load_model(path: str | os.PathLike | None = None, device: str | torch.device = "auto") -> AttentionUNet:
    """Load a network from a ``.safetensors`` weights file (``None``: the shipped default weights).

    The returned model is in eval mode on ``device``; its ``weights_info`` holds the
    file's name, SHA-256, metadata and notes.  Raises :class:`WeightsError` (a
    ``ValueError``) naming the file and the problem for missing, truncated, corrupt,
    damaged or foreign files, and for metadata outside the schema (naming the field).
    """
    device = resolve_device(device)
    path = default_weights_path() if path is None else Path(path)
    model = model_from_bytes(_read(path), str(path))
    return model.to(device).eval()
