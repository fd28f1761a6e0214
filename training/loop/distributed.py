"""Process-group plumbing for ``torchrun``: gloo on CPU, NCCL on CUDA; only rank 0 writes."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


def init_distributed(device: torch.device) -> DistContext:
    """Join the process group when started by torchrun (WORLD_SIZE > 1); otherwise a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend=backend)
    logger.info("distributed training: rank %d of %d (%s)", rank, world, backend)
    return DistContext(rank=rank, world=world, local_rank=local_rank)


def shutdown_distributed(ctx: DistContext) -> None:
    if ctx.enabled and dist.is_initialized():
        dist.destroy_process_group()


def gather_objects(ctx: DistContext, obj: Any) -> list[Any]:
    """Every rank's ``obj``, in rank order (just ``[obj]`` in a single process)."""
    if not ctx.enabled:
        return [obj]
    gathered: list[Any] = [None] * ctx.world
    dist.all_gather_object(gathered, obj)
    return gathered


def all_finite(ctx: DistContext, value: torch.Tensor) -> bool:
    """True when ``value`` is finite on every rank, so all ranks stop together on a NaN."""
    flag = torch.isfinite(value.detach()).all().to(torch.float32).reshape(1)
    if ctx.enabled:
        flag = flag.to(value.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MIN)
    return bool(flag.item() > 0)


def broadcast_model_state(ctx: DistContext, model: nn.Module) -> None:
    """Copy rank 0's parameters and buffers into every rank's model, in place.

    DDP keeps parameters in step, but each rank's last forward pass updates its own BatchNorm running statistics;
    rank 0 saves its copy, so every rank must validate that copy for the recorded metrics to describe the file.
    """
    if not ctx.enabled:
        return
    for tensor in model.state_dict().values():  # detached views sharing the modules' storage
        dist.broadcast(tensor, src=0)
