"""Draw ``docs/augment-cxr.png``: one augmented batch of ``--augment cxr`` beside the plain centre crops.

    .venv/bin/python docs/augment_picture.py [--images ../shared/data/nih-sample/images] [--out docs/augment-cxr.png]

Top row: the eval transform (centre crop) of eight X-rays; bottom row: the same images as epoch 0 of a run with
``--seed 0 --augment cxr`` draws them (the dataset's per-sample generator), at 224 px.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from models.preprocessing import PreprocessSpec, denormalise, eval_tensor
from training.data.dataset import XrayDataset, load_gray

SIDE, COUNT, GAP = 224, 8, 4


def to_tile(spec: PreprocessSpec, tensor: torch.Tensor) -> Image.Image:
    gray = denormalise(spec, tensor).clamp(0, 1).numpy()
    return Image.fromarray(np.round(gray * 255).astype(np.uint8), "L")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, default=Path("../shared/data/nih-sample/images"))
    parser.add_argument("--out", type=Path, default=Path("docs/augment-cxr.png"))
    args = parser.parse_args()
    paths = sorted(args.images.glob("*.png"))[:COUNT]
    spec = PreprocessSpec.for_image_size(SIDE)
    dataset = XrayDataset(paths, np.zeros((len(paths), 14)), spec, train=True, seed=0, augment="cxr")
    sheet = Image.new("L", (COUNT * (SIDE + GAP) - GAP, 2 * SIDE + GAP), 255)
    for i, path in enumerate(paths):
        item = dataset[i]
        if not isinstance(item, tuple):
            raise SystemExit(f"cannot read {path.name}")
        sheet.paste(to_tile(spec, eval_tensor(spec, load_gray(path))), (i * (SIDE + GAP), 0))
        sheet.paste(to_tile(spec, item[0]), (i * (SIDE + GAP), SIDE + GAP))
    sheet.save(args.out, optimize=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
