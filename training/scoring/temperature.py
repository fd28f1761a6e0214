"""Temperature scaling and how well probabilities are calibrated (reliability bins, ECE, NLL).

Temperature scaling (Guo et al., "On Calibration of Modern Neural Networks", ICML 2017, section 4.2): one scalar
T > 0 divides every logit, fitted by minimising the negative log-likelihood on held-out data. It never changes the
order of the scores, so AUROC, PR-AUC and the sensitivity and specificity of an operating point stay the same; the
thresholds move with the probabilities. Here the K sigmoid outputs share one T, fitted over every known entry
(unknown targets, NaN, are left out).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.optimize import minimize_scalar

from models.operating_points import apply_temperature

TEMPERATURE_BOUNDS = (0.05, 20.0)  # the search interval for T; a fit on its edge is reported, not extrapolated
RELIABILITY_BINS = 10


def _logits(probs: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """logit(p), with p kept inside float64's open interval (0, 1) so 0 and 1 give finite logits."""
    p = np.clip(np.asarray(probs, dtype=np.float64), 1e-12, 1.0 - 1e-12)
    return np.asarray(np.log(p) - np.log1p(-p), dtype=np.float64)


def binary_nll(targets: npt.ArrayLike, probs: npt.ArrayLike, temperature: float = 1.0) -> float:
    """Mean binary cross-entropy (nats) of ``sigmoid(logit(p) / T)`` over every known (non-NaN) entry of ``targets``;
    0 when none is known."""
    y = np.asarray(targets, dtype=np.float64)
    known = ~np.isnan(y)
    z = _logits(np.asarray(probs, dtype=np.float64)[known]) / temperature
    # BCE with logits, stably: softplus(z) - y * z
    return float(np.mean(np.logaddexp(0.0, z) - y[known] * z)) if known.any() else 0.0


def fit_temperature(targets: npt.ArrayLike, probs: npt.ArrayLike) -> float:
    """(N, K) labels (1, 0, NaN) and raw probabilities -> the T in ``TEMPERATURE_BOUNDS`` minimising
    :func:`binary_nll` over the known entries.

    The search is over log T (bounded Brent, scipy ``minimize_scalar``), to 1e-6 in log T.
    Raises ValueError for empty or mismatched inputs.
    """
    y = np.asarray(targets, dtype=np.float64)
    p = np.asarray(probs, dtype=np.float64)
    if y.size == 0 or y.shape != p.shape:
        raise ValueError(f"targets and probs must have the same, non-empty shape, got {y.shape} and {p.shape}")
    if not np.isfinite(y).any():
        raise ValueError("no known target to fit a temperature on (every entry is unknown)")
    low, high = (math.log(bound) for bound in TEMPERATURE_BOUNDS)
    result = minimize_scalar(
        lambda log_t: binary_nll(y, p, math.exp(log_t)), bounds=(low, high), method="bounded", options={"xatol": 1e-6}
    )
    return float(math.exp(result.x))


@dataclass(frozen=True)
class ReliabilityBins:
    """Equal-width bins over [0, 1] of predicted probability: entries, mean prediction and observed frequency
    (NaN in an empty bin), each (RELIABILITY_BINS,)."""

    edges: npt.NDArray[np.float64]
    counts: npt.NDArray[np.int64]
    mean_predicted: npt.NDArray[np.float64]
    observed: npt.NDArray[np.float64]

    @property
    def expected_calibration_error(self) -> float:
        """ECE = sum over bins of (entries / total) * |observed - mean predicted| (Naeini et al., AAAI 2015;
        Guo et al. 2017, eq. 3); empty bins count zero."""
        total = int(self.counts.sum())
        filled = self.counts > 0
        gaps = np.abs(self.observed[filled] - self.mean_predicted[filled])
        return float((self.counts[filled] / total * gaps).sum()) if total else 0.0


def reliability_bins(
    targets: npt.ArrayLike, probs: npt.ArrayLike, temperature: float | None = None, bins: int = RELIABILITY_BINS
) -> ReliabilityBins:
    """Pool every known entry of (N, K) ``targets`` / raw ``probs`` (after ``temperature``) into ``bins``
    equal-width bins; a probability on an inner edge belongs to the upper bin, and 1.0 to the last."""
    y_all = np.asarray(targets, dtype=np.float64).reshape(-1)
    known = ~np.isnan(y_all)
    y = y_all[known]
    p = apply_temperature(probs, temperature).reshape(-1)[known]
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, bins - 1)
    counts = np.bincount(which, minlength=bins).astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_predicted = np.bincount(which, weights=p, minlength=bins) / counts
        observed = np.bincount(which, weights=y, minlength=bins) / counts
    return ReliabilityBins(edges, counts, mean_predicted, observed)
