"""2D Attention U-Net with grid attention gates (Oktay et al. 2018, arXiv:1804.03999).

Shapes (N = batch, C = ``in_channels``, K = ``out_channels``, H and W divisible by
``2 ** (depth - 1)``; :meth:`AttentionUNet.forward` pads other sizes and crops back):

* input ``(N, C, H, W)`` float
* logits ``(N, K, H, W)``
* attention of gate ``k`` (``k = 0`` is the finest skip connection):
  ``(N, 1, H / 2**k, W / 2**k)``, values in ``[0, 1]``

A grid attention gate at encoder level ``l`` is driven by the gating signal of the
next coarser *decoder* level ``l + 1`` (the bottleneck for the deepest gate).  The
skip feature ``x`` (resolution ``H_l``) is mapped to the gating grid (``H_l / 2``)
by a 2x2 stride-2 convolution, the gating feature by a 1x1 convolution; their sum
passes ReLU, a 1x1 convolution to one channel and a sigmoid (additive attention).
The coefficients are resampled bilinearly to the skip's resolution, multiply the
skip feature, and a 1x1 convolution with normalisation follows before the gated
feature is concatenated with the upsampled decoder feature.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

NORMS = ("batch", "instance", "group")


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    if kind == "group":
        # Groups of 8 channels; fewer groups when the width is small.
        return nn.GroupNorm(max(1, channels // 8), channels)
    raise ValueError(f"norm must be one of {NORMS}, got {kind!r}")


class ConvBlock(nn.Sequential):
    """Two (3x3 conv, norm, ReLU) layers."""

    def __init__(self, in_channels: int, out_channels: int, norm: str):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            _norm(norm, out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            _norm(norm, out_channels),
            nn.ReLU(inplace=True),
        )


class GridAttentionGate(nn.Module):
    """Additive attention gate with a gating signal on the coarser grid.

    ``x``: skip feature ``(N, Cx, H, W)``; ``g``: gating feature ``(N, Cg, H/2, W/2)``.
    Returns the gated, re-projected skip ``(N, Cx, H, W)`` and the coefficients
    ``(N, 1, H, W)`` in ``[0, 1]``.
    """

    def __init__(self, skip_channels: int, gating_channels: int, inter_channels: int, norm: str):
        super().__init__()
        self.theta = nn.Conv2d(skip_channels, inter_channels, kernel_size=2, stride=2, bias=False)
        self.phi = nn.Conv2d(gating_channels, inter_channels, kernel_size=1, bias=True)
        self.psi = nn.Conv2d(inter_channels, 1, kernel_size=1, bias=True)
        self.output = nn.Sequential(
            nn.Conv2d(skip_channels, skip_channels, kernel_size=1, bias=False),
            _norm(norm, skip_channels),
        )

    def forward(self, x: torch.Tensor, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        theta_x = self.theta(x)
        phi_g = self.phi(g)
        if phi_g.shape[-2:] != theta_x.shape[-2:]:
            phi_g = F.interpolate(phi_g, size=theta_x.shape[-2:], mode="bilinear", align_corners=False)
        alpha = torch.sigmoid(self.psi(F.relu(theta_x + phi_g)))
        alpha = F.interpolate(alpha, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return self.output(alpha * x), alpha


@dataclass
class WeightsInfo:
    """Where a network's weights came from: the file's name, its SHA-256 and its metadata.

    A network built in memory (not loaded from a file) has the defaults.
    """

    name: str = "in-memory model"
    sha256: str = ""
    metadata: dict = field(default_factory=dict)
    """The file's napari-attunet metadata without ``config`` and ``format`` (thresholds,
    preprocessing, training, metrics, ...)."""
    notes: list[str] = field(default_factory=list)
    """What loading noticed that a user may want to know (e.g. no tensor checksum to verify)."""


class AttentionUNetOutput(NamedTuple):
    logits: torch.Tensor
    """``(N, out_channels, H, W)``"""
    attention: list[torch.Tensor]
    """One ``(N, 1, H_k, W_k)`` map per gate, finest first; empty without gates or when not asked for."""
    deep_supervision: list[torch.Tensor]
    """Logits of the coarser decoder levels, upsampled to ``(N, K, H, W)``, coarsest last; in training
    mode, or when asked for with ``return_deep`` (inference uses them to judge its own confidence)."""


class AttentionUNet(nn.Module):
    """Attention U-Net for 2D images.

    Args:
        in_channels: image channels (3 for RGB fundus photographs).
        out_channels: output channels, one logit map per class (optic disc, optic cup).
        base_channels: width of the first level; each level below doubles it.
        depth: number of resolution levels (``depth - 1`` poolings and as many gates).
        norm: ``"batch"``, ``"instance"`` or ``"group"``.
        attention: ``False`` builds the identical network without gates (plain U-Net).
        deep_supervision: add 1x1 output heads on coarser decoder levels (used in training).
    """

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 2,
        base_channels: int = 16,
        depth: int = 5,
        norm: str = "instance",
        attention: bool = True,
        deep_supervision: bool = False,
    ):
        super().__init__()
        if depth < 2:
            raise ValueError(f"depth must be at least 2, got {depth}")
        _norm(norm, 8)  # validates the name early
        self.config = {
            "in_channels": int(in_channels),
            "out_channels": int(out_channels),
            "base_channels": int(base_channels),
            "depth": int(depth),
            "norm": str(norm),
            "attention": bool(attention),
            "deep_supervision": bool(deep_supervision),
        }
        self.weights_info = WeightsInfo()
        """Set by :func:`napari_attunet.load_model`; outputs carry its name and SHA-256."""
        widths = [base_channels * 2**i for i in range(depth)]
        self.encoders = nn.ModuleList()
        previous = in_channels
        for width in widths:
            self.encoders.append(ConvBlock(previous, width, norm))
            previous = width
        # Decoder level i (0 = finest) upsamples from level i + 1.
        self.upsamples = nn.ModuleList()
        self.gates = nn.ModuleList()
        self.decoders = nn.ModuleList()
        for i in range(depth - 1):
            coarse, fine = widths[i + 1], widths[i]
            self.upsamples.append(nn.ConvTranspose2d(coarse, fine, kernel_size=2, stride=2))
            if attention:
                self.gates.append(GridAttentionGate(fine, coarse, max(fine // 2, 4), norm))
            self.decoders.append(ConvBlock(2 * fine, fine, norm))
        self.head = nn.Conv2d(widths[0], out_channels, kernel_size=1)
        self.deep_heads = nn.ModuleList(
            [nn.Conv2d(widths[i], out_channels, kernel_size=1) for i in range(1, depth - 1)]
            if deep_supervision
            else []
        )

    @property
    def multiple(self) -> int:
        """Input height and width are padded to a multiple of this."""
        return 2 ** (self.config["depth"] - 1)

    @property
    def num_gates(self) -> int:
        return len(self.gates)

    def forward(self, x: torch.Tensor, return_attention: bool = False, return_deep: bool = False
                ) -> AttentionUNetOutput:
        if x.ndim != 4 or x.shape[1] != self.config["in_channels"]:
            raise ValueError(
                f"expected input of shape (N, {self.config['in_channels']}, H, W), got {tuple(x.shape)}"
            )
        height, width = x.shape[-2:]
        m = self.multiple
        pad_h, pad_w = (-height) % m, (-width) % m
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")

        skips = []
        for level, encoder in enumerate(self.encoders):
            if level:
                x = F.max_pool2d(x, 2)
            x = encoder(x)
            skips.append(x)

        gating = skips.pop()  # bottleneck drives the deepest gate
        attention: list[torch.Tensor] = []
        decoded: list[torch.Tensor] = []
        for i in reversed(range(len(self.decoders))):
            skip = skips[i]
            if self.gates:
                skip, alpha = self.gates[i](skip, gating)
                attention.append(alpha)
            up = self.upsamples[i](gating)
            gating = self.decoders[i](torch.cat([skip, up], dim=1))
            decoded.append(gating)

        logits = self.head(gating)
        deep = []
        if self.deep_heads and (self.training or return_deep):
            # decoded[-1] is the finest level (the head's input); coarser ones precede it.
            for head, feature in zip(self.deep_heads, reversed(decoded[:-1])):
                out = F.interpolate(head(feature), size=logits.shape[-2:], mode="bilinear", align_corners=False)
                deep.append(out[..., :height, :width])
        logits = logits[..., :height, :width]
        attention.reverse()  # finest gate first
        if return_attention:
            attention = [
                a[..., : -(-height // 2**k), : -(-width // 2**k)] for k, a in enumerate(attention)
            ]
        else:
            attention = []
        return AttentionUNetOutput(logits, attention, deep)
