"""``--resume``: what ``OUT/last.pt`` holds besides the weights, and how a run continues from it.

A resumed run needs nothing but ``last.pt``: the network is built bare and overwritten, so the starting weights
(ImageNet, or a ``--weights PATH`` checkpoint) need not be at hand again. On the same device and process count,
the resumed run repeats an uninterrupted one bit for bit on the CPU; on another device it continues correctly,
with a warning that it no longer repeats the original.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from models.checkpoint import Checkpoint, load_checkpoint
from training.loop.config import TrainConfig, TrainConfigError
from training.loop.recipe import RECIPE_OPTIONS
from training.loop.rng_state import capture_rng_state, restore_rng_state

logger = logging.getLogger(__name__)

# Options that change what an epoch does; a resumed run must keep them to repeat an uninterrupted one.
_RESUME_FIXED = ("image_size", "batch_size", "lr", "weights", "val_fraction", "train_list", "val_list",
                 "pos_weight", "scheduler", "seed", "skip_unreadable")  # fmt: skip


@dataclass
class Progress:
    """What carries over between epochs (and across --resume)."""

    next_epoch: int = 0
    best_mean_auroc: float = float("-inf")
    history: list[dict[str, Any]] = field(default_factory=list)

    def add_epoch(self, record: dict[str, Any]) -> bool:
        """Record a finished epoch; True when its mean validation AUROC is the best so far."""
        self.history.append(record)
        self.next_epoch = record["epoch"]
        mean = record["val_mean_auroc"]
        improved = mean is not None and mean > self.best_mean_auroc
        if improved:
            self.best_mean_auroc = mean
        return improved


class RunAlreadyFinishedError(Exception):
    """--resume of a run whose epochs are all done: nothing to train. Not a failure: ``chexnet train`` says so
    and exits 0, so a script may resume until done."""


def epochs_done(checkpoint: Checkpoint) -> int:
    """How many epochs the run that wrote ``checkpoint`` (a last.pt) had finished."""
    state = checkpoint.training_state or {}
    return int(state.get("next_epoch", 0))


TrainingObjects = tuple[torch.optim.Optimizer, Any, torch.amp.GradScaler]  # optimizer, scheduler, scaler


def check_resumable(config: TrainConfig, saved: dict[str, Any]) -> None:
    """--resume with other options would silently train something else: refuse, naming the options."""
    fixed = _RESUME_FIXED + RECIPE_OPTIONS + (("epochs",) if config.scheduler == "cosine" else ())  # cosine: T_max
    current = config.to_dict()
    changed = [k for k in fixed if k in saved and saved[k] != current[k]]
    if changed:
        flags = ", ".join(f"--{k.replace('_', '-')} (was {saved[k]!r}, now {current[k]!r})" for k in changed)
        raise TrainConfigError(f"--resume needs the options of the interrupted run; changed: {flags}")


def read_resume_point(config: TrainConfig) -> Checkpoint:
    """OUT/last.pt, checked before any data is read: it must hold training state and the run's options."""
    checkpoint = load_checkpoint(config.out / "last.pt")
    if checkpoint.training_state is None:
        raise TrainConfigError(f"{config.out / 'last.pt'} has no training state to resume from")
    check_resumable(config, checkpoint.config)
    return checkpoint


def capture_training_state(
    progress: Progress, objects: TrainingObjects, device: torch.device, processes: int
) -> dict[str, Any]:
    """Everything besides the weights that the next epoch depends on, as tensors and plain data."""
    optimizer, scheduler, scaler = objects
    return {
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict(),
        "next_epoch": progress.next_epoch,
        "best_mean_auroc": progress.best_mean_auroc,
        "history": progress.history,
        "rng": capture_rng_state(),
        "device": device.type,
        "processes": processes,
    }


def restore_training_state(
    checkpoint: Checkpoint, model: nn.Module, objects: TrainingObjects, device: torch.device, processes: int
) -> Progress:
    """Load weights, optimizer, scheduler, scaler and RNG states into this run's objects (already on ``device``)."""
    state = checkpoint.training_state
    if state is None:
        raise TrainConfigError("the checkpoint has no training state to resume from")
    warn_if_moved(state, device, processes)
    optimizer, scheduler, scaler = objects
    model.load_state_dict(checkpoint.state_dict, strict=True)  # copies into place: keeps device and memory format
    optimizer.load_state_dict(state["optimizer"])  # moves its tensors to the parameters' device
    scheduler.load_state_dict(state["scheduler"])
    restore_scaler(scaler, state["scaler"])
    restore_rng_state(state["rng"])
    logger.info("resuming at epoch %d", state["next_epoch"] + 1)
    return Progress(state["next_epoch"], state["best_mean_auroc"], list(state["history"]))


def restore_scaler(scaler: torch.amp.GradScaler, saved: dict[str, Any]) -> None:
    """The AMP scaler's state; a CPU run saved a disabled scaler's empty state, so on CUDA it starts afresh."""
    if scaler.is_enabled() and not saved:
        logger.info("last.pt has no AMP scaler state (written without AMP): the scaler starts afresh")
        return
    scaler.load_state_dict(saved)  # a no-op on a disabled scaler (a CUDA run resumed on the CPU)


def warn_if_moved(state: dict[str, Any], device: torch.device, processes: int) -> None:
    """A resumed run on another device or process count trains on, but no longer repeats the original."""
    saved = (state.get("device", device.type), state.get("processes", processes))  # absent in older files
    if saved != (device.type, processes):
        logger.warning(
            "last.pt was written by a run on %s with %d process(es); continuing on %s with %d. Training goes on "
            "correctly, but does not repeat an uninterrupted run bit for bit",
            saved[0],
            saved[1],
            device.type,
            processes,
        )
