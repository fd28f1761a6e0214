"""The optimizer and the learning-rate schedule of ``chexnet train``: Adam or AdamW, weight decay, linear warm-up.

Defaults repeat the seed recipe exactly: Adam (betas 0.9, 0.999) without weight decay, one parameter group, and
ReduceLROnPlateau or CosineAnnealingLR stepped once per epoch.  The options only add to it:

- ``--optimizer adamw``: decoupled weight decay (Loshchilov & Hutter, "Decoupled Weight Decay Regularization",
  ICLR 2019; ``torch.optim.AdamW``).  With ``--optimizer adam`` a weight decay is the classic L2 term added to the
  gradient (``torch.optim.Adam(weight_decay=...)``).
- ``--weight-decay W`` (> 0): applied to the convolution and linear weights only; BatchNorm scales and shifts
  and biases (every parameter with one dimension) are not decayed, the common practice for normalised networks
  (as timm's ``param_groups_weight_decay``).
- ``--warmup-epochs N``: epoch ``k < N`` (0-based) trains at ``lr * (k + 1) / (N + 1)``; epoch ``N`` starts the
  chosen scheduler at ``lr``: cosine then anneals over the remaining ``epochs - N`` epochs, and the plateau
  scheduler only sees the validation losses of epochs after the warm-up.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn

if TYPE_CHECKING:
    from training.loop.config import TrainConfig

OPTIMIZERS = ("adam", "adamw")
ADAM_BETAS = (0.9, 0.999)  # the seed's


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """One group without decay (``weight_decay == 0``: the seed's single group), else decayed weights (ndim > 1)
    and undecayed BatchNorm parameters and biases (ndim <= 1)."""
    params = [p for p in model.parameters() if p.requires_grad]
    if weight_decay == 0:
        return [{"params": params}]
    groups = [
        {"params": [p for p in params if p.ndim > 1], "weight_decay": weight_decay},
        {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0},
    ]
    return [group for group in groups if group["params"]]


def make_optimizer(config: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    """Adam or AdamW at ``config.lr`` with ``config.weight_decay`` on the weights (see :func:`parameter_groups`)."""
    groups = parameter_groups(model, config.weight_decay)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=config.lr, betas=ADAM_BETAS, weight_decay=0.0)
    return torch.optim.Adam(groups, lr=config.lr, betas=ADAM_BETAS, weight_decay=0.0)


class LinearWarmup:
    """``lr * (k + 1) / (N + 1)`` for epochs ``k < N``, then every step goes to the scheduler it wraps.

    The wrapped scheduler is built first, on the full ``lr`` (so a cosine schedule starts at ``lr`` when the
    warm-up ends); it is not stepped during the warm-up.  ``step`` is called once after each epoch, with that
    epoch's validation loss (used by ReduceLROnPlateau only).
    """

    def __init__(self, optimizer: torch.optim.Optimizer, warmup_epochs: int, after: Any) -> None:
        if warmup_epochs < 1:
            raise ValueError(f"warmup_epochs must be at least 1, got {warmup_epochs}")
        self.optimizer, self.warmup_epochs, self.after = optimizer, warmup_epochs, after
        self.base_lrs = [float(group["lr"]) for group in optimizer.param_groups]
        self.epochs_done = 0
        self._scale(1 / (warmup_epochs + 1))

    def _scale(self, factor: float) -> None:
        for group, base in zip(self.optimizer.param_groups, self.base_lrs, strict=True):
            group["lr"] = base * factor

    def step(self, val_loss: float) -> None:
        self.epochs_done += 1
        if self.epochs_done < self.warmup_epochs:
            self._scale((self.epochs_done + 1) / (self.warmup_epochs + 1))
        elif self.epochs_done == self.warmup_epochs:
            self._scale(1.0)
        else:
            step_scheduler(self.after, val_loss)

    def state_dict(self) -> dict[str, Any]:
        return {"epochs_done": self.epochs_done, "base_lrs": list(self.base_lrs), "after": self.after.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epochs_done, self.base_lrs = int(state["epochs_done"]), [float(x) for x in state["base_lrs"]]
        self.after.load_state_dict(state["after"])


def make_scheduler(config: TrainConfig, optimizer: torch.optim.Optimizer) -> Any:
    """The chosen scheduler, behind a :class:`LinearWarmup` when ``config.warmup_epochs > 0``.

    cosine: CosineAnnealingLR to 0 over the epochs after the warm-up; plateau: ReduceLROnPlateau on the
    validation loss (x0.1, patience 2), the seed's.
    """
    after: Any
    if config.scheduler == "cosine":
        after = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs - config.warmup_epochs)
    else:
        after = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=0.1, patience=2)
    return LinearWarmup(optimizer, config.warmup_epochs, after) if config.warmup_epochs > 0 else after


def step_scheduler(scheduler: Any, val_loss: float) -> None:
    """One scheduler step after an epoch; ReduceLROnPlateau and a warm-up take the epoch's validation loss."""
    if isinstance(scheduler, (torch.optim.lr_scheduler.ReduceLROnPlateau, LinearWarmup)):
        scheduler.step(val_loss)
    else:
        scheduler.step()
