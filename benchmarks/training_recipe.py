"""Training throughput of each recipe option: images/s of ``train_one_epoch`` (loader, forward, backward, step).

    make bench-training
    OMP_WAIT_POLICY=PASSIVE .venv/bin/python -m benchmarks.training_recipe [--image-size 224] [--steps 3]

Synthetic 256 px grayscale PNGs, random DenseNet-121 weights, batch 8, 0 loader workers (so augmentation cost
shows), CPU.  Each variant: one untimed step, then ``--steps`` timed steps through the real loop
(:func:`training.loop.epochs.train_one_epoch` with the run's optimizer, step recipe and weight average).  Prints
a table and writes ``benchmarks/results/training-recipe-<date>.json``.  On a shared machine the figures move with
the neighbours' load: compare variants of one run, not runs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader

from models.labels import NIH_LABELS
from models.network import CheXNet
from models.preprocessing import PreprocessSpec
from training.data.dataset import EpochSampler, XrayDataset, collate_or_failure
from training.loop.config import TrainConfig
from training.loop.distributed import DistContext
from training.loop.ema import WeightAverage
from training.loop.epochs import train_one_epoch
from training.loop.optimizers import make_optimizer
from training.loop.step_recipe import StepRecipe

logger = logging.getLogger(__name__)

VARIANTS: dict[str, dict[str, Any]] = {
    "seed (adam, fp32, seed augment)": {},
    "--optimizer adamw --weight-decay 0.05": {"optimizer": "adamw", "weight_decay": 0.05},
    "--ema 0.999": {"ema": 0.999},
    "--augment cxr": {"augment": "cxr"},
    "--precision bf16": {"precision": "bf16"},
    "--channels-last": {"channels_last": True},
    "--precision bf16 --channels-last": {"precision": "bf16", "channels_last": True},
}
BATCH = 8


def write_images(folder: Path, count: int) -> list[Path]:
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        path = folder / f"{i:03d}.png"
        Image.fromarray(rng.integers(0, 256, (256, 256), dtype=np.uint8), "L").save(path)
        paths.append(path)
    return paths


def images_per_second(config: TrainConfig, paths: list[Path], steps: int) -> float:
    """``steps`` timed training steps of ``config``'s recipe after one untimed step."""
    torch.manual_seed(0)
    device = torch.device("cpu")
    spec = PreprocessSpec.for_image_size(config.image_size)
    model: nn.Module = CheXNet(len(NIH_LABELS))  # the seed recipe's 14 NIH labels
    recipe = StepRecipe.for_device(device, config.precision, config.channels_last)
    if recipe.channels_last:
        model = model.to(memory_format=torch.channels_last)
    recipe = replace(recipe, average=WeightAverage(model, config.ema) if config.ema is not None else None)
    optimizer = make_optimizer(config, model)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    rate = 0.0
    for count in (BATCH, BATCH * steps):
        dataset = XrayDataset(paths[:count], np.zeros((count, len(NIH_LABELS))), spec, True, 0, augment=config.augment)
        loader = DataLoader(dataset, BATCH, sampler=EpochSampler(count, True), collate_fn=collate_or_failure)
        stats = train_one_epoch(model, loader, nn.BCEWithLogitsLoss(), optimizer, scaler, device, 0, DistContext(),
                                recipe)  # fmt: skip
        rate = stats.images_per_second
    return rate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--steps", type=int, default=3, help="timed steps of batch 8 per variant")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory() as folder:
        paths = write_images(Path(folder), BATCH * args.steps)
        base = TrainConfig(images=Path(folder), labels=Path("none"), out=Path("none"), image_size=args.image_size)
        for name, options in VARIANTS.items():
            rate = images_per_second(replace(base, **options), paths, args.steps)
            results.append({"variant": name, "images_per_s": round(rate, 2)})
            print(f"{name:<40} {rate:6.2f} images/s", flush=True)  # noqa: T201
    seed_rate = results[0]["images_per_s"]
    for entry in results:
        entry["vs_seed"] = round(entry["images_per_s"] / seed_rate, 2) if seed_rate else None
    report = {
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "image_size": args.image_size,
        "batch": BATCH,
        "timed_steps": args.steps,
        "torch_threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "results": results,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"training-recipe-{dt.date.today().isoformat()}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written {out}")  # noqa: T201
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
