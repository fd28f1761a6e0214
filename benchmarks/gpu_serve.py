"""The GPU benchmark's two subprocess sections: ``chexnet serve`` under 64 clients, and ``chexnet train``.

/predict: one server (bf16 on CUDA), loaded by several load processes (``benchmarks.loadgen.record_load``), all
warmed up first, then measured together; throughput and latency come from the window in which every process
was measuring. The server's CPU time, and its /metrics (batch sizes, time in forward passes) read before and
after, say where the time went: a model thread busy most of the window means GPU-bound; a model thread mostly
idle while the server's CPUs are busy means decode- or HTTP-bound.
"""

from __future__ import annotations

import json
import logging
import math
import multiprocessing
import os
import subprocess
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import torch

from app.inference.threads import available_cores
from benchmarks.loadgen import SAMPLE_IMAGE, LoadRecord, LoadSpec, percentile, record_load
from benchmarks.processes import chexnet_command, process_cpu_s, running_server
from models.checkpoint import Checkpoint, save_checkpoint
from models.labels import NIH_LABELS
from models.network import build_network
from models.preprocessing import PreprocessSpec
from tests.training.synthetic import make_square_dataset

if TYPE_CHECKING:
    from benchmarks.gpu_bench import GpuBenchConfig

logger = logging.getLogger("benchmarks")
REPO = Path(__file__).resolve().parents[1]
METRICS = ("chexnet_batch_size_sum", "chexnet_batch_size_count", "chexnet_batch_seconds_sum")


def write_checkpoint(path: Path, image_size: int) -> Path:
    torch.manual_seed(0)
    spec = PreprocessSpec.for_image_size(image_size)
    provenance = {"data": {"images": "none (random weights)"}, "command": "benchmarks/gpu_bench.py"}
    return save_checkpoint(
        Checkpoint(
            state_dict=build_network("none", len(NIH_LABELS)).state_dict(),
            labels=NIH_LABELS,
            spec=spec,
            provenance=provenance,
        ),
        path,
    )


def read_metrics(url: str) -> dict[str, float]:
    """The batch counters from the server's /metrics (Prometheus text)."""
    text = httpx.get(f"{url}/metrics", timeout=30, trust_env=False).text
    values = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in METRICS:
            values[name] = float(value)
    return values


def split_clients(clients: int, processes: int) -> list[int]:
    """``clients`` spread over at most ``processes`` load processes, as evenly as possible (none empty)."""
    processes = max(1, min(processes, clients))
    return [clients // processes + (1 if i < clients % processes else 0) for i in range(processes)]


def combine(records: list[LoadRecord]) -> dict[str, Any]:
    """req/s and latency over the window in which every load process was measuring; totals over all phases."""
    start, end = max(r.started for r in records), min(r.ended for r in records)
    window = end - start
    in_window = sorted(
        latency * 1000.0
        for record in records
        for latency, at in zip(record.latencies_s, record.answered_at, strict=True)
        if start <= at <= end
    )
    errors: dict[str, int] = {}
    for record in records:
        for kind, count in record.errors.items():
            errors[kind] = errors.get(kind, 0) + count
    return {
        "window_s": window,
        "requests_in_window": len(in_window),
        "req_per_s": len(in_window) / window if window > 0 else math.nan,
        "p50_ms": percentile(in_window, 50),
        "p99_ms": percentile(in_window, 99),
        "requests": sum(len(r.latencies_s) for r in records),
        "errors": sum(errors.values()),
        "error_kinds": errors,
        "loadgen_cpu_s": sum(r.cpu_s for r in records),
    }


def _load(pool: Any, url: str, specs: list[LoadSpec], image: bytes) -> list[LoadRecord]:
    records: list[LoadRecord] = pool.starmap(record_load, [(url, spec, image) for spec in specs])
    return records


def bench_predict(config: GpuBenchConfig, device: torch.device, work: Path) -> dict[str, Any]:
    """/predict at ``config.clients`` clients over ``config.load_processes`` processes, after a warm-up."""
    checkpoint = write_checkpoint(work / f"gpu-bench-{config.image_size}.pt", config.image_size)
    image = SAMPLE_IMAGE.read_bytes()
    precision = "bf16" if device.type == "cuda" else "fp32"
    env = {**dict(config.server_env), "CHEXNET_PRECISION": precision}
    shares = split_clients(config.clients, config.load_processes)
    measured = [LoadSpec("/predict", n, 10**9, config.load_seconds) for n in shares]
    warmups = [
        replace(spec, requests=max(n, config.load_warmup_requests // len(shares)))
        for spec, n in zip(measured, shares, strict=True)
    ]
    with running_server("ours", checkpoint, work / "server.log", 600.0, device.type, env) as server:
        card = httpx.get(f"{server.url}/model", timeout=30, trust_env=False).json()
        with multiprocessing.get_context("spawn").Pool(len(shares)) as pool:
            _load(pool, server.url, warmups, image)  # untimed: connections, allocator, the decode threads
            before, cpu_before, t_before = read_metrics(server.url), process_cpu_s(server.process.pid), time.time()
            records = _load(pool, server.url, measured, image)
            cpu_after, t_after = process_cpu_s(server.process.pid), time.time()
            after = read_metrics(server.url)
    combined = combine(records)
    span = t_after - t_before
    batches = after["chexnet_batch_size_count"] - before["chexnet_batch_size_count"]
    return {
        **combined,
        "clients": config.clients,
        "load_processes": len(shares),
        "server_env": env,
        "served_with": {key: card[key] for key in ("backend", "precision", "device")},
        "server_startup_s": server.startup_s,
        "server_cpu_ms_per_request": (cpu_after - cpu_before) * 1000.0 / max(combined["requests"], 1),
        "server_cores_busy": (cpu_after - cpu_before) / span,
        "loadgen_cores_busy": combined["loadgen_cpu_s"] / span,
        "batches": batches,
        "mean_batch": (after["chexnet_batch_size_sum"] - before["chexnet_batch_size_sum"]) / max(batches, 1),
        "model_busy_share": (after["chexnet_batch_seconds_sum"] - before["chexnet_batch_seconds_sum"]) / span,
    }


def bench_train_cli(config: GpuBenchConfig, device: torch.device, work: Path) -> dict[str, Any]:
    """``chexnet train`` on a synthetic set (random weights); images/s of each epoch from its metrics.json."""
    images, labels = make_square_dataset(work / "train-data", config.train_images, side=config.train_side)
    out = work / "train-run"
    workers = min(config.train_workers, available_cores())
    options = {
        "--images": images, "--labels": labels, "--out": out, "--epochs": config.train_epochs,
        "--batch-size": config.train_batch, "--image-size": config.image_size, "--weights": "none",
        "--workers": workers, "--device": device.type, "--scheduler": "cosine",
    }  # fmt: skip
    argv = [*chexnet_command(), "train", *(str(part) for pair in options.items() for part in pair)]
    start = time.perf_counter()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"chexnet train failed ({done.returncode}):\n{done.stderr[-3000:]}")
    epochs = json.loads((out / "metrics.json").read_text())["epochs"]
    return {
        "command": ["chexnet", *argv[len(chexnet_command()) :]],
        "amp": "autocast float16 + GradScaler (chexnet train's default on CUDA)" if device.type == "cuda" else "off",
        "images": config.train_images,
        "workers": workers,
        "wall_s": time.perf_counter() - start,
        "epochs": [{k: e[k] for k in ("epoch", "train_loss", "train_images_per_s")} for e in epochs],
        "images_per_s_last_epoch": epochs[-1]["train_images_per_s"],
    }
