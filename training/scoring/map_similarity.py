"""How alike two saliency maps are: Spearman rank correlation and SSIM, the two measures of Adebayo et al.,
"Sanity Checks for Saliency Maps" (NeurIPS 2018), for the cascading-randomisation check of ``chexnet localize``.

SSIM is Wang, Bovik, Sheikh and Simoncelli (IEEE TIP 2004), eq. 13: a Gaussian window (sigma 1.5, truncated at
3.5 sigma, the same as scikit-image's ``gaussian_weights=True`` choice), K1 = 0.01, K2 = 0.03, data range 1 (maps
in [0, 1]); the mean of the SSIM map over the pixels at least the window's radius (5) from the border, as
scikit-image does (there the window is cut off by the border).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy.ndimage import gaussian_filter
from scipy.stats import spearmanr

SSIM_SIGMA = 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03


def spearman(a: npt.NDArray[np.floating], b: npt.NDArray[np.floating]) -> float | None:
    """Spearman's rank correlation of two maps of one shape (ties get average ranks); None when either is
    constant (no ranking to compare)."""
    x, y = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"maps of different shapes: {np.shape(a)} and {np.shape(b)}")
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return None
    return float(spearmanr(x, y).statistic)


def ssim(a: npt.NDArray[np.floating], b: npt.NDArray[np.floating], data_range: float = 1.0) -> float:
    """Mean structural similarity of two (H, W) maps in [0, ``data_range``]; 1.0 for identical maps."""
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 2:
        raise ValueError(f"need two (H, W) maps of one shape, got {x.shape} and {y.shape}")
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2

    def blur(v: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        out: npt.NDArray[np.float64] = gaussian_filter(v, SSIM_SIGMA, truncate=3.5, mode="reflect")
        return out

    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    numerator = (2 * mx * my + c1) * (2 * cxy + c2)
    denominator = (mx * mx + my * my + c1) * (vx + vy + c2)
    pad = int(3.5 * SSIM_SIGMA + 0.5)
    inner = (slice(pad, -pad), slice(pad, -pad)) if min(x.shape) > 2 * pad else (slice(None), slice(None))
    return float(np.mean((numerator / denominator)[inner]))
