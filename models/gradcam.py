"""Grad-CAM for all classes from one forward pass: no backward, no hooks, no state.

DenseNet's head is ReLU -> global average pool -> Linear, so for the norm5 map A (C, h, w)
    d logit_c / d A_k(i, j) = W_ck * 1[A_k(i, j) > 0] / (h w)
and the seed's Grad-CAM weight (gradients averaged over positions) is
    alpha_ck = W_ck * mean_ij 1[A_k(i, j) > 0] / (h w),    cam_c = ReLU(sum_k alpha_ck * ReLU(A_k)).
(The seed's hook sees ReLU(A) because torchvision applies the ReLU in place after norm5.) Taking the
gradient of the sigmoid instead multiplies cam_c by a positive constant, which normalisation removes.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from models.preprocessing import CropGeometry


def gradcam_maps(features: torch.Tensor, head_weight: torch.Tensor) -> torch.Tensor:
    """(N, C, h, w) pre-ReLU norm5 map and (K, C) classifier weight -> (N, K, h, w) raw Grad-CAM, >= 0."""
    h, w = features.shape[-2:]
    maps = features.double()  # the maps are small; float64 keeps the sum over 1024 channels exact enough
    active = (maps > 0).double()
    alpha = head_weight.double()[None, :, :] * (active.mean(dim=(2, 3)) / (h * w))[:, None, :]  # (N, K, C)
    cams = torch.einsum("nkc,nchw->nkhw", alpha, F.relu(maps))
    return F.relu(cams).to(features.dtype)


def normalise_maps(cams: torch.Tensor) -> torch.Tensor:
    """(..., h, w) -> same shape in [0, 1] per map (min-max, as the seed); a constant map becomes all zeros."""
    flat = cams.flatten(-2)
    low = flat.min(dim=-1, keepdim=True).values
    span = flat.max(dim=-1, keepdim=True).values - low
    scaled = torch.where(span > 0, (flat - low) / span.clamp_min(torch.finfo(cams.dtype).tiny), torch.zeros_like(flat))
    return scaled.view_as(cams)


def cam_on_image(cam: np.ndarray, geometry: CropGeometry) -> np.ndarray:
    """(h, w) map over the model's crop -> (H, W) map over the original image, 0 outside the crop.

    The map is stretched bilinearly over the crop's box in original coordinates (half-pixel centres).
    """
    x0, y0, x1, y1 = geometry.box_in_original()
    h, w = cam.shape
    ys = (np.arange(geometry.height) + 0.5 - y0) / (y1 - y0) * h - 0.5
    xs = (np.arange(geometry.width) + 0.5 - x0) / (x1 - x0) * w - 0.5
    inside_y = (ys >= -0.5) & (ys <= h - 0.5)
    inside_x = (xs >= -0.5) & (xs <= w - 0.5)
    yc, xc = np.clip(ys, 0, h - 1), np.clip(xs, 0, w - 1)
    y_lo, x_lo = np.floor(yc).astype(int), np.floor(xc).astype(int)
    y_hi, x_hi = np.minimum(y_lo + 1, h - 1), np.minimum(x_lo + 1, w - 1)
    fy, fx = (yc - y_lo)[:, None], (xc - x_lo)[None, :]
    top = cam[y_lo][:, x_lo] * (1 - fx) + cam[y_lo][:, x_hi] * fx
    bottom = cam[y_hi][:, x_lo] * (1 - fx) + cam[y_hi][:, x_hi] * fx
    full = top * (1 - fy) + bottom * fy
    return np.asarray(full * inside_y[:, None] * inside_x[None, :], dtype=np.float32)
