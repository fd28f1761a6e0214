"""--ema: the average's update rule, its ramp, and its state round trip."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from training.loop.ema import WeightAverage


def test_update_follows_the_ramped_decay_and_copies_integer_buffers() -> None:
    model = nn.BatchNorm1d(1)
    with torch.no_grad():
        model.weight.fill_(1.0)
    average = WeightAverage(model, decay=0.5)
    with torch.no_grad():
        model.weight.fill_(3.0)
    model.num_batches_tracked.fill_(7)
    assert average.current_decay() == pytest.approx(0.1)  # min(0.5, 1 / 10)
    average.update()
    assert average.module.weight.item() == pytest.approx(0.1 * 1.0 + 0.9 * 3.0)
    assert average.module.num_batches_tracked.item() == 7
    assert average.current_decay() == pytest.approx(2 / 11)
    for _ in range(20):
        average.update()
    assert average.current_decay() == 0.5  # the ramp has passed the decay
    assert not average.module.weight.requires_grad and not average.module.training


def test_state_round_trip_continues_exactly() -> None:
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    first = WeightAverage(model, decay=0.9)
    first.update()
    again = WeightAverage(nn.Linear(3, 2), decay=0.5)
    again.model = model
    again.load_state_dict(first.state_dict())
    with torch.no_grad():
        model.weight.add_(1.0)
    first.update()
    again.update()
    assert again.updates == first.updates == 2 and again.decay == 0.9
    for key, value in first.module.state_dict().items():
        assert torch.equal(value, again.module.state_dict()[key]), key


@pytest.mark.parametrize("decay", [0.0, 1.0, -0.5])
def test_decay_outside_the_open_interval_is_refused(decay: float) -> None:
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        WeightAverage(nn.Linear(1, 1), decay)
