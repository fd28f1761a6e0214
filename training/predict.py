"""``chexnet predict``: image files or folders -> CSV of ``Image Index``, ``path`` + 14 probabilities.

Files are found by content, not by suffix (DICOM files often have none): a folder contributes every file whose
first bytes are PNG, JPEG or DICOM.  Each file goes through the shared decoder; a file that cannot be read is
reported with its reason and the others are still predicted.
"""

from __future__ import annotations

import csv
import logging
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from models.checkpoint import load_checkpoint
from models.imaging.decoder import SNIFF_BYTES, sniff_format
from models.imaging.errors import InputError
from models.preprocessing import PreprocessSpec, eval_tensor
from training.data.dataset import DecodeFailure, collate_readable, load_gray

logger = logging.getLogger(__name__)


@dataclass
class FoundImages:
    """The files to predict, in order; folder entries passed over (not images, not regular files); subfolders
    not searched; folders that could not be listed, with the reason."""

    paths: list[Path] = field(default_factory=list)
    skipped: int = 0
    subfolders: int = 0
    unlistable: list[tuple[Path, str]] = field(default_factory=list)


def is_image_candidate(path: Path) -> bool:
    """Whether a folder entry should be predicted: a regular file whose first bytes are PNG, JPEG or DICOM.

    A file that cannot be opened (no permission) or is empty is kept, so that predicting it names the file
    with the reason instead of passing over it without a word.
    """
    try:
        with path.open("rb") as handle:
            head = handle.read(SNIFF_BYTES)
    except OSError:
        return True
    if not head:
        return True
    try:
        sniff_format(head)
    except InputError:
        return False
    return True


def _add_folder(found: FoundImages, folder: Path, recursive: bool, visited: set[Path]) -> None:
    """Add ``folder``'s image files (sorted; hidden entries left out), and with ``recursive`` its subfolders'.

    A folder reached twice through symbolic links is searched once; one that cannot be listed is recorded.
    """
    real = folder.resolve()
    if real in visited:
        return
    visited.add(real)
    try:
        entries = sorted(folder.iterdir())
    except OSError as exc:
        reason = "permission denied" if isinstance(exc, PermissionError) else (exc.strerror or "I/O error")
        found.unlistable.append((folder, f"The folder cannot be listed: {reason}."))
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            if recursive:
                _add_folder(found, entry, recursive, visited)
            else:
                found.subfolders += 1
        elif entry.is_file() and is_image_candidate(entry):
            found.paths.append(entry)
        else:
            found.skipped += 1  # not an image, or not a regular file (a pipe, a dangling link)


def collect_images(paths: Iterable[Path], recursive: bool = False) -> FoundImages:
    """Files as given (each is checked when decoded, so a missing one is reported, not fatal); folders expanded
    to their image files, found by content; with ``recursive`` subfolders too (symbolic links are followed,
    each folder searched once).  Raises FileNotFoundError when nothing at all is found.
    """
    found = FoundImages()
    visited: set[Path] = set()
    for path in paths:
        if path.is_dir():
            _add_folder(found, path, recursive, visited)
        else:
            found.paths.append(path)
    if not found.paths and not found.unlistable:
        hint = f" ({found.subfolders} subfolders were not searched: use --recursive)" if found.subfolders else ""
        raise FileNotFoundError(f"no PNG, JPEG or DICOM images found in the given paths{hint}")
    return found


class _PredictImages(Dataset[tuple[torch.Tensor, int] | DecodeFailure]):
    """Item i -> ((3, S, S) eval input, i), or a DecodeFailure naming the file and the reason."""

    def __init__(self, paths: Sequence[Path], spec: PreprocessSpec) -> None:
        self.paths, self.spec = list(paths), spec

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int] | DecodeFailure:
        try:
            return eval_tensor(self.spec, load_gray(self.paths[index])), index
        except InputError as error:
            return DecodeFailure(index, str(self.paths[index]), error.code, error.message)


@dataclass(frozen=True)
class Predictions:
    """``probs`` (N, K) for ``paths`` (the readable files, in input order), K = ``labels`` (the model's);
    ``failures`` for the others."""

    paths: list[Path]
    probs: np.ndarray
    failures: list[DecodeFailure]
    labels: tuple[str, ...]


@torch.no_grad()
def predict_files(
    checkpoint_path: Path, images: Sequence[Path], batch_size: int, workers: int, device: torch.device
) -> Predictions:
    """Probabilities for every readable file of ``images``, through the checkpoint's own preprocessing."""
    checkpoint = load_checkpoint(checkpoint_path)
    model = checkpoint.build_model().to(device)
    loader = DataLoader(
        _PredictImages(images, checkpoint.spec),
        batch_size=batch_size,
        num_workers=workers,
        collate_fn=collate_readable,
    )
    probs = np.full((len(images), len(checkpoint.labels)), np.nan, dtype=np.float32)
    failures: list[DecodeFailure] = []
    for inputs, indices, failed in tqdm(loader, desc="predict", unit="batch", disable=not sys.stderr.isatty()):
        failures.extend(failed)
        if inputs is not None:
            probs[indices.numpy()] = torch.sigmoid(model(inputs.to(device)).float()).cpu().numpy()
    failed_at = {f.index for f in failures}
    keep = [i for i in range(len(images)) if i not in failed_at]
    failures = sorted(failures, key=lambda f: f.index)
    return Predictions([images[i] for i in keep], probs[keep], failures, checkpoint.labels)


def write_predictions_csv(images: Sequence[Path], probs: np.ndarray, out: Path | None, labels: tuple[str, ...]) -> None:
    """``Image Index`` (the file name, NIH's identifier), ``path`` (as given), one column per label; stdout when no
    ``out``."""
    handle = open(out, "w", newline="") if out else sys.stdout  # noqa: SIM115
    try:
        writer = csv.writer(handle)
        writer.writerow(["Image Index", "path", *labels])
        for path, row in zip(images, probs, strict=True):
            writer.writerow([path.name, str(path), *(f"{p:.6f}" for p in row)])
    finally:
        if out:
            handle.close()
