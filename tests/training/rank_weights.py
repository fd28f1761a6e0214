"""``chexnet train`` that also saves each process's parameters at the end of every epoch, before rank 0's state is
broadcast to the others: the subject of the several-node tests.

    python -m tests.training.rank_weights FOLDER chexnet-arguments...

Writes ``FOLDER/rank{R}-epoch{E}.pt``: {parameter name: tensor}, what that rank trained. E counts broadcasts, which
are epochs without --ema (with it, each epoch broadcasts the average too).
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import nn

import training.train
from chexnet_cli import main
from training.loop.distributed import DistContext


def save_before_broadcast(folder: Path) -> None:
    original = training.train.broadcast_model_state
    calls: list[int] = []

    def broadcast(ctx: DistContext, model: nn.Module) -> None:
        calls.append(1)
        parameters = {name: p.detach().clone() for name, p in model.named_parameters()}
        torch.save(parameters, folder / f"rank{ctx.rank}-epoch{len(calls)}.pt")
        original(ctx, model)

    training.train.broadcast_model_state = broadcast  # type: ignore[assignment]


if __name__ == "__main__":
    save_before_broadcast(Path(sys.argv[1]))
    sys.exit(main(sys.argv[2:]))
