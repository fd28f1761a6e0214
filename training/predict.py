"""``chexnet predict``: image files or folders -> CSV of ``Image Index`` + 14 probabilities."""

from __future__ import annotations

import csv
import logging
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from models.checkpoint import load_checkpoint
from models.labels import PATHOLOGIES
from training.dataset import XrayDataset

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}


def collect_images(paths: Iterable[Path]) -> list[Path]:
    """Files as given; folders expanded to their PNG/JPEG files (sorted, not recursive)."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()))
        elif path.is_file():
            found.append(path)
        else:
            raise FileNotFoundError(f"no such file or folder: {path}")
    if not found:
        raise FileNotFoundError("no PNG or JPEG images found in the given paths")
    return found


@torch.no_grad()
def predict_files(
    checkpoint_path: Path, images: Sequence[Path], batch_size: int, workers: int, device: torch.device
) -> np.ndarray:
    """(N, 14) probabilities for ``images`` in order, through the checkpoint's own preprocessing."""
    checkpoint = load_checkpoint(checkpoint_path)
    model = checkpoint.build_model().to(device)
    dataset = XrayDataset(images, np.zeros((len(images), len(PATHOLOGIES))), checkpoint.spec, train=False)
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers)
    parts = [
        torch.sigmoid(model(batch.to(device)).float()).cpu()
        for batch, _, _ in tqdm(loader, desc="predict", unit="batch", disable=not sys.stderr.isatty())
    ]
    return torch.cat(parts).numpy()


def write_predictions_csv(images: Sequence[Path], probs: np.ndarray, out: Path | None) -> None:
    """``Image Index`` (the file name) + one column per pathology, 6 decimals; stdout when ``out`` is None."""
    handle = open(out, "w", newline="") if out else sys.stdout  # noqa: SIM115
    try:
        writer = csv.writer(handle)
        writer.writerow(["Image Index", *PATHOLOGIES])
        for path, row in zip(images, probs, strict=True):
            writer.writerow([path.name, *(f"{p:.6f}" for p in row)])
    finally:
        if out:
            handle.close()
