"""The benchmark suite: our service against a seed-style reference, on this machine, in one run.

    .venv/bin/python -m benchmarks.run_bench [--quick] [--out benchmarks/results]

Writes a 224 px random-weight checkpoint, then starts ``chexnet serve`` and ``benchmarks.seed_server`` on free
127.0.0.1 ports one after the other, and measures /predict at 1, 4 and 16 closed-loop clients and /gradcam at 2
on one server at a time, interleaved (see ``benchmarks.serving``): req/s, p50, p99, errors, server CPU per
request, ratio ours/seed; resident memory idle and under load. Ours is served three times side by side, at each CPU
precision: fp32 (the default), ``CHEXNET_PRECISION=bf16`` and ``int8`` (a model made by ``chexnet quantize`` from
the same checkpoint, calibrated on ``CALIBRATION_IMAGES`` of the NIH sample in ../shared/data when present, else
on the test fixtures). Then, with both stopped, in this process,
model-only forward img/s against the CPU's fp32 matmul rate, and the stages of one request. Writes
``bench-<date>.json`` and ``latest.md`` into ``--out``. ``--quick`` uses tiny counts (a smoke test, < 60 s).
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import logging
import shlex
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

import chexnet_cli
from benchmarks import inprocess
from benchmarks.loadgen import SAMPLE_IMAGE, LoadSpec
from benchmarks.report import machine_info, render_markdown, versions
from benchmarks.serving import bench_servers, compare_levels, precision_levels
from models.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from models.labels import NIH_LABELS
from models.network import build_network
from models.preprocessing import PreprocessSpec

logger = logging.getLogger("benchmarks")
REPO = Path(__file__).resolve().parents[1]
IMAGE_SIZE = 224
NIH_SAMPLE = REPO.parent / "shared" / "data" / "nih-sample" / "images"
FIXTURES = REPO / "tests" / "fixtures"


@dataclass(frozen=True)
class BenchConfig:
    """Every count and time bound of one run; ``quick`` is a smoke test, ``full`` the real measurement."""

    mode: str
    predict_clients: tuple[int, ...] = (1, 4, 16)
    predict_requests: int = 80
    gradcam_clients: int = 2
    gradcam_requests: int = 30
    level_seconds: float = 12.0
    warmup_seconds: float = 10.0
    rounds: int = 2  # each level on both servers per round, alternating which goes first
    matmul_n: int = 2048
    forward_batches: tuple[int, ...] = (1, 8)
    calls: int = 20  # per in-process measurement, bounded also by call_seconds
    call_seconds: float = 2.0
    repetitions: int = 2
    calibration_images: int = 100  # for the int8 model; NNCF's default subset is 300


FULL = BenchConfig(mode="full")
QUICK = BenchConfig(
    mode="quick",
    predict_requests=4,
    gradcam_requests=2,
    level_seconds=10.0,
    warmup_seconds=10.0,
    matmul_n=512,
    calls=2,
    call_seconds=1.0,
    repetitions=1,
    rounds=1,
    calibration_images=4,
)


def write_checkpoint(path: Path) -> Path:
    """A seeded random-weight DenseNet-121 at 224 px (the bundled demo model is 128 px)."""
    torch.manual_seed(0)
    spec = PreprocessSpec.for_image_size(IMAGE_SIZE)
    provenance = {"data": {"images": "none (random weights)"}, "command": "benchmarks/run_bench.py"}
    return save_checkpoint(
        Checkpoint(
            state_dict=build_network("none", len(NIH_LABELS)).state_dict(),
            labels=NIH_LABELS,
            spec=spec,
            provenance=provenance,
        ),
        path,
    )


def write_int8_model(checkpoint: Path, out: Path, config: BenchConfig) -> dict[str, Any]:
    """``chexnet quantize`` of ``checkpoint`` into ``out``, calibrated without labels (random weights: no AUROC to
    keep); returns what the benchmark records about it."""
    images = NIH_SAMPLE if NIH_SAMPLE.is_dir() else FIXTURES
    argv = ["quantize", "--checkpoint", str(checkpoint), "--images", str(images), "--out", str(out)]
    status = chexnet_cli.main([*argv, "--max-images", str(config.calibration_images), "--log-level", "WARNING"])
    if status != 0:
        raise RuntimeError(f"chexnet quantize exited {status}")
    return {"calibration_images": config.calibration_images, "from": images.relative_to(REPO.parent).as_posix()}


def precision_variants(int8_model: Path) -> dict[str, dict[str, str]]:
    """Ours at bf16 and int8, served beside ours at fp32 (the default)."""
    return {
        "ours-bf16": {"CHEXNET_PRECISION": "bf16"},
        "ours-int8": {"CHEXNET_PRECISION": "int8", "CHEXNET_INT8_MODEL": str(int8_model)},
    }


def load_levels(config: BenchConfig) -> list[LoadSpec]:
    """Each level warms up with one request per client, then runs at least one request per client."""
    levels = [("/predict", clients, config.predict_requests) for clients in config.predict_clients]
    levels.append(("/gradcam", config.gradcam_clients, config.gradcam_requests))
    return [
        LoadSpec(path, clients, max(requests, clients), config.level_seconds, clients, config.warmup_seconds)
        for path, clients, requests in levels
    ]


def bench_model(checkpoint: Path, config: BenchConfig) -> dict[str, Any]:
    """Model-only forward img/s (eager fp32, NCHW and channels_last) and its share of the matmul rate."""
    model = load_checkpoint(checkpoint).build_model()
    peak = inprocess.matmul_gflops(config.matmul_n, config.calls, config.call_seconds, config.repetitions)
    macs = inprocess.count_macs(model, IMAGE_SIZE)
    rows = inprocess.forward_throughput(
        model, IMAGE_SIZE, config.forward_batches, config.calls, config.call_seconds, config.repetitions
    )
    inprocess.add_peak_share(rows, 2.0 * macs, peak["gflops"])
    return {
        "torch_threads": torch.get_num_threads(),
        "peak_estimate": {**peak, "method": f"best fp32 torch.matmul {config.matmul_n}^2 x {config.matmul_n}^2"},
        "macs_per_image": macs,
        "torchvision_published_gmacs": inprocess.reference_macs(),
        "flops_per_image": 2.0 * macs,
        "rows": rows,
    }


def bench_stages(checkpoint: Path, config: BenchConfig, image: Path) -> dict[str, dict[str, float]]:
    loaded = load_checkpoint(checkpoint)
    model = loaded.build_model()
    args = (config.calls, config.call_seconds, config.repetitions)
    return {
        "ours": inprocess.our_stages(model, loaded.spec, image, *args),
        "seed": inprocess.seed_stages(model, loaded.spec.image_size, image, *args),
    }


def run(config: BenchConfig, out_dir: Path, image: Path = SAMPLE_IMAGE) -> Path:
    """The whole suite; returns the path of the JSON results file (``latest.md`` is written beside it)."""
    started = dt.datetime.now(dt.UTC)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = image.read_bytes()
    with tempfile.TemporaryDirectory(prefix="chexnet-bench-") as tmp:
        checkpoint = write_checkpoint(Path(tmp) / "bench-224.pt")
        int8: dict[str, Any] | None = None
        variants: dict[str, dict[str, str]] = {}
        if all(importlib.util.find_spec(name) is not None for name in ("openvino", "nncf")):
            logger.info("int8 model: chexnet quantize")
            int8 = write_int8_model(checkpoint, Path(tmp) / "bench-224-int8", config)
            variants = precision_variants(Path(tmp) / "bench-224-int8")
        else:
            logger.warning("openvino or nncf is not installed here: only fp32 is served (pip install -e '.[train]')")
        served = bench_servers(checkpoint, load_levels(config), config.rounds, data, Path(tmp), variants)
        logger.info("model-only forward")
        model = bench_model(checkpoint, config)
        logger.info("stages of one request")
        stages = bench_stages(checkpoint, config, image)
    results = {
        "meta": {
            "created_utc": started.isoformat(timespec="seconds"),
            "mode": config.mode,
            "command": shlex.join(getattr(sys, "orig_argv", sys.argv)),
            "duration_s": (dt.datetime.now(dt.UTC) - started).total_seconds(),
            "config": asdict(config),
            "machine": machine_info(),
            "versions": versions(),
            "image": {"file": image.name, "bytes": len(data), "size": list(inprocess.image_size(image))},
            "checkpoint": {"image_size": IMAGE_SIZE, "weights": "random, torch.manual_seed(0)"},
            "ours_served_with": served["ours_model"],
            "variants_served_with": served["served"],
            "int8_model": int8,
        },
        "load": compare_levels(served["servers"]),
        "precisions": precision_levels(served["servers"]),
        "servers": served["servers"],
        "parity": served["parity"],
        "model_forward": model,
        "stages_ms": stages,
    }
    path = out_dir / f"bench-{started.strftime('%Y-%m-%dT%H%M%SZ')}.json"
    path.write_text(json.dumps(results, indent=2, allow_nan=True) + "\n")
    (out_dir / "latest.md").write_text(render_markdown(results, path.name))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny counts, one repetition: a smoke test (< 60 s)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
    path = run(QUICK if args.quick else FULL, args.out)
    print(f"wrote {path} and {path.with_name('latest.md')}")  # noqa: T201


if __name__ == "__main__":
    main()
