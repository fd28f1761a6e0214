"""The masked BCE: equal to a hand computation over known entries; unknown entries send no gradient."""

from __future__ import annotations

import math

import numpy as np
import torch

from training.loop.masked_loss import MaskedBCEWithLogitsLoss, known_pos_weight

NAN = float("nan")


def _bce(z: float, y: float, w: float = 1.0) -> float:
    p = 1.0 / (1.0 + math.exp(-z))
    return -(w * y * math.log(p) + (1.0 - y) * math.log(1.0 - p))


def test_loss_is_the_mean_over_known_entries_exactly() -> None:
    logits = torch.tensor([[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]], dtype=torch.float64)
    targets = torch.tensor([[1.0, NAN, 0.0], [NAN, 0.0, 1.0]], dtype=torch.float64)
    known = [(0, 0, 1.0), (0, 2, 0.0), (1, 1, 0.0), (1, 2, 1.0)]
    expected = sum(_bce(float(logits[i, k]), y) for i, k, y in known) / 4
    # float64 throughout: equal up to the rounding of a different summation order
    assert math.isclose(MaskedBCEWithLogitsLoss()(logits, targets).item(), expected, rel_tol=1e-14)
    weights = torch.tensor([3.0, 1.0, 2.0], dtype=torch.float64)
    weighted = sum(_bce(float(logits[i, k]), y, float(weights[k])) for i, k, y in known) / 4
    assert math.isclose(MaskedBCEWithLogitsLoss(weights)(logits, targets).item(), weighted, rel_tol=1e-14)


def test_all_unknown_class_gives_finite_loss_and_no_gradient_to_its_head_row() -> None:
    torch.manual_seed(0)
    head = torch.nn.Linear(4, 3)
    features = torch.randn(5, 4)
    targets = torch.tensor([[1.0, NAN, 0.0]] * 5)
    loss = MaskedBCEWithLogitsLoss()(head(features), targets)
    loss.backward()
    assert torch.isfinite(loss)
    assert head.weight.grad is not None and head.bias.grad is not None
    assert torch.equal(head.weight.grad[1], torch.zeros(4))
    assert head.bias.grad[1].item() == 0.0
    assert head.weight.grad[0].abs().sum() > 0
    nothing = MaskedBCEWithLogitsLoss()(head(features), torch.full((5, 3), NAN))
    assert nothing.item() == 0.0


def test_pos_weight_counts_known_entries() -> None:
    targets = np.array([[1, 0], [0, np.nan], [0, np.nan], [np.nan, 1]], dtype=np.float32)
    np.testing.assert_array_equal(known_pos_weight(targets), np.array([2.0, 1.0], dtype=np.float32))
