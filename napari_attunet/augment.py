"""Training views of fundus photographs: the framings users have, and what other cameras do.

A view plays one of two roles of inference (:mod:`napari_attunet.inference`):

* a *locate view*: what the whole-image pass sees.  Either a full photo (a square of
  3.5 to 12 disc diameters with the disc anywhere inside, as a 30 to 45 degree photo
  or a wide-field one shows it) or, for photos that are already a crop around the disc,
  exactly that crop (1.15 to 3 disc diameters, so the disc fills up to 87% of it);
* a *disc crop*: what the fine pass sees, a square of about ``context`` disc diameters,
  slightly off-centre.

Some views simulate a user photo that is itself a tight crop: everything outside the
photo's square is black, as inference pads it, and the disc may be cut by the border.

:func:`camera` then imitates other cameras and acquisitions: white balance and colour
casts, uneven illumination and vignetting, defocus, low resolution, sensor noise,
JPEG compression, gamma and contrast, grayscale and red-free photos.
"""

from __future__ import annotations

import io
import math

import numpy as np
import torch
import torch.nn.functional as F

from .preprocessing import crop_box, crop_padded, resize, standardise

FULL_PHOTO_DIAMETERS = (3.5, 12.0)
"""Side of a locate view of a full photo, in disc diameters."""
TIGHT_PHOTO_DIAMETERS = (1.15, 3.0)
"""Side of a user photo that is a crop around the disc, in disc diameters."""


def _uniform(generator: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator))


def _log_uniform(generator: torch.Generator, low: float, high: float) -> float:
    return math.exp(_uniform(generator, math.log(low), math.log(high)))


def _chance(generator: torch.Generator, probability: float) -> bool:
    return float(torch.rand((), generator=generator)) < probability


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


def _illumination(shape, generator: torch.Generator) -> torch.Tensor:
    """A smooth multiplicative field: a linear gradient times a vignette around a random centre."""
    height, width = shape
    ys = torch.linspace(-1, 1, height).view(-1, 1)
    xs = torch.linspace(-1, 1, width).view(1, -1)
    angle = _uniform(generator, 0, 2 * math.pi)
    gradient = 1 + _uniform(generator, 0, 0.4) * (math.cos(angle) * xs + math.sin(angle) * ys)
    cy, cx = _uniform(generator, -0.5, 0.5), _uniform(generator, -0.5, 0.5)
    radius2 = ((ys - cy) ** 2 + (xs - cx) ** 2) / 2
    vignette = 1 - _uniform(generator, 0, 0.6) * radius2
    return (gradient * vignette).clamp(0.2, 1.6)


def _jpeg(image: torch.Tensor, quality: int) -> torch.Tensor:
    """Round trip through JPEG at ``quality`` (on the CPU; the image comes back to its device)."""
    from PIL import Image

    array = (image.clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", quality=quality)
    decoded = np.asarray(Image.open(buffer).convert("RGB"))
    return torch.from_numpy(decoded.copy()).permute(2, 0, 1).to(image.device, torch.float32) / 255.0


def camera(image: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """What another camera would have made of a ``(3, H, W)`` image in [0, 1].

    The random numbers come from the CPU ``generator`` (a seed gives the same views on any
    device); the image may live on any device.
    """
    device = image.device
    if _chance(generator, 0.5):
        image = image * _illumination(image.shape[-2:], generator).to(device)
    if _chance(generator, 0.35):
        image = _gaussian_blur(image, _log_uniform(generator, 0.5, 3.0))
    if _chance(generator, 0.25):
        size = image.shape[-2:]
        factor = _uniform(generator, 1.5, 5.0)
        small = (max(8, int(size[0] / factor)), max(8, int(size[1] / factor)))
        image = resize(resize(image[None], small), size)[0]
    # White balance and colour cast: per-channel gains, a little channel mixing, overall exposure.
    gains = torch.empty(3, 1, 1).uniform_(0.7, 1.3, generator=generator) * _uniform(generator, 0.55, 1.6)
    mixing = torch.eye(3) + 0.08 * torch.randn(3, 3, generator=generator)
    image = torch.einsum("ij,jhw->ihw", mixing.to(device), image) * gains.to(device)
    image = image.clamp(0, 1) ** _log_uniform(generator, 0.5, 2.0)
    mean = image.mean(dim=(-2, -1), keepdim=True)
    image = (mean + (image - mean) * _uniform(generator, 0.5, 1.35)).clamp(0, 1)
    if _chance(generator, 0.3):
        noise = torch.randn(image.shape, generator=generator).to(device)
        image = (image + _uniform(generator, 0.0, 0.05) * noise).clamp(0, 1)
    kind = float(torch.rand((), generator=generator))
    if kind < 0.08:  # grayscale
        image = image.mean(dim=0, keepdim=True).expand(3, -1, -1)
    elif kind < 0.15:  # red-free: a green-filtered photo, shown in gray
        image = image[1:2].expand(3, -1, -1)
    if _chance(generator, 0.25):
        image = _jpeg(image, int(_uniform(generator, 15, 75)))
    return image


def _outside_photo(box: tuple[int, int, int, int], photo: tuple[int, int, int, int], device) -> torch.Tensor:
    """``(H, W)`` bool of ``box`` pixels that lie outside the square ``photo`` (image pixels)."""
    rows = torch.arange(box[0], box[2], device=device).view(-1, 1)
    cols = torch.arange(box[1], box[3], device=device).view(1, -1)
    inside = (rows >= photo[0]) & (rows < photo[2]) & (cols >= photo[1]) & (cols < photo[3])
    return ~inside


def sample_view(image: torch.Tensor, masks: torch.Tensor, geometry: tuple[float, float, float],
                size: int, generator: torch.Generator, *, context: float = 2.2,
                whole_image_fraction: float = 0.35, tight_photo_fraction: float = 0.35,
                augment: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """One training pair: standardised ``(3, size, size)`` input and ``(2, size, size)`` soft targets.

    ``image`` is ``(3, H, W)`` uint8, ``masks`` ``(2, H, W)`` uint8 (disc, cup), ``geometry``
    the disc's centre and diameter.  ``whole_image_fraction`` of the views are locate views,
    and ``tight_photo_fraction`` of all views come from a simulated tight crop of the photo.
    Tensors may live on any device (the GPU, when training there).
    """
    cy, cx, diameter = geometry
    if not augment:
        box = crop_box((cy, cx), context * diameter)
        x = resize(crop_padded(image, box)[None].float() / 255.0, (size, size))[0]
        y = resize(crop_padded(masks, box)[None].float(), (size, size))[0]
        return standardise(x), y

    photo = None
    if _chance(generator, tight_photo_fraction):
        # The user's photo is a square of k disc diameters around the disc (cut by its border at times).
        k = _log_uniform(generator, *TIGHT_PHOTO_DIAMETERS)
        shift = 0.12 * diameter
        photo = crop_box((cy + _uniform(generator, -shift, shift), cx + _uniform(generator, -shift, shift)),
                         k * diameter)
    if _chance(generator, whole_image_fraction):
        if photo is not None:  # the locate pass sees exactly that photo
            side = photo[2] - photo[0]
            centre = ((photo[0] + photo[2]) / 2, (photo[1] + photo[3]) / 2)
        else:
            side = diameter * _log_uniform(generator, *FULL_PHOTO_DIAMETERS)
            reach = max(0.0, 0.5 * side - 0.7 * diameter)
            centre = (cy + _uniform(generator, -reach, reach), cx + _uniform(generator, -reach, reach))
    else:
        # Wide enough to cover a first disc estimate that is off by a third (inference re-crops beyond that).
        side = context * diameter * _log_uniform(generator, 0.7, 1.4)
        jitter = 0.1 * diameter
        centre = (cy + jitter * float(torch.randn((), generator=generator)),
                  cx + jitter * float(torch.randn((), generator=generator)))
    # Cut a larger square so that rotation never reaches past it, shrink it, then rotate and mirror.
    margin = 1.45
    box = crop_box(centre, side * margin)
    region_size = int(round(size * margin))
    stacked = torch.cat([crop_padded(image, box).float() / 255.0, crop_padded(masks, box).float()])
    if photo is not None:
        stacked[:, _outside_photo(box, photo, stacked.device)] = 0.0
    stacked = resize(stacked[None], (region_size, region_size))
    # A photo's own square border stays nearly upright: its eye may be tilted, its frame is not.
    max_angle = 8.0 if photo is not None else 25.0
    angle = math.radians(_uniform(generator, -max_angle, max_angle))
    mirror = -1.0 if _chance(generator, 0.5) else 1.0
    cos, sin = math.cos(angle) / margin, math.sin(angle) / margin
    theta = torch.tensor([[[cos * mirror, -sin, 0.0], [sin * mirror, cos, 0.0]]], device=image.device)
    grid = F.affine_grid(theta, (1, 5, size, size), align_corners=False)
    warped = F.grid_sample(stacked, grid, mode="bilinear", padding_mode="zeros", align_corners=False)[0]
    x = camera(warped[:3], generator)
    return standardise(x), warped[3:]
