"""Blending a fine-tuned network with the network it started from (weight-space ensembling).

The blend's weights are ``keep_start * start + (1 - keep_start) * tuned``, as in WiSE-FT
(Wortsman et al. 2022, arXiv:2109.01903).  Between a network that reads many cameras and
one fine-tuned on a few photos of one camera, a blend keeps some of each: on the simulated
cameras of docs/adapting.md it gave back part of the disc's gain and tempered the bias that
photos of large cups only taught the tuned network.  Blending takes a second, so candidates can be made from one
fine-tuning run and compared on held-out photos.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from .model import AttentionUNet
from .weights import UNCALIBRATED_THRESHOLDS, load_model, save_weights

ARCHITECTURE_KEYS = ("in_channels", "out_channels", "base_channels", "depth", "norm", "attention")
"""What two networks must share to be blended (deep-supervision heads are not used to segment)."""


def blended(model: AttentionUNet, start: dict[str, torch.Tensor], keep_start: float) -> AttentionUNet:
    """A copy of ``model`` whose floating-point tensors are ``keep_start * start + (1 - keep_start) * own``.

    Normalisation statistics are blended like the weights; counters, and tensors ``start`` lacks
    (heads added for fine-tuning), stay the tuned network's.
    """
    if not 0.0 <= keep_start < 1.0:
        raise ValueError(f"keep_start must lie in [0, 1), got {keep_start}")
    copy = AttentionUNet(**model.config)
    copy.weights_info.metadata = dict(model.weights_info.metadata)
    state = {name: (keep_start * start[name].to(tensor.device) + (1 - keep_start) * tensor)
             if tensor.is_floating_point() and name in start else tensor
             for name, tensor in model.state_dict().items()}
    copy.load_state_dict(state)
    return copy.to(next(model.parameters()).device)


def blend_files(tuned: str | os.PathLike, keep_start: float, out: str | os.PathLike,
                start: str | os.PathLike | None = None, overwrite: bool = False) -> Path:
    """Write the blend of the fine-tuned weights ``tuned`` with ``start`` (None: the shipped weights) to ``out``.

    ``tuned`` must have been fine-tuned from ``start`` (its lineage names the starting file's
    checksum): a blend of unrelated networks is not a network.  The blend's thresholds are
    "not calibrated" (0.5), since blending changes how confident the network is.
    """
    tuned, out = Path(tuned), Path(out)
    if out.exists() and not overwrite:
        raise ValueError(f"{out} exists; replace it with overwrite (--overwrite) or choose another name")
    if out.resolve() == tuned.resolve() or (start is not None and out.resolve() == Path(start).resolve()):
        raise ValueError(f"{out.name} is one of the networks blended; write the blend under another name")
    tuned_model = load_model(tuned, device="cpu")
    start_model = load_model(start, device="cpu")
    parent = tuned_model.weights_info.metadata.get("fine_tuned_from") or {}
    if parent.get("sha256") != start_model.weights_info.sha256:
        raise ValueError(f"{tuned.name} was not fine-tuned from {start_model.weights_info.name} "
                         f"(it names {parent.get('weights', 'no starting network')}); only a network and the one "
                         "it was fine-tuned from can be blended")
    different = [key for key in ARCHITECTURE_KEYS
                 if tuned_model.config.get(key) != start_model.config.get(key)]
    if different:
        raise ValueError(f"{tuned.name} and {start_model.weights_info.name} are different networks "
                         f"({', '.join(different)}); they cannot be blended")
    blend = blended(tuned_model, start_model.state_dict(), keep_start)
    metadata = dict(blend.weights_info.metadata)
    metadata["thresholds"] = dict(UNCALIBRATED_THRESHOLDS)
    metadata["blended_with_start"] = {"keep_start": keep_start, "start": start_model.weights_info.name,
                                      "start_sha256": start_model.weights_info.sha256,
                                      "tuned": tuned.name, "tuned_sha256": tuned_model.weights_info.sha256}
    blend.weights_info.metadata = metadata
    save_weights(blend, out)
    return out
