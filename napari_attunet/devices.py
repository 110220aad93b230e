"""Choosing the torch device: CUDA, then Apple MPS, then CPU."""

from __future__ import annotations

import torch


def available_devices() -> list[str]:
    """Devices this machine can run on, best first (``"cpu"`` is always last)."""
    devices = [f"cuda:{i}" if torch.cuda.device_count() > 1 else "cuda" for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        devices.append("mps")
    return devices + ["cpu"]


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``"auto"`` (or None) picks the best available device; a named device must exist."""
    if device is None or (isinstance(device, str) and device.strip().lower() == "auto"):
        return torch.device(available_devices()[0])
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"unknown device {device!r}; use auto, cpu, cuda or mps") from error
    if resolved.type == "cuda":
        count = torch.cuda.device_count()
        if count == 0:
            raise ValueError(f"device {device!r} requested but CUDA is not available here; "
                             f"available: {', '.join(available_devices())}")
        if resolved.index is not None and resolved.index >= count:
            raise ValueError(f"device {device!r} requested but only {count} CUDA device(s) exist")
    elif resolved.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ValueError(f"device {device!r} requested but Apple MPS is not available here; "
                             f"available: {', '.join(available_devices())}")
    elif resolved.type != "cpu":
        raise ValueError(f"device type {resolved.type!r} is not supported; use auto, cpu, cuda or mps")
    return resolved
