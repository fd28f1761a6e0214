"""A tiny synthetic task: a bright square means Effusion; a bright bar of the same area means No Finding."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image


def make_square_dataset(root: Path, n: int, side: int = 64, seed: int = 0) -> tuple[Path, Path]:
    """``n`` grayscale PNGs + an NIH-format CSV; one image per patient; every other image is positive."""
    rng = np.random.default_rng(seed)
    images = root / "images"
    images.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        pixels = rng.normal(90, 20, (side, side)).clip(0, 255)
        positive = i % 2 == 0
        # positives: a bright square; negatives: a bright bar of the same area (so brightness alone does not tell)
        height, width = (side // 4, side // 4) if positive else (side // 10, side * 5 // 8)
        top = rng.integers(1, side - height - 1)
        left = rng.integers(1, side - width - 1)
        pixels[top : top + height, left : left + width] = 240
        name = f"{i:08d}_000.png"
        Image.fromarray(pixels.astype(np.uint8), "L").save(images / name)
        rows.append([name, "Effusion" if positive else "No Finding", 0, i, 50, "M", "PA", side, side, 0.14, 0.14])
    labels = root / "labels.csv"
    with open(labels, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["Image Index", "Finding Labels", "Follow-up #", "Patient ID", "Patient Age", "Patient Gender",
             "View Position", "OriginalImage[Width", "Height]", "OriginalImagePixelSpacing[x", "y]"]
        )  # fmt: skip
        writer.writerows(rows)
    return images, labels
