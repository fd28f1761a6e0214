"""``--augment``: the training transform. ``seed``: random crop + horizontal flip (the seed's, unchanged);
``cxr``: the same crop and flip, plus small rotation, scale, translation, brightness and contrast.

Every draw comes from the per-sample generator the dataset already seeds from (seed, epoch, index), so an
augmented run is reproducible whatever the worker count and resumes exactly.  Never a vertical flip: a chest
X-ray upside down is not a chest X-ray.  The ranges (:data:`CXR_RANGES`) are deliberately small; the picture
``docs/augment-cxr.png`` (``python -m docs.augment_picture``) shows one batch.

``cxr`` geometry: the output pixel at offset ``q`` (pixels) from the crop's centre samples the resized image at
``c + t + R(angle) q / scale`` (bilinear), ``c`` the centre of the seed's random crop, ``t`` the translation; so
rotation and zoom use image content around the crop where there is some, and black (0) beyond the image's
edge.  Intensity, on [0, 1] gray levels: ``((x - mean) * contrast + mean) * brightness``, ``mean`` the crop's
mean, then clipped to [0, 1] (the order of torchvision's ``ColorJitter`` brightness then contrast, reversed so
the mean the contrast keeps is the crop's own).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from models.preprocessing import PreprocessSpec, resized_gray, train_tensor

AUGMENTS = ("seed", "cxr")

TrainTransform = Callable[[PreprocessSpec, np.ndarray, torch.Generator], torch.Tensor]


@dataclass(frozen=True)
class CxrRanges:
    """Uniform ranges of the ``cxr`` draws: rotation in degrees (±), scale (zoom, low..high), translation as a
    fraction of the crop size (±, each axis), brightness and contrast factors (low..high)."""

    rotation_deg: float = 7.0
    scale: tuple[float, float] = (0.9, 1.1)
    translate: float = 0.05
    brightness: tuple[float, float] = (0.9, 1.1)
    contrast: tuple[float, float] = (0.9, 1.1)


CXR_RANGES = CxrRanges()


@dataclass(frozen=True)
class CxrDraw:
    """One sample's augmentation: crop corner (top, left) in the resized image, flip, angle (degrees), scale,
    translation (dy, dx) in pixels, brightness and contrast factors."""

    top: int
    left: int
    flip: bool
    angle_deg: float
    scale: float
    shift: tuple[float, float]
    brightness: float
    contrast: float


def _uniform(generator: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand(1, generator=generator, dtype=torch.float64))


def draw_cxr(
    spec: PreprocessSpec, resized_hw: tuple[int, int], generator: torch.Generator, ranges: CxrRanges = CXR_RANGES
) -> CxrDraw:
    """The draws in a fixed order: crop and flip as the seed's transform draws them, then the rest."""
    rh, rw = resized_hw
    top = int(torch.randint(0, rh - spec.image_size + 1, (1,), generator=generator))
    left = int(torch.randint(0, rw - spec.image_size + 1, (1,), generator=generator))
    flip = spec.train_hflip and bool(torch.rand(1, generator=generator) < 0.5)
    angle = _uniform(generator, -ranges.rotation_deg, ranges.rotation_deg)
    scale = _uniform(generator, *ranges.scale)
    limit = ranges.translate * spec.image_size
    shift = (_uniform(generator, -limit, limit), _uniform(generator, -limit, limit))
    return CxrDraw(top, left, flip, angle, scale, shift, _uniform(generator, *ranges.brightness),
                   _uniform(generator, *ranges.contrast))  # fmt: skip


def sample_grid(draw: CxrDraw, size: int, resized_hw: tuple[int, int]) -> torch.Tensor:
    """(1, S, S, 2) grid_sample coordinates in [-1, 1] (x, y; align_corners=False) of ``draw``'s geometry."""
    rh, rw = resized_hw
    offsets = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    qy, qx = torch.meshgrid(offsets, offsets, indexing="ij")
    angle = math.radians(draw.angle_deg)
    cos, sin = math.cos(angle) / draw.scale, math.sin(angle) / draw.scale
    centre_y = draw.top + (size - 1) / 2 + draw.shift[0]
    centre_x = draw.left + (size - 1) / 2 + draw.shift[1]
    y = centre_y + sin * qx + cos * qy
    x = centre_x + cos * qx - sin * qy
    grid = torch.stack(((2 * x + 1) / rw - 1, (2 * y + 1) / rh - 1), dim=-1)
    return grid.to(torch.float32)[None]


def apply_cxr(spec: PreprocessSpec, resized: torch.Tensor, draw: CxrDraw) -> torch.Tensor:
    """(h, w) resized gray in [0, 1] -> (3, S, S) normalised, by ``draw``."""
    grid = sample_grid(draw, spec.image_size, (resized.shape[0], resized.shape[1]))
    crop = F.grid_sample(resized[None, None], grid, mode="bilinear", padding_mode="zeros", align_corners=False)[0, 0]
    if draw.flip:
        crop = crop.flip(-1)
    mean = crop.mean()
    crop = ((crop - mean) * draw.contrast + mean) * draw.brightness
    return normalised(spec, crop)


def normalised(spec: PreprocessSpec, crop: torch.Tensor) -> torch.Tensor:
    """(S, S) gray -> (3, S, S): clipped to [0, 1], replicated, ImageNet-normalised by ``spec`` (as the seed's)."""
    mean = torch.tensor(spec.mean, dtype=torch.float32).view(3, 1, 1)
    std = torch.tensor(spec.std, dtype=torch.float32).view(3, 1, 1)
    return (crop.clamp(0.0, 1.0).expand(3, -1, -1) - mean) / std


def cxr_train_tensor(spec: PreprocessSpec, gray: np.ndarray, generator: torch.Generator) -> torch.Tensor:
    """(H, W) gray in [0, 1] -> (3, S, S): the ``cxr`` transform. A cached (already resized) image gives the same
    tensor as the original (the resize is skipped for a fixed point of ``resized_hw``)."""
    resized = torch.from_numpy(resized_gray(spec, gray))
    draw = draw_cxr(spec, (resized.shape[0], resized.shape[1]), generator)
    return apply_cxr(spec, resized, draw)


def train_transform(augment: str) -> TrainTransform:
    """The transform of ``--augment`` (``seed``: :func:`models.preprocessing.train_tensor`)."""
    if augment == "cxr":
        return cxr_train_tensor
    if augment == "seed":
        return train_tensor
    raise ValueError(f"unknown augmentation {augment!r}; expected one of {', '.join(AUGMENTS)}")
