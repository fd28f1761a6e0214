"""In-process measurements of the GPU path: model-only img/s, half-precision deviation, decode rate, train steps.

Every CUDA timing synchronises the device before reading the clock; every shape runs untimed first (cuDNN
autotunes it and the allocator grows). On the CPU the same functions run, for ``gpu_bench --quick``.
"""

from __future__ import annotations

import copy
import functools
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch
from torch import nn

from app.backends.torch_backend import TorchBackend
from app.inference.decode import prepare_image
from app.inference.threads import DECODE_TORCH_THREADS
from models.imaging.decoder import DecodeLimits
from models.network import CheXNet
from models.preprocessing import PreprocessSpec


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def gpu_info(device: torch.device) -> dict[str, Any]:
    """The GPU's name, memory and compute capability, CUDA and cuDNN versions, and nvidia-smi's line if any."""
    if device.type != "cuda":
        return {"device": str(device)}
    props = torch.cuda.get_device_properties(device)
    info: dict[str, Any] = {
        "device": str(device),
        "name": props.name,
        "memory_gib": round(props.total_memory / 2**30, 1),
        "capability": f"{props.major}.{props.minor}",
        "multiprocessors": props.multi_processor_count,
        "torch_cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(),  # type: ignore[no-untyped-call]
    }
    try:
        query = ["nvidia-smi", "--query-gpu=name,driver_version,memory.total,power.limit", "--format=csv,noheader"]
        info["nvidia_smi"] = subprocess.run(
            query, capture_output=True, text=True, timeout=20, check=True
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        info["nvidia_smi"] = None
    return info


def timed_rate(step: Any, device: torch.device, warmup: int, min_calls: int, seconds: float) -> tuple[int, float]:
    """(calls, seconds) of ``step()`` after ``warmup`` untimed calls: at least ``min_calls``, about ``seconds``."""
    for _ in range(warmup):
        step()
    synchronize(device)
    calls, start = 0, time.perf_counter()
    while calls < min_calls or time.perf_counter() - start < seconds:
        step()
        calls += 1
    synchronize(device)  # kernels queued by the loop finish inside the timed window
    return calls, time.perf_counter() - start


def precision_backend(model: CheXNet, device: torch.device, precision: str) -> TorchBackend:
    """The service's backend for ``precision``; ``tf32`` is fp32 with TF32 allowed (what the service turns off)."""
    backend = TorchBackend(copy.deepcopy(model), device, "fp32" if precision == "tf32" else precision)
    allow = precision == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = allow
    return backend


def forward_rates(
    model: CheXNet,
    device: torch.device,
    precisions: tuple[str, ...],
    batches: tuple[int, ...],
    image_size: int,
    timing: tuple[int, int, float],
) -> list[dict[str, Any]]:
    """Model-only img/s of the service's backend, input already on the device; ``timing`` (warmup, calls, s)."""
    rows = []
    for precision in precisions:
        backend = precision_backend(model, device, precision)
        for batch in batches:
            row: dict[str, Any] = {"precision": precision, "batch": batch}
            try:
                images = torch.randn(batch, 3, image_size, image_size, device=device)
                calls, seconds = timed_rate(functools.partial(backend.run, images), device, *timing)
                row.update(calls=calls, batch_ms=seconds / calls * 1000, img_per_s=batch * calls / seconds)
            except torch.cuda.OutOfMemoryError:
                row.update(error="out of GPU memory")
            rows.append(row)
        del backend
        if device.type == "cuda":
            torch.cuda.empty_cache()
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    return rows


def prepared_batch(images: list[Path], spec: PreprocessSpec) -> torch.Tensor:
    """(N, 3, S, S): the files decoded and preprocessed as the service does."""
    limits = DecodeLimits()
    return torch.stack([prepare_image(path.read_bytes(), spec, limits).tensor for path in images])


def deviations(
    model: CheXNet, device: torch.device, precisions: tuple[str, ...], images: torch.Tensor
) -> dict[str, dict[str, float]]:
    """Max and mean |probability difference| of each precision on ``device`` from fp32 there and from CPU eager."""
    with torch.inference_mode():
        cpu_reference = torch.sigmoid(copy.deepcopy(model).eval()(images))
    probs = {p: torch.sigmoid(precision_backend(model, device, p).run(images)[0]).cpu() for p in precisions}
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    return {
        precision: {
            "max_abs_vs_fp32_same_device": float((value - probs["fp32"]).abs().max()),
            "mean_abs_vs_fp32_same_device": float((value - probs["fp32"]).abs().mean()),
            "max_abs_vs_cpu_eager_fp32": float((value - cpu_reference).abs().max()),
        }
        for precision, value in probs.items()
    }


def decode_rates(
    data: bytes, spec: PreprocessSpec, thread_counts: tuple[int, ...], seconds: float
) -> list[dict[str, Any]]:
    """img/s of decode + preprocess (the service's ``prepare_image``) by threads, each with one torch thread."""
    limits = DecodeLimits()
    prepare_image(data, spec, limits)  # first-call costs out of the timing
    rows = []
    for threads in thread_counts:
        counts = [0] * threads
        stop = threading.Event()

        def work(slot: int, counts: list[int] = counts, stop: threading.Event = stop) -> None:
            torch.set_num_threads(DECODE_TORCH_THREADS)
            while not stop.is_set():
                prepare_image(data, spec, limits)
                counts[slot] += 1

        with ThreadPoolExecutor(max_workers=threads) as pool:
            start = time.perf_counter()
            futures = [pool.submit(work, slot) for slot in range(threads)]
            time.sleep(seconds)
            stop.set()
            for future in futures:
                future.result()
            elapsed = time.perf_counter() - start
        rows.append({"threads": threads, "images": sum(counts), "img_per_s": sum(counts) / elapsed})
    return rows


def train_step_rates(
    model: CheXNet, device: torch.device, batches: tuple[int, ...], image_size: int, timing: tuple[int, int, float]
) -> list[dict[str, Any]]:
    """img/s of one training step as ``chexnet train`` takes it (AMP and channels_last on CUDA), data on the device."""
    cuda = device.type == "cuda"
    net = copy.deepcopy(model).to(device).train()
    if cuda:
        net = net.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-4)
    scaler = torch.amp.GradScaler(device.type, enabled=cuda)
    criterion = nn.BCEWithLogitsLoss()
    rows = []
    for batch in batches:
        images = torch.randn(batch, 3, image_size, image_size, device=device)
        images = images.contiguous(memory_format=torch.channels_last) if cuda else images
        targets = torch.randint(0, 2, (batch, 14), device=device).float()

        def step(images: torch.Tensor = images, targets: torch.Tensor = targets) -> None:
            with torch.autocast(device.type, enabled=cuda):
                loss = criterion(net(images), targets)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()

        row: dict[str, Any] = {"batch": batch}
        try:
            calls, seconds = timed_rate(step, device, *timing)
            row.update(calls=calls, step_ms=seconds / calls * 1000, img_per_s=batch * calls / seconds)
        except torch.cuda.OutOfMemoryError:
            row.update(error="out of GPU memory")
        rows.append(row)
    return rows
