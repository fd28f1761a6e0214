"""A batch's (3, S, S) tensors -> one (B, 3, S, S) model input; on CUDA padded to a bucket, in pinned memory.

On the CPU a batch is stacked as it comes: padding would only add work. On CUDA two things pay:

- **buckets**: every batch is padded with zero rows to the next of a few sizes (powers of two up to
  ``max_batch_size``), so cuDNN autotunes each shape once, at warm-up, instead of on live requests; the padded
  rows' outputs are dropped (eval-mode BatchNorm keeps rows independent, so the real rows do not change);
- **pinned host memory**: the batch is assembled in one page-locked buffer, reused, so the copy to the GPU is a
  single asynchronous DMA instead of a staged copy.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def batch_buckets(max_batch_size: int) -> tuple[int, ...]:
    """Powers of two below ``max_batch_size``, then itself: (1, 2, 4, 8, 16) for 16, (1, 2, 4, 8, 12) for 12."""
    if max_batch_size < 1:
        raise ValueError(f"max_batch_size must be at least 1, got {max_batch_size}")
    buckets, size = [], 1
    while size < max_batch_size:
        buckets.append(size)
        size *= 2
    return (*buckets, max_batch_size)


def bucket_for(rows: int, buckets: Sequence[int]) -> int:
    """The smallest bucket that holds ``rows``; ValueError when none does."""
    for bucket in sorted(buckets):
        if bucket >= rows:
            return bucket
    raise ValueError(f"a batch of {rows} is larger than the largest bucket ({max(buckets)})")


class BatchAssembler:
    """Builds the model input of each batch; used from the model thread only (one buffer, reused).

    ``buckets`` None: stack as given. ``pinned``: assemble in page-locked memory (CUDA only). A pinned buffer is
    refilled only after the previous batch's results were read back to the host (the predictor does so before it
    takes the next batch), so an asynchronous copy never reads a buffer being overwritten.
    """

    def __init__(self, buckets: tuple[int, ...] | None, pinned: bool) -> None:
        self.buckets, self.pinned = buckets, pinned
        self._buffer: torch.Tensor | None = None

    @classmethod
    def for_device(cls, device: torch.device, max_batch_size: int) -> BatchAssembler:
        """Buckets and pinned memory on CUDA; plain stacking elsewhere."""
        if device.type == "cuda":
            return cls(batch_buckets(max_batch_size), pinned=True)
        return cls(None, pinned=False)

    def rows_for(self, rows: int) -> int:
        """How many rows a batch of ``rows`` images is run as."""
        return rows if self.buckets is None else bucket_for(rows, self.buckets)

    def assemble(self, tensors: Sequence[torch.Tensor]) -> torch.Tensor:
        """(3, S, S) tensors -> (rows_for(n), 3, S, S) float32 on the host: the n images, then zero rows."""
        rows = self.rows_for(len(tensors))
        if not self.pinned and rows == len(tensors):
            return torch.stack(list(tensors))
        out = self._buffer_view(rows, tensors[0].shape) if self.pinned else torch.empty(rows, *tensors[0].shape)
        torch.stack(list(tensors), out=out[: len(tensors)])
        out[len(tensors) :].zero_()
        return out

    def _buffer_view(self, rows: int, item_shape: torch.Size) -> torch.Tensor:
        """The first ``rows`` rows of the pinned buffer, (re)allocated for the largest bucket of this shape."""
        capacity = max(self.buckets) if self.buckets else rows
        if self._buffer is None or self._buffer.shape[1:] != item_shape or self._buffer.shape[0] < rows:
            self._buffer = torch.empty(max(capacity, rows), *item_shape, pin_memory=True)
        return self._buffer[:rows]
