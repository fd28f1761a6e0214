"""``chexnet train`` that halts at a chosen moment and waits there to be killed: the subject of the kill -9 tests.

    python -m tests.training.paused_train MOMENT MARKER chexnet-arguments...

MOMENT is ``sample:E:K`` (the training sampler of epoch E is about to hand out its K-th sample, so the batches
before it have trained) or ``replace:NAME:K`` (the K-th atomic write of NAME has written and synced its temporary
file and is about to rename it over NAME). There the process writes MARKER and sleeps until a signal kills it.
The kill then lands at a known point, and the test needs no timing to know where the run was.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from chexnet_cli import main
from training.data.dataset import EpochSampler


def halt(marker: Path) -> None:
    marker.write_text(str(os.getpid()))
    while True:
        signal.pause()


def halt_in_epoch(epoch: int, sample: int, marker: Path) -> None:
    original = EpochSampler.__iter__

    def iterate(self: EpochSampler) -> Iterator[int]:
        for count, index in enumerate(original(self), start=1):
            if self.shuffle and self.epoch + 1 == epoch and count == sample:  # shuffled: the training sampler
                halt(marker)
            yield index

    EpochSampler.__iter__ = iterate  # type: ignore[method-assign]


def halt_before_rename(name: str, nth: int, marker: Path) -> None:
    original = os.replace
    seen = 0

    def rename(src: Any, dst: Any, **kwargs: Any) -> None:
        nonlocal seen
        if Path(dst).name == name:
            seen += 1
            if seen == nth:
                halt(marker)
        original(src, dst, **kwargs)

    os.replace = rename


if __name__ == "__main__":
    kind, what, count = sys.argv[1].split(":")
    if kind == "sample":
        halt_in_epoch(int(what), int(count), Path(sys.argv[2]))
    else:
        halt_before_rename(what, int(count), Path(sys.argv[2]))
    sys.exit(main(sys.argv[3:]))
