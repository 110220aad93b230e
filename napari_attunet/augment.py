"""Training views of fundus photographs: geometry that matches inference, plus photometric jitter.

A view is either a *disc crop* (a square of about ``context`` disc diameters,
slightly off-centre, as the fine pass sees it) or a *whole-image view* (a square
of 3.5 to 11 disc diameters with the disc anywhere inside, as the locating pass
sees a 30 or 45 degree photograph).  Rotation, mirror (left and right eyes),
scale, colour, gamma, contrast, blur and noise vary the rest.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .preprocessing import crop_box, crop_padded, resize, standardise


def _uniform(generator: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator))


def _gaussian_blur(image: torch.Tensor, sigma: float) -> torch.Tensor:
    radius = max(1, int(math.ceil(2.5 * sigma)))
    x = torch.arange(-radius, radius + 1, dtype=image.dtype, device=image.device)
    kernel = torch.exp(-(x**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    channels = image.shape[0]
    padded = F.pad(image[None], (radius, radius, radius, radius), mode="reflect")
    out = F.conv2d(padded, kernel.view(1, 1, 1, -1).repeat(channels, 1, 1, 1), groups=channels)
    out = F.conv2d(out, kernel.view(1, 1, -1, 1).repeat(channels, 1, 1, 1), groups=channels)
    return out[0]


def photometric(image: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Colour, gamma, contrast, blur, noise and occasional grayscale on a ``(3, H, W)`` image in [0, 1].

    The random numbers come from the CPU ``generator`` (so a seed gives the same views on
    any device); the image may live on any device.  Ranges reach over- and under-exposure
    (gamma 0.5 to 2, gain 0.6 to 1.5) and halved contrast, which real photographs show.
    """
    device = image.device
    gains = torch.empty(3, 1, 1).uniform_(0.8, 1.2, generator=generator) * _uniform(generator, 0.6, 1.5)
    mixing = torch.eye(3) + 0.06 * torch.randn(3, 3, generator=generator)
    image = torch.einsum("ij,jhw->ihw", mixing.to(device), image) * gains.to(device)
    image = image.clamp(0, 1) ** math.exp(_uniform(generator, math.log(0.5), math.log(2.0)))
    mean = image.mean(dim=(-2, -1), keepdim=True)
    image = (mean + (image - mean) * _uniform(generator, 0.5, 1.35)).clamp(0, 1)
    if float(torch.rand((), generator=generator)) < 0.3:
        image = _gaussian_blur(image, _uniform(generator, 0.5, 2.0))
    if float(torch.rand((), generator=generator)) < 0.3:
        noise = torch.randn(image.shape, generator=generator).to(device)
        image = image + _uniform(generator, 0.0, 0.04) * noise
    if float(torch.rand((), generator=generator)) < 0.1:
        image = image.mean(dim=0, keepdim=True).expand(3, -1, -1)
    return image


def sample_view(image: torch.Tensor, masks: torch.Tensor, geometry: tuple[float, float, float],
                size: int, generator: torch.Generator, *, context: float = 2.2,
                whole_image_fraction: float = 0.25, augment: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """One training pair: standardised ``(3, size, size)`` input and ``(2, size, size)`` soft targets.

    ``image`` is ``(3, H, W)`` uint8, ``masks`` ``(2, H, W)`` uint8 (disc, cup), ``geometry``
    the disc's centre and diameter.  Tensors may live on any device (the GPU, when training there).
    """
    cy, cx, diameter = geometry
    if not augment:
        box = crop_box((cy, cx), context * diameter)
        x = resize(crop_padded(image, box)[None].float() / 255.0, (size, size))[0]
        y = resize(crop_padded(masks, box)[None].float(), (size, size))[0]
        return standardise(x), y

    if float(torch.rand((), generator=generator)) < whole_image_fraction:
        side = diameter * math.exp(_uniform(generator, math.log(3.5), math.log(11.0)))
        reach = max(0.0, 0.5 * side - 0.7 * diameter)
        centre = (cy + _uniform(generator, -reach, reach), cx + _uniform(generator, -reach, reach))
    else:
        # Wide enough to cover a first disc estimate that is off by a third (inference re-crops beyond that).
        side = context * diameter * math.exp(_uniform(generator, math.log(0.7), math.log(1.4)))
        jitter = 0.1 * diameter
        centre = (cy + jitter * float(torch.randn((), generator=generator)),
                  cx + jitter * float(torch.randn((), generator=generator)))
    # Cut a larger square so that rotation never reaches past it, shrink it, then rotate and mirror.
    margin = 1.45
    box = crop_box(centre, side * margin)
    region_size = int(round(size * margin))
    stacked = torch.cat([crop_padded(image, box).float() / 255.0, crop_padded(masks, box).float()])
    stacked = resize(stacked[None], (region_size, region_size))
    angle = math.radians(_uniform(generator, -25.0, 25.0))
    mirror = -1.0 if float(torch.rand((), generator=generator)) < 0.5 else 1.0
    cos, sin = math.cos(angle) / margin, math.sin(angle) / margin
    theta = torch.tensor([[[cos * mirror, -sin, 0.0], [sin * mirror, cos, 0.0]]], device=image.device)
    grid = F.affine_grid(theta, (1, 5, size, size), align_corners=False)
    warped = F.grid_sample(stacked, grid, mode="bilinear", padding_mode="zeros", align_corners=False)[0]
    x = photometric(warped[:3], generator)
    return standardise(x), warped[3:]
