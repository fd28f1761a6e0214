"""Binary cross-entropy on logits averaged over known targets only; unknown targets (NaN) are masked out.

loss = sum over known (i, k) of w_ik * BCE(z_ik, y_ik) / (number of known entries), with
BCE(z, y) = -[p_k * y * log sigmoid(z) + (1 - y) * log(1 - sigmoid(z))] (PyTorch's ``BCEWithLogitsLoss`` with
``pos_weight`` p_k, computed stably as it does). A batch with no known entry gives 0 with zero gradients, and an
unknown entry never sends gradient to its logit (its term is multiplied by an exact zero, and its NaN target is
replaced before the product, so no NaN reaches the backward pass).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class MaskedBCEWithLogitsLoss(nn.Module):
    """(N, K) logits and (N, K) targets in {0, 1, NaN} -> the scalar mean BCE over the known entries."""

    def __init__(self, pos_weight: torch.Tensor | None = None) -> None:
        super().__init__()
        self.pos_weight: torch.Tensor | None
        self.register_buffer("pos_weight", pos_weight)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        known = ~torch.isnan(targets)
        filled = torch.where(known, targets, torch.zeros_like(targets)).to(logits.dtype)
        pos_weight = None if self.pos_weight is None else self.pos_weight.to(logits.dtype)
        each = nn.functional.binary_cross_entropy_with_logits(logits, filled, pos_weight=pos_weight, reduction="none")
        mask = known.to(each.dtype)
        return (each * mask).sum() / mask.sum().clamp(min=1.0)


def known_pos_weight(targets: np.ndarray) -> np.ndarray:
    """(N, K) targets with NaN for unknown -> (K,) float32 known negatives / known positives (positives at least 1)."""
    y = np.asarray(targets, dtype=np.float64)
    positives = np.nansum(y == 1.0, axis=0).astype(np.float64)
    negatives = np.nansum(y == 0.0, axis=0).astype(np.float64)
    return np.asarray(negatives / np.maximum(positives, 1.0), dtype=np.float32)
