"""Preprocessing as data: a PreprocessSpec travels in every checkpoint; the transforms are built from it.

One code path from a decoded image to the model's input tensor, shared by training, evaluation,
``chexnet predict`` and the service:  PIL image -> ``image_to_gray`` (H, W) float in [0, 1]
-> ``eval_tensor`` / ``train_tensor`` (3, S, S) normalised.  The crop geometry is explicit so that
Grad-CAM maps can be put back where the crop lies in the original image.

Two geometries: the seed's (shorter side resized to ``resize``, then the centred ``image_size`` square cropped),
and, with ``crop_first``, torchxrayvision's (the centred square of the original cropped, then resized to
``image_size``; ``XRayCenterCrop`` then ``XRayResizer`` in its ``datasets.py``).  Only the first is trained here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# ITU-R 601-2 luma, the weights Pillow's convert("L") uses, applied in float so nothing is rounded.
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
_SIXTEEN_BIT_MODES = {"I;16", "I;16L", "I;16B", "I;16N"}


@dataclass(frozen=True)
class PreprocessSpec:
    """How an image becomes the network's input: shorter side to ``resize``, crop ``image_size`` square.

    With ``crop_first`` (checkpoints imported from torchxrayvision), the centred square of the original is cropped
    first and resized to ``image_size``; ``resize`` must then equal ``image_size``.  A spec stored without the field
    (every checkpoint before it existed) reads as ``crop_first=False``: today's geometry.
    """

    image_size: int = 224
    resize: int = 256
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    channels: int = 3
    interpolation: str = "bilinear"
    train_hflip: bool = True
    crop_first: bool = False

    def __post_init__(self) -> None:
        if self.image_size < 8 or self.resize < self.image_size:
            raise ValueError(f"need 8 <= image_size <= resize, got image_size={self.image_size} resize={self.resize}")
        if self.crop_first and self.resize != self.image_size:
            raise ValueError(
                f"crop_first resizes the square crop to image_size, so resize must equal it, got {self.resize}"
            )
        if not all(s > 0 for s in self.std):
            raise ValueError("std must be positive")
        if self.channels != 3 or len(self.mean) != 3 or len(self.std) != 3:
            raise ValueError("the DenseNet-121 contract takes 3 channels with 3 means and 3 stds")
        if self.interpolation not in ("bilinear", "bicubic"):
            raise ValueError(f"unsupported interpolation {self.interpolation!r}")

    @classmethod
    def for_image_size(cls, image_size: int) -> PreprocessSpec:
        """The seed's proportions (resize 256 for a 224 crop) at another crop size."""
        return cls(image_size=image_size, resize=round(image_size * 256 / 224))

    def to_dict(self) -> dict[str, Any]:
        """Plain types only, so the spec can live in a ``weights_only`` checkpoint."""
        data = asdict(self)
        data["mean"], data["std"] = list(self.mean), list(self.std)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PreprocessSpec:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        for key in ("mean", "std"):
            if key in known:
                known[key] = tuple(float(x) for x in known[key])
        return cls(**known)


@dataclass(frozen=True)
class CropGeometry:
    """Where the model's crop lies: the image is scaled by ``scale`` to ``resized_hw``, then cropped."""

    height: int
    width: int
    resized_hw: tuple[int, int]
    top: int
    left: int
    size: int

    def box_in_original(self) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1) of the crop in original pixel coordinates (floats, right/bottom exclusive)."""
        sy = self.height / self.resized_hw[0]
        sx = self.width / self.resized_hw[1]
        return (self.left * sx, self.top * sy, (self.left + self.size) * sx, (self.top + self.size) * sy)


def resized_hw(spec: PreprocessSpec, height: int, width: int) -> tuple[int, int]:
    """Shorter side to ``spec.resize``, longer side scaled and truncated (torchvision ``Resize(int)`` rule)."""
    short, long = min(height, width), max(height, width)
    new_long = int(spec.resize * long / short)
    return (spec.resize, new_long) if height <= width else (new_long, spec.resize)


def center_crop_geometry(spec: PreprocessSpec, height: int, width: int) -> CropGeometry:
    """The eval crop: the centred ``image_size`` square of the resized image.

    With ``spec.crop_first``: the centred square of side min(H, W) of the original (scale 1), at
    ``(W // 2 - side // 2, H // 2 - side // 2)``, torchxrayvision's ``XRayCenterCrop`` rule; it is then resized.
    """
    if spec.crop_first:
        side = min(height, width)
        return CropGeometry(height, width, (height, width), height // 2 - side // 2, width // 2 - side // 2, side)
    rh, rw = resized_hw(spec, height, width)
    top = round((rh - spec.image_size) / 2.0)
    left = round((rw - spec.image_size) / 2.0)
    return CropGeometry(height, width, (rh, rw), top, left, spec.image_size)


def samples_to_gray(samples: np.ndarray) -> np.ndarray:
    """Decoded samples -> (H, W) float32 in [0, 1]: uint8 (H, W) / 255, uint16 (H, W) / 65535, uint8 RGB (H, W, 3)
    reduced to luma (ITU-R BT.601 weights, as Pillow's ``convert("L")`` names them). Raises ``ValueError`` for any
    other dtype or shape. The one formula :func:`image_to_gray` and the decoder's libpng/libjpeg-turbo paths share."""
    if samples.dtype == np.uint16 and samples.ndim == 2:
        return (samples.astype(np.float64) / 65535.0).astype(np.float32)
    if samples.dtype == np.uint8 and samples.ndim == 2:
        scaled: np.ndarray = samples.astype(np.float32) / np.float32(255.0)
        return scaled
    if samples.dtype == np.uint8 and samples.ndim == 3 and samples.shape[2] == 3:
        gray: np.ndarray = samples.astype(np.float32) @ _LUMA / np.float32(255.0)  # a 40 MP upload: under 0.5 GB
        return gray
    raise ValueError(f"samples_to_gray takes uint8/uint16 (H, W) or uint8 (H, W, 3), not {samples.dtype} "
                     f"{samples.shape}")  # fmt: skip


def image_to_gray(image: Image.Image) -> np.ndarray:
    """Any decoded PIL image -> (H, W) float32 in [0, 1]; 16-bit scaled by 65535, colour reduced to luma."""
    image = ImageOps.exif_transpose(image)
    mode = image.mode
    if mode in _SIXTEEN_BIT_MODES:
        return samples_to_gray(np.asarray(image, dtype=np.uint16))
    if mode == "I":  # 16-bit PNGs on some Pillow versions; values are 0..65535
        return (np.clip(np.asarray(image, dtype=np.float64), 0, 65535) / 65535.0).astype(np.float32)
    if mode == "F":
        return np.clip(np.asarray(image, dtype=np.float32), 0.0, 1.0)
    if mode in ("L", "1"):
        return samples_to_gray(np.asarray(image.convert("L"), dtype=np.uint8))
    if mode == "LA":
        return samples_to_gray(np.asarray(image.getchannel("L"), dtype=np.uint8))
    return samples_to_gray(np.asarray(image.convert("RGB"), dtype=np.uint8))  # RGBA: alpha dropped; P/CMYK: RGB


def _resize(spec: PreprocessSpec, gray: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(H, W) -> (h, w) with antialiasing (close to PIL's resize, which the seed used)."""
    if tuple(gray.shape) == size:
        return gray
    out = F.interpolate(gray[None, None], size=size, mode=spec.interpolation, antialias=True, align_corners=False)
    return out[0, 0]


def _normalise(spec: PreprocessSpec, crop: torch.Tensor) -> torch.Tensor:
    """(S, S) in [0, 1] -> (3, S, S): replicated to 3 channels, then per-channel mean/std."""
    mean = torch.tensor(spec.mean, dtype=torch.float32).view(3, 1, 1)
    std = torch.tensor(spec.std, dtype=torch.float32).view(3, 1, 1)
    return (crop.clamp(0.0, 1.0).expand(3, -1, -1) - mean) / std


def _require_resize_first(spec: PreprocessSpec, what: str) -> None:
    if spec.crop_first:
        raise ValueError(f"{what} is not supported for a crop_first spec (an imported torchxrayvision model)")


def resized_gray(spec: PreprocessSpec, gray: np.ndarray) -> np.ndarray:
    """(H, W) float in [0, 1] -> (h, w) float32 resized by ``resized_hw``: the deterministic first step.

    ``eval_tensor``, ``train_tensor`` and ``tencrop_tensor`` of the result equal those of ``gray`` exactly (the
    resized image is a fixed point of ``resized_hw``, so they skip the resize), which is what lets training keep
    resized images in a cache (``training/data/image_cache.py``).  Raises ValueError for a ``crop_first`` spec.
    """
    _require_resize_first(spec, "a resized-image cache")
    size = resized_hw(spec, *gray.shape)
    return _resize(spec, torch.from_numpy(np.ascontiguousarray(gray, dtype=np.float32)), size).numpy()


def eval_tensor(spec: PreprocessSpec, gray: np.ndarray) -> torch.Tensor:
    """(H, W) float in [0, 1] -> (3, S, S) normalised: resize, centre crop (see ``center_crop_geometry``).

    With ``spec.crop_first``: the centred square, then resized to (S, S).
    """
    geometry = center_crop_geometry(spec, *gray.shape)
    if spec.crop_first:
        image = torch.from_numpy(np.ascontiguousarray(gray, dtype=np.float32))
        square = image[geometry.top : geometry.top + geometry.size, geometry.left : geometry.left + geometry.size]
        return _normalise(spec, _resize(spec, square, (spec.image_size, spec.image_size)))
    resized = _resize(spec, torch.from_numpy(np.ascontiguousarray(gray, dtype=np.float32)), geometry.resized_hw)
    crop = resized[geometry.top : geometry.top + spec.image_size, geometry.left : geometry.left + spec.image_size]
    return _normalise(spec, crop)


def train_tensor(spec: PreprocessSpec, gray: np.ndarray, generator: torch.Generator) -> torch.Tensor:
    """(H, W) float in [0, 1] -> (3, S, S): resize, random crop, random horizontal flip (never vertical).

    Raises ValueError for a ``crop_first`` spec: imported torchxrayvision models are served, not trained, here.
    """
    _require_resize_first(spec, "training")
    rh, rw = resized_hw(spec, *gray.shape)
    resized = _resize(spec, torch.from_numpy(np.ascontiguousarray(gray, dtype=np.float32)), (rh, rw))
    top = int(torch.randint(0, rh - spec.image_size + 1, (1,), generator=generator))
    left = int(torch.randint(0, rw - spec.image_size + 1, (1,), generator=generator))
    crop = resized[top : top + spec.image_size, left : left + spec.image_size]
    if spec.train_hflip and bool(torch.rand(1, generator=generator) < 0.5):
        crop = crop.flip(-1)
    return _normalise(spec, crop)


def denormalise(spec: PreprocessSpec, tensor: torch.Tensor) -> torch.Tensor:
    """(3, S, S) normalised -> (S, S) in [0, 1]: the first channel with the normalisation undone (debugging)."""
    return tensor[0] * spec.std[0] + spec.mean[0]


def tencrop_tensor(spec: PreprocessSpec, gray: np.ndarray) -> torch.Tensor:
    """(H, W) in [0, 1] -> (10, 3, S, S): four corners + centre of the resized image, and their mirrors.

    Raises ValueError for a ``crop_first`` spec (its crop is the whole centred square; there are no corners).
    """
    _require_resize_first(spec, "ten-crop evaluation")
    rh, rw = resized_hw(spec, *gray.shape)
    resized = _resize(spec, torch.from_numpy(np.ascontiguousarray(gray, dtype=np.float32)), (rh, rw))
    s = spec.image_size
    centre = center_crop_geometry(spec, *gray.shape)
    offsets = [(0, 0), (0, rw - s), (rh - s, 0), (rh - s, rw - s), (centre.top, centre.left)]
    crops = [resized[t : t + s, left : left + s] for t, left in offsets]
    crops += [c.flip(-1) for c in crops]
    return torch.stack([_normalise(spec, c) for c in crops])
