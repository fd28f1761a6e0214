"""train_one_epoch and validate: the loops, nothing else (no file I/O, no argument parsing)."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from training.data.dataset import checked
from training.loop.distributed import DistContext, all_finite, gather_objects
from training.loop.step_recipe import StepRecipe


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; training stops before a broken checkpoint is written."""


@dataclass(frozen=True)
class EpochStats:
    loss: float
    images: int
    seconds: float

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class EvalResult:
    loss: float
    probs: np.ndarray  # (N, K) after sigmoid, in dataset order
    targets: np.ndarray  # (N, K): 1, 0 or NaN (unknown)


Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def _quiet(ctx: DistContext) -> bool:
    """Progress bars only on rank 0 and only on a terminal (log files get the per-epoch summary line)."""
    return not (ctx.is_main and sys.stderr.isatty())


def train_one_epoch(
    model: nn.Module,
    loader: DataLoader[Batch],
    criterion: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    device: torch.device,
    epoch: int,
    ctx: DistContext,
    recipe: StepRecipe | None = None,
) -> EpochStats:
    """One pass over this rank's shard; raises NonFiniteLossError naming the epoch and step.

    Raises :class:`training.data.dataset.UnreadableImageError` when an image fails to decode; nothing is saved for
    the unfinished epoch, so ``--resume`` continues from the last completed one.  ``recipe``: precision, memory
    format and the weight average's update (None: the seed's steps on ``device``).
    """
    model.train()
    recipe = recipe or StepRecipe.for_device(device)
    total_loss, seen, start = 0.0, 0, time.perf_counter()
    bar = tqdm(loader, desc=f"epoch {epoch + 1} train", unit="batch", disable=_quiet(ctx), leave=False)
    for step, batch in enumerate(bar):
        images, targets, _ = checked(batch)
        images, targets = recipe.input_batch(images, device), targets.to(device, non_blocking=True)
        with recipe.autocast(device):
            loss = criterion(model(images), targets)
        if not all_finite(ctx, loss):
            raise NonFiniteLossError(f"loss became non-finite at epoch {epoch + 1}, step {step + 1}; stopping")
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        recipe.after_step()
        total_loss += loss.item() * images.shape[0]
        seen += images.shape[0]
        elapsed = time.perf_counter() - start
        bar.set_postfix(loss=f"{total_loss / seen:.4f}", img_s=f"{seen * ctx.world / max(elapsed, 1e-9):.1f}")
    seconds = time.perf_counter() - start
    totals = gather_objects(ctx, (total_loss, seen))
    all_loss, all_seen = sum(t[0] for t in totals), sum(t[1] for t in totals)
    return EpochStats(loss=all_loss / max(all_seen, 1), images=all_seen, seconds=seconds)


@torch.no_grad()
def validate(
    model: nn.Module,
    loader: DataLoader[Batch],
    criterion: nn.Module,
    device: torch.device,
    ctx: DistContext,
    recipe: StepRecipe | None = None,
) -> EvalResult:
    """Loss and sigmoid probabilities over the whole validation set, gathered from every rank."""
    model.eval()
    recipe = recipe or StepRecipe.for_device(device)
    indices, logits_parts, target_parts = [], [], []
    bar = tqdm(loader, desc="validate", unit="batch", disable=_quiet(ctx), leave=False)
    for batch in bar:
        images, targets, index = checked(batch)
        with recipe.autocast(device):
            logits = model(recipe.input_batch(images, device))
        logits_parts.append(logits.float().cpu())
        target_parts.append(targets)
        indices.append(index)
    local = (
        torch.cat(indices) if indices else torch.empty(0, dtype=torch.long),
        torch.cat(logits_parts) if logits_parts else torch.empty(0),
        torch.cat(target_parts) if target_parts else torch.empty(0),
    )
    parts = [p for p in gather_objects(ctx, local) if p[0].numel()]
    index_all = torch.cat([p[0] for p in parts])
    order = torch.argsort(index_all)
    logits_all = torch.cat([p[1] for p in parts])[order]
    targets_all = torch.cat([p[2] for p in parts])[order]
    loss = criterion(logits_all.to(device), targets_all.to(device)).item()
    return EvalResult(loss=loss, probs=torch.sigmoid(logits_all).numpy(), targets=targets_all.numpy())
