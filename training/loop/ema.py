"""``--ema DECAY``: an exponential moving average of the weights, validated each epoch and saved as best.pt.

After every optimizer step each floating-point entry of the network's state (parameters and BatchNorm running
statistics) moves towards the trained one: ``avg = d * avg + (1 - d) * weight``, with
``d = min(DECAY, (1 + n) / (10 + n))`` after ``n`` earlier updates, the ramp of TensorFlow's
``tf.train.ExponentialMovingAverage(num_updates=...)``, so that a short run is not dominated by its starting
weights.  Integer entries (BatchNorm's batch counters) are copied.  The average starts from the weights
training starts from and lives in ``last.pt`` (``training_state["ema"]``), so ``--resume`` continues it exactly.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

# the ramp of tf.train.ExponentialMovingAverage: min(decay, (1 + n) / (10 + n))
RAMP_OFFSET = 10


class WeightAverage:
    """An averaged copy of ``model`` (``module``, same device and memory format), updated by :meth:`update`."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"the EMA decay must lie strictly between 0 and 1, got {decay}")
        self.model, self.decay, self.updates = model, decay, 0
        self.module = copy.deepcopy(model).eval()
        for param in self.module.parameters():
            param.requires_grad_(False)

    def current_decay(self) -> float:
        """The decay the next update uses: ``min(decay, (1 + n) / (10 + n))``, ``n`` the updates so far."""
        return min(self.decay, (1 + self.updates) / (RAMP_OFFSET + self.updates))

    @torch.no_grad()
    def update(self) -> None:
        """Move the average one step towards the model's current state (call after each optimizer step)."""
        decay = self.current_decay()
        trained = self.model.state_dict()
        for name, average in self.module.state_dict().items():
            value = trained[name].detach()
            if average.is_floating_point():
                average.lerp_(value.to(average.dtype), 1.0 - decay)
            else:
                average.copy_(value)
        self.updates += 1

    def state_dict(self) -> dict[str, Any]:
        """The average (CPU tensors), its decay and its update count: plain data for a ``weights_only`` file."""
        weights = {k: v.detach().cpu().clone() for k, v in self.module.state_dict().items()}
        return {"weights": weights, "decay": self.decay, "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (copied into place: device and memory format are kept)."""
        self.module.load_state_dict(state["weights"], strict=True)
        self.decay, self.updates = float(state["decay"]), int(state["updates"])
