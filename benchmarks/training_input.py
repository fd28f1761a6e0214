"""Training input: the DataLoader's images/s at 224 px against the in-memory forward+backward rate, in one run.

    make bench-training-input
    OMP_WAIT_POLICY=PASSIVE .venv/bin/python -m benchmarks.training_input [--images DIR ...] [--quick]

For each image folder: the train DataLoader (batch 16, the train transform, ``collate_or_failure``) at 0, 1 and 2
workers, without a cache and with a warm ``--image-cache``; the first (cold) cache epoch at 0 workers; the
stages of one image.  Then DenseNet-121 forward+backward at 224 px, batch 16, on random tensors (no loader).
Files are read from the page cache after the first pass, so the figures measure the CPU work, not the disk.
Each measurement also records the CPU time its processes used and the share of the machine other processes
took: on a shared machine, CPU ms per image is the steadier figure.  Writes ``training-input-<date>.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import hashlib
import json
import math
import os
import shlex
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from benchmarks.processes import process_cpu_s, system_busy_s
from benchmarks.report import machine_info, versions
from models.imaging.decoder import decode_image, read_image_bytes
from models.labels import NIH_LABELS
from models.network import build_network
from models.preprocessing import PreprocessSpec, resized_gray, train_tensor
from training.data.dataset import EpochSampler, XrayDataset, checked, collate_or_failure
from training.data.image_cache import ResizedImageCache

REPO = Path(__file__).resolve().parents[1]
DEFAULT_FOLDERS = (REPO.parent / "shared/data/nih-sample/fullres", REPO.parent / "shared/data/nih-sample/images")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".dcm"}
# Assumed, not measured here: DenseNet-121 training at 224 px with AMP on one H200 runs at thousands of img/s.
GPU_RATES = (2000.0, 4000.0)


@dataclass(frozen=True)
class Settings:
    items: int = 160  # images per loader epoch (a folder's files repeated when it has fewer)
    batch_size: int = 16
    epochs: int = 3  # the first warms up (worker start, page cache); the best of the others is kept
    model_batch: int = 16
    model_steps: int = 3  # after one warm-up step
    image_size: int = 224


QUICK = Settings(items=16, epochs=2, model_batch=2, model_steps=1)


@contextmanager
def cpu_window(record: dict[str, Any], images: int) -> Iterator[None]:
    """Wall time, CPU of this process and its children (DataLoader workers), other processes' share of the CPUs."""

    start_ours, start_busy, start = cpu_by_pid(), system_busy_s(), time.perf_counter()
    yield
    elapsed = time.perf_counter() - start
    end_ours = cpu_by_pid()
    used = sum(cpu - start_ours.get(pid, 0.0) for pid, cpu in end_ours.items())  # workers started inside: from 0
    busy = system_busy_s() - start_busy
    record.update(
        images=images,
        seconds=elapsed,
        images_per_s=images / elapsed,
        cpu_ms_per_image=used * 1000 / images,
        others_cpu_share=max(0.0, busy - used) / (elapsed * len(os.sched_getaffinity(0))),
    )


def cpu_by_pid() -> dict[int, float]:
    """CPU seconds of this process and of each child it has now (DataLoader workers)."""
    pids = [os.getpid()]
    for task in Path("/proc/self/task").iterdir():
        with suppress(FileNotFoundError, ProcessLookupError):  # a thread that ended since the listing
            pids += [int(pid) for pid in (task / "children").read_text().split()]
    found = {}
    for pid in pids:
        with suppress(FileNotFoundError, ProcessLookupError):
            found[pid] = process_cpu_s(pid)
    return found


def image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def make_loader(
    paths: list[Path], spec: PreprocessSpec, workers: int, cache: ResizedImageCache | None, batch: int
) -> DataLoader[Any]:
    dataset = XrayDataset(paths, np.zeros((len(paths), 14), np.float32), spec, train=True, cache=cache)
    sampler = EpochSampler(len(dataset), shuffle=True)
    return DataLoader(
        dataset,
        batch_size=batch,
        sampler=sampler,
        num_workers=workers,
        collate_fn=collate_or_failure,
        persistent_workers=workers > 0,
    )


def loader_rate(
    paths: list[Path], spec: PreprocessSpec, workers: int, cache: ResizedImageCache | None, settings: Settings
) -> dict[str, Any]:
    """The best epoch after the first (which starts the workers): images/s and CPU ms per image."""
    loader = make_loader(paths, spec, workers, cache, settings.batch_size)
    epochs = []
    for epoch in range(settings.epochs):
        loader.sampler.set_epoch(epoch)  # type: ignore[attr-defined]
        record: dict[str, Any] = {}
        with cpu_window(record, len(paths)):
            for batch in loader:
                checked(batch)
        epochs.append(record)
    del loader
    gc.collect()  # the persistent workers exit here, not during the next measurement
    best = max(epochs[1:], key=lambda r: r["images_per_s"])
    return {"workers": workers, **best, "epochs_images_per_s": [r["images_per_s"] for r in epochs[1:]]}


def cold_rate(files: list[Path], spec: PreprocessSpec, settings: Settings, root: Path) -> dict[str, Any]:
    """The first cached epoch at 0 workers: decode, resize and store each distinct file (a fresh cache each pass)."""
    record: dict[str, Any] = {}
    passes = max(1, math.ceil(settings.items / len(files)))
    caches = [ResizedImageCache(root / f"cold-{i}", spec) for i in range(passes)]
    with cpu_window(record, passes * len(files)):
        for cache in caches:
            for _ in make_loader(files, spec, 0, cache, settings.batch_size):
                pass
    return {"workers": 0, **record}


def best_ms(fn: Callable[[], object], repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times) * 1000


def stages_ms(path: Path, spec: PreprocessSpec, cache: ResizedImageCache) -> dict[str, float]:
    """One image's steps, best of 5, one thread; ``cache_hit`` is read + hash + checked entry read."""
    data = read_image_bytes(path)
    gray = decode_image(data).gray
    resized = resized_gray(spec, gray)
    cache.resized_gray(path)
    generator = torch.Generator().manual_seed(0)
    return {
        "read_file": best_ms(lambda: read_image_bytes(path)),
        "sha256": best_ms(lambda: hashlib.sha256(data).digest()),
        "decode": best_ms(lambda: decode_image(data)),
        "resize": best_ms(lambda: resized_gray(spec, gray)),
        "crop_flip_normalise": best_ms(lambda: train_tensor(spec, resized, generator)),
        "cache_hit": best_ms(lambda: cache.resized_gray(path)),
    }


def bench_folder(folder: Path, spec: PreprocessSpec, settings: Settings, root: Path) -> dict[str, Any]:
    files = image_files(folder)
    if not files:
        raise SystemExit(f"no images in {folder}")
    paths = (files * math.ceil(settings.items / len(files)))[: settings.items]
    cache = ResizedImageCache(root / "warm", spec)
    for path in files:
        cache.resized_gray(path)
    rows = []
    for workers in (0, 1, 2):  # without and with the cache side by side, so both see the same neighbours
        plain = loader_rate(paths, spec, workers, None, settings)
        warm = loader_rate(paths, spec, workers, cache, settings)
        rows.append(
            {
                "workers": workers,
                "plain": plain,
                "warm_cache": warm,
                "warm_over_plain": warm["images_per_s"] / plain["images_per_s"],
            }
        )
    size = decode_image(files[0]).gray.shape
    entries = list(cache.folder.glob("*/*.f32"))
    return {
        "folder": os.path.relpath(folder, REPO),
        "files": len(files),
        "items_per_epoch": len(paths),
        "first_image_size": list(size),
        "png_bytes_mean": float(np.mean([p.stat().st_size for p in files])),
        "cache_entry_bytes": entries[0].stat().st_size if entries else None,
        "loader": rows,
        "cold_cache": cold_rate(files, spec, settings, root),
        "stages_ms": stages_ms(files[0], spec, cache),
    }


def train_step_rate(settings: Settings) -> dict[str, Any]:
    """DenseNet-121 forward + backward (BCE on logits) on random tensors, no loader: the best of the steps."""
    torch.manual_seed(0)
    model = build_network("none", len(NIH_LABELS)).train()
    criterion = nn.BCEWithLogitsLoss()
    images = torch.randn(settings.model_batch, 3, settings.image_size, settings.image_size)
    targets = torch.randint(0, 2, (settings.model_batch, 14)).float()

    def step() -> None:
        model.zero_grad(set_to_none=True)
        criterion(model(images), targets).backward()

    step()
    records = []
    for _ in range(settings.model_steps):
        record: dict[str, Any] = {}
        with cpu_window(record, settings.model_batch):
            step()
        records.append(record)
    best = max(records, key=lambda r: r["images_per_s"])
    return {
        "batch": settings.model_batch,
        "image_size": settings.image_size,
        "torch_threads": torch.get_num_threads(),
        **best,
        "steps_images_per_s": [r["images_per_s"] for r in records],
    }


def gpu_estimate(sets: dict[str, Any], gpu_rates: tuple[float, ...]) -> list[dict[str, Any]]:
    """Cores needed to feed an assumed GPU rate: the rate x CPU ms per image with 2 workers, which counts what a
    GPU run pays (the workers' decoding and the main process receiving their batches)."""
    rows = []
    for name, result in sets.items():
        row = result["loader"][-1]
        plain, warm = row["plain"]["cpu_ms_per_image"], row["warm_cache"]["cpu_ms_per_image"]
        for rate in gpu_rates:
            rows.append(
                {
                    "set": name,
                    "basis_workers": row["workers"],
                    "gpu_images_per_s": rate,
                    "per_core_plain": 1000 / plain,
                    "per_core_warm_cache": 1000 / warm,
                    "cores_plain": rate * plain / 1000,
                    "cores_warm_cache": rate * warm / 1000,
                }
            )
    return rows


def run(folders: list[Path], settings: Settings, out_dir: Path, gpu_rates: tuple[float, ...]) -> dict[str, Any]:
    started = dt.datetime.now(dt.UTC)
    spec = PreprocessSpec.for_image_size(settings.image_size)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # loader figures per core: workers run one thread each, and so does 0 workers here
    with tempfile.TemporaryDirectory(prefix="chexnet-input-") as tmp:
        sets = {folder.name: bench_folder(folder, spec, settings, Path(tmp) / folder.name) for folder in folders}
    torch.set_num_threads(threads)
    model = train_step_rate(settings)
    for result in sets.values():
        for row in result["loader"]:
            for key in ("plain", "warm_cache"):
                row[key]["over_train_step"] = row[key]["images_per_s"] / model["images_per_s"]
    results: dict[str, Any] = {
        "meta": {
            "created_utc": started.isoformat(timespec="seconds"),
            "command": shlex.join(getattr(sys, "orig_argv", sys.argv)),
            "duration_s": (dt.datetime.now(dt.UTC) - started).total_seconds(),
            "settings": asdict(settings),
            "spec": spec.to_dict(),
            "machine": machine_info(),
            "versions": versions(),
            "loadavg_end": Path("/proc/loadavg").read_text().split()[:3],
        },
        "sets": sets,
        "train_step": model,
        "gpu_estimate": {"assumed_gpu_images_per_s": list(gpu_rates), "rows": gpu_estimate(sets, gpu_rates)},
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"training-input-{started.strftime('%Y-%m-%dT%H%M%SZ')}.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    results["meta"]["path"] = str(path)
    return results


def table_lines(results: dict[str, Any]) -> list[str]:
    """The figures as text: the train step, then per folder a row per worker count, then the GPU estimate."""
    model = results["train_step"]
    lines = [
        f"forward+backward, batch {model['batch']} at {model['image_size']} px, {model['torch_threads']} threads: "
        f"{model['images_per_s']:.2f} img/s (others used {100 * model['others_cpu_share']:.0f} % of the CPUs)"
    ]
    for name, result in results["sets"].items():
        size = "x".join(str(s) for s in result["first_image_size"])
        lines += [
            f"\n{name}: {result['files']} files ({size}), {result['items_per_epoch']} images an epoch",
            "workers | plain img/s | cached img/s | cached/plain | plain/train step | CPU ms/img plain / cached",
        ]
        for row in result["loader"]:
            plain, warm = row["plain"], row["warm_cache"]
            lines.append(
                f"{row['workers']} | {plain['images_per_s']:.1f} | {warm['images_per_s']:.1f} | "
                f"{row['warm_over_plain']:.1f} | {plain['over_train_step']:.1f} | "
                f"{plain['cpu_ms_per_image']:.2f} / {warm['cpu_ms_per_image']:.2f}"
            )
        lines.append(f"first cached epoch (0 workers): {result['cold_cache']['images_per_s']:.1f} img/s")
        lines.append("stages ms: " + ", ".join(f"{k} {v:.2f}" for k, v in result["stages_ms"].items()))
    lines.append("")
    for row in results["gpu_estimate"]["rows"]:
        lines.append(
            f"{row['set']}: {row['gpu_images_per_s']:.0f} img/s needs {row['cores_plain']:.1f} cores decoding "
            f"({row['per_core_plain']:.0f} img/s a core), {row['cores_warm_cache']:.1f} with a warm cache "
            f"({row['per_core_warm_cache']:.0f} img/s a core)"
        )
    return [*lines, f"\nwrote {results['meta']['path']}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--images",
        type=Path,
        action="append",
        help="image folder (repeatable); default: ../shared/data/nih-sample/fullres (1024 px) and "
        "../shared/data/nih-sample/images (256 px)",
    )
    parser.add_argument("--quick", action="store_true", help="tiny counts: a smoke test, not a measurement")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--gpu-rate", type=float, action="append", help="assumed GPU img/s for the estimate")
    args = parser.parse_args()
    folders = args.images or [folder for folder in DEFAULT_FOLDERS if folder.is_dir()]
    if not folders:
        parser.error("no image folder: pass --images DIR")
    results = run(folders, QUICK if args.quick else Settings(), args.out, tuple(args.gpu_rate or GPU_RATES))
    print("\n".join(table_lines(results)))  # noqa: T201


if __name__ == "__main__":
    main()
