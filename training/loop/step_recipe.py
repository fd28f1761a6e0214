"""How one training or validation step computes: autocast precision, memory format, and what follows a step.

``--precision``: ``auto`` is the seed's (fp16 autocast with a gradient scaler on CUDA, fp32 on the CPU);
``fp32`` turns autocast off everywhere; ``bf16`` autocasts to bfloat16 on the CPU or CUDA (its exponent range is
fp32's, so no gradient scaler); ``fp16`` is CUDA only.  Under autocast the weights, the gradients and the
optimizer stay fp32 (``torch.autocast``: "mixed precision"); the loss (BCE on logits) is computed in fp32.

``--channels-last``: the network and its inputs in NHWC (``torch.channels_last``) on any device; without it
CUDA already uses it (the seed's) and the CPU keeps NCHW.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass

import torch

from training.loop.ema import WeightAverage

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of ``--precision`` on ``device``; None: no autocast (fp32)."""
    if precision == "auto":
        return torch.float16 if device.type == "cuda" else None
    return _DTYPES[precision]


def uses_channels_last(channels_last: bool, device: torch.device) -> bool:
    """NHWC when asked for, and always on CUDA (the seed's)."""
    return channels_last or device.type == "cuda"


@dataclass(frozen=True)
class StepRecipe:
    """``dtype``: autocast's (None: fp32); ``channels_last``: NHWC inputs; ``average``: updated after each step."""

    dtype: torch.dtype | None = None
    channels_last: bool = False
    average: WeightAverage | None = None

    @classmethod
    def for_device(
        cls,
        device: torch.device,
        precision: str = "auto",
        channels_last: bool = False,
        average: WeightAverage | None = None,
    ) -> StepRecipe:
        """The options resolved on ``device``; the defaults give the seed's steps."""
        return cls(autocast_dtype(precision, device), uses_channels_last(channels_last, device), average)

    @property
    def needs_grad_scaler(self) -> bool:
        """fp16's narrow exponent range needs loss scaling; bf16 and fp32 do not."""
        return self.dtype == torch.float16

    def autocast(self, device: torch.device) -> AbstractContextManager[None]:
        """The forward pass's autocast region (disabled for fp32)."""
        enabled = self.dtype is not None
        return torch.autocast(device.type, dtype=self.dtype if enabled else None, enabled=enabled)

    def input_batch(self, images: torch.Tensor, device: torch.device) -> torch.Tensor:
        """(N, 3, S, S) images on ``device``, in the network's memory format."""
        images = images.to(device, non_blocking=True)
        return images.contiguous(memory_format=torch.channels_last) if self.channels_last else images

    def after_step(self) -> None:
        """What follows each optimizer step: the weight average's update, when there is one."""
        if self.average is not None:
            self.average.update()
