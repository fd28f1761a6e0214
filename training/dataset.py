"""Images on disk -> tensors through the shared preprocessing, with seeded per-sample augmentation."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from models.imaging import decode_image
from models.preprocessing import PreprocessSpec, eval_tensor, train_tensor


def load_gray(path: Path) -> np.ndarray:
    """An image file -> (H, W) float32 in [0, 1] through the shared decoder, exactly as the service decodes it.

    Raises :class:`models.input_errors.InputError` (a typed, coded error) for a file that cannot be used.
    """
    return decode_image(path).gray


class XrayDataset(Dataset[tuple[torch.Tensor, torch.Tensor, int]]):
    """Item i -> ((3, S, S) input, (14,) targets, i). Augmentation is a function of (seed, epoch, i) only,

    so a run is reproducible whatever the worker count, and a resumed run repeats an uninterrupted one.
    """

    def __init__(
        self, paths: Sequence[Path], targets: np.ndarray, spec: PreprocessSpec, train: bool, seed: int = 0
    ) -> None:
        self.paths = list(paths)
        self.targets = torch.as_tensor(np.asarray(targets, dtype=np.float32))
        self.spec, self.train, self.seed, self.epoch = spec, train, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        gray = load_gray(self.paths[index])
        if self.train:
            seed = int(np.random.SeedSequence([self.seed, self.epoch, index]).generate_state(1)[0])
            tensor = train_tensor(self.spec, gray, torch.Generator().manual_seed(seed))
        else:
            tensor = eval_tensor(self.spec, gray)
        return tensor, self.targets[index], index


class EpochSampler(Sampler[int]):
    """This rank's indices for an epoch: shuffled by (seed, epoch) or in order; ``rank::world`` shards.

    Unlike DistributedSampler it never pads, so in validation every sample is seen exactly once.
    """

    def __init__(self, size: int, shuffle: bool, seed: int = 0, rank: int = 0, world: int = 1) -> None:
        self.size, self.shuffle, self.seed, self.rank, self.world, self.epoch = size, shuffle, seed, rank, world, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _order(self) -> list[int]:
        if not self.shuffle:
            return list(range(self.size))
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return torch.randperm(self.size, generator=generator).tolist()

    def _usable(self) -> int:
        if self.shuffle and self.world > 1 and self.size >= self.world:
            return self.size - self.size % self.world  # equal shards keep DDP's collective calls in step
        return self.size

    def __iter__(self) -> Iterator[int]:
        return iter(self._order()[: self._usable()][self.rank :: self.world])

    def __len__(self) -> int:
        return len(range(self.rank, self._usable(), self.world))
