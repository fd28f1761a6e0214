"""The training recipe's options (optimizer, weight decay, warm-up, EMA, augmentation, precision, memory format):
their checks, the names a resumed run must keep, and their description in a checkpoint's provenance.

Each is off by default where it would change the seed's recipe; see ``docs/recipe.md``.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import torch

from training.data.augment import AUGMENTS, CXR_RANGES
from training.loop.optimizers import OPTIMIZERS
from training.loop.step_recipe import PRECISIONS

if TYPE_CHECKING:
    from training.loop.config import TrainConfig

# TrainConfig fields that change what an epoch computes: a resumed run must keep them (training.loop.resume).
RECIPE_OPTIONS = ("optimizer", "weight_decay", "warmup_epochs", "ema", "augment", "precision", "channels_last")


def recipe_problem(config: TrainConfig, device: torch.device) -> str | None:
    """The first invalid recipe option in words (the flag and what to do), or None. Touches no data."""
    if config.optimizer not in OPTIMIZERS:
        return f"--optimizer must be one of {', '.join(OPTIMIZERS)}, got {config.optimizer!r}"
    if not 0.0 <= config.weight_decay < 1.0:
        return f"--weight-decay must be at least 0 and below 1, got {config.weight_decay}"
    if config.warmup_epochs < 0:
        return f"--warmup-epochs must be at least 0, got {config.warmup_epochs}"
    if config.scheduler == "cosine" and config.warmup_epochs and config.warmup_epochs >= config.epochs:
        return (
            f"--warmup-epochs ({config.warmup_epochs}) must be fewer than --epochs ({config.epochs}): the cosine "
            "anneals over the epochs after the warm-up"
        )
    if config.ema is not None and not 0.0 < config.ema < 1.0:
        return f"--ema is the averaging decay, strictly between 0 and 1 (0.999 is usual), got {config.ema}"
    if config.augment not in AUGMENTS:
        return f"--augment must be one of {', '.join(AUGMENTS)}, got {config.augment!r}"
    if config.precision not in PRECISIONS:
        return f"--precision must be one of {', '.join(PRECISIONS)}, got {config.precision!r}"
    if config.precision == "fp16" and device.type != "cuda":
        return "--precision fp16 needs CUDA (on the CPU, use bf16 or fp32)"
    if config.precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return "--precision bf16: this GPU has no bfloat16 support (use fp16 or fp32)"
    return None


def describe_recipe(config: TrainConfig, device: torch.device) -> dict[str, Any]:
    """The recipe in the checkpoint's provenance (``provenance["recipe"]``), with what each option resolved to."""
    from training.loop.step_recipe import autocast_dtype, uses_channels_last

    dtype = autocast_dtype(config.precision, device)
    return {
        "optimizer": config.optimizer,
        "weight_decay": config.weight_decay,
        "scheduler": config.scheduler,
        "warmup_epochs": config.warmup_epochs,
        "ema_decay": config.ema,
        "best_weights": "exponential moving average" if config.ema is not None else "trained",
        "augment": config.augment,
        "augment_ranges": asdict(CXR_RANGES) if config.augment == "cxr" else None,
        "precision": config.precision,
        "autocast": "off" if dtype is None else str(dtype).removeprefix("torch."),
        "memory_format": "channels_last" if uses_channels_last(config.channels_last, device) else "contiguous",
        "device": device.type,
    }
