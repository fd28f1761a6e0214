"""Optimizer, weight decay and warm-up: the seed's defaults kept, the schedule's learning rates exact."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from torch import nn

from training.loop.config import TrainConfig
from training.loop.optimizers import LinearWarmup, make_optimizer, make_scheduler, step_scheduler

BASE = TrainConfig(images=Path("i"), labels=Path("l.csv"), out=Path("o"), lr=1e-3, epochs=5)


def tiny_network() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.LazyLinear(2))


def lrs_over_epochs(config: TrainConfig, losses: list[float]) -> list[float]:
    """The learning rate each epoch trains at, stepping once per epoch with the given validation losses."""
    optimizer = make_optimizer(config, nn.Linear(2, 2))
    scheduler = make_scheduler(config, optimizer)
    seen = []
    for loss in losses:
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()  # no gradients: nothing moves; the order torch's schedulers expect
        step_scheduler(scheduler, loss)
    return seen


def test_the_default_is_the_seeds_adam_with_one_group_and_no_decay() -> None:
    optimizer = make_optimizer(BASE, tiny_network())
    assert type(optimizer) is torch.optim.Adam
    assert len(optimizer.param_groups) == 1
    group = optimizer.param_groups[0]
    assert (group["lr"], group["betas"], group["weight_decay"]) == (1e-3, (0.9, 0.999), 0.0)
    assert type(make_scheduler(BASE, optimizer)) is torch.optim.lr_scheduler.ReduceLROnPlateau


def test_weight_decay_spares_batchnorm_and_biases() -> None:
    model = tiny_network()
    model(torch.zeros(1, 3, 5, 5))  # materialise the lazy layer
    optimizer = make_optimizer(replace(BASE, optimizer="adamw", weight_decay=0.05), model)
    assert type(optimizer) is torch.optim.AdamW
    decayed, spared = optimizer.param_groups
    assert decayed["weight_decay"] == 0.05 and spared["weight_decay"] == 0.0
    assert [tuple(p.shape) for p in decayed["params"]] == [(4, 3, 3, 3), (2, 36)]
    assert [tuple(p.shape) for p in spared["params"]] == [(4,), (4,), (4,), (2,)]  # conv bias, BN scale, shift, bias


def test_adam_with_weight_decay_is_the_l2_term_in_the_gradient() -> None:
    model = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(2.0)
    optimizer = make_optimizer(replace(BASE, weight_decay=0.1), model)
    assert [len(group["params"]) for group in optimizer.param_groups] == [1]  # no empty group for the spared
    model.weight.grad = torch.zeros(1, 1)
    optimizer.step()
    # Adam's first step moves by lr * sign(g) whatever |g|: here g = 0 + 0.1 * 2, so the weight shrinks by lr
    assert model.weight.item() == pytest.approx(2.0 - 1e-3, abs=1e-7)  # float32


def test_warmup_then_cosine_over_the_remaining_epochs() -> None:
    config = replace(BASE, scheduler="cosine", warmup_epochs=2, epochs=5)
    cosine = [1e-3 * 0.5 * (1 + math.cos(math.pi * k / 3)) for k in range(3)]
    assert lrs_over_epochs(config, [1.0] * 5) == pytest.approx([1e-3 / 3, 2e-3 / 3, *cosine], rel=1e-12)


def test_warmup_then_plateau_which_sees_only_later_losses() -> None:
    config = replace(BASE, warmup_epochs=1, epochs=8)
    # the warm-up epoch's loss (0.1) is not the plateau's best: three later epochs without improvement cut the lr
    lrs = lrs_over_epochs(config, [0.1, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    assert lrs == pytest.approx([5e-4, 1e-3, 1e-3, 1e-3, 1e-3, 1e-4, 1e-4, 1e-4], rel=1e-12)


def test_without_warmup_the_cosine_is_the_seeds() -> None:
    config = replace(BASE, scheduler="cosine", epochs=4)
    assert type(make_scheduler(config, make_optimizer(config, nn.Linear(2, 2)))) is (
        torch.optim.lr_scheduler.CosineAnnealingLR
    )


def test_a_warmup_restored_mid_way_continues_exactly() -> None:
    config = replace(BASE, scheduler="cosine", warmup_epochs=2, epochs=5)
    straight = lrs_over_epochs(config, [1.0] * 5)
    optimizer = make_optimizer(config, nn.Linear(2, 2))
    scheduler = make_scheduler(config, optimizer)
    optimizer.step()
    step_scheduler(scheduler, 1.0)
    saved = (optimizer.state_dict(), scheduler.state_dict())
    again = make_optimizer(config, nn.Linear(2, 2))
    resumed = make_scheduler(config, again)
    again.load_state_dict(saved[0])
    resumed.load_state_dict(saved[1])
    assert isinstance(resumed, LinearWarmup) and resumed.epochs_done == 1
    seen = []
    for _ in range(4):
        seen.append(again.param_groups[0]["lr"])
        again.step()
        step_scheduler(resumed, 1.0)
    assert seen == straight[1:]
