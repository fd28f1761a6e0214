"""Images on disk -> tensors through the shared decoder and preprocessing, with seeded per-sample augmentation.

A file that fails to decode does not raise inside a DataLoader worker (torch would re-raise it as a long
traceback that names no file): the item becomes a :class:`DecodeFailure`, :func:`collate_or_failure` passes it
through in place of the batch, and :func:`checked` raises :class:`UnreadableImageError` in the main process,
with the path and reason in one line.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler, default_collate

from models.imaging.decoder import decode_image
from models.imaging.errors import InputError
from models.preprocessing import PreprocessSpec, eval_tensor
from training.data.augment import train_transform
from training.data.image_cache import ResizedImageCache

T = TypeVar("T")


@dataclass(frozen=True)
class DecodeFailure:
    """Item ``index`` (file ``path``) could not be decoded: the decoder's error ``code`` and ``message``."""

    index: int
    path: str
    code: str
    message: str


class UnreadableImageError(RuntimeError):
    """An image failed to decode while a loop ran; ``str()`` is "<path>: <reason>"."""

    def __init__(self, failure: DecodeFailure) -> None:
        self.failure = failure
        super().__init__(f"{failure.path}: {failure.message}")


def collate_or_failure(items: list[Any]) -> Any:
    """``default_collate``, or the first :class:`DecodeFailure` among ``items`` in place of the batch."""
    failure = next((item for item in items if isinstance(item, DecodeFailure)), None)
    return failure if failure is not None else default_collate(items)


def collate_readable(items: list[Any]) -> tuple[Any, torch.Tensor, list[DecodeFailure]]:
    """(the readable items collated, or None; their indices; the failures) for ``(input, index)`` items."""
    failures = [item for item in items if isinstance(item, DecodeFailure)]
    good = [item for item in items if not isinstance(item, DecodeFailure)]
    if not good:
        return None, torch.empty(0, dtype=torch.long), failures
    inputs, indices = default_collate(good)
    return inputs, indices, failures


def checked(batch: T | DecodeFailure) -> T:
    """The batch itself; raises :class:`UnreadableImageError` when a worker passed a failure instead."""
    if isinstance(batch, DecodeFailure):
        raise UnreadableImageError(batch)
    return batch


def load_gray(path: Path) -> np.ndarray:
    """An image file -> (H, W) float32 in [0, 1] through the shared decoder, exactly as the service decodes it.

    Raises :class:`models.imaging.errors.InputError` (a typed, coded error) for a file that cannot be used.
    """
    return decode_image(path).gray


class XrayDataset(Dataset[tuple[torch.Tensor, torch.Tensor, int] | DecodeFailure]):
    """Item i -> ((3, S, S) input, (K,) targets in {1, 0, NaN}, i), or a :class:`DecodeFailure` for an unreadable file.

    Augmentation is a function of (seed, epoch, i) only, so a run is reproducible whatever the worker count, and
    a resumed run repeats an uninterrupted one.  With a ``cache``, images come already resized from it; the items
    are identical (see :mod:`training.data.image_cache`).
    """

    def __init__(
        self,
        paths: Sequence[Path],
        targets: np.ndarray,
        spec: PreprocessSpec,
        train: bool,
        seed: int = 0,
        cache: ResizedImageCache | None = None,
        augment: str = "seed",
    ) -> None:
        self.paths = list(paths)
        self.transform = train_transform(augment)  # --augment: seed (crop + flip) or cxr (training/data/augment.py)
        self.targets = torch.as_tensor(np.asarray(targets, dtype=np.float32))
        self.spec, self.train, self.seed, self.epoch, self.cache = spec, train, seed, 0, cache

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, int] | DecodeFailure:
        try:
            path = self.paths[index]
            gray = load_gray(path) if self.cache is None else self.cache.resized_gray(path)
        except InputError as error:
            return DecodeFailure(index, str(self.paths[index]), error.code, error.message)
        if self.train:
            seed = int(np.random.SeedSequence([self.seed, self.epoch, index]).generate_state(1)[0])
            tensor = self.transform(self.spec, gray, torch.Generator().manual_seed(seed))
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
