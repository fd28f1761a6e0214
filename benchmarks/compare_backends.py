"""Eager vs ONNX Runtime vs OpenVINO forward on a model thread, alone and while decode threads run.

    pip install onnxruntime onnx   # only for this comparison; the service needs neither
    OMP_WAIT_POLICY=PASSIVE ROUNDS=4 CALLS=3 .venv/bin/python -m benchmarks.compare_backends

In-server conditions: the forward runs on one model thread (2 intra-op threads) while ``DECODE_THREADS``
threads decode and preprocess the bundled 1024 x 1024 sample with ``DECODE_TORCH_THREADS`` torch threads each
(0: whatever the last ``torch.set_num_threads`` left, the old behaviour). Backends and loads are interleaved per
round; each cell is the best per-image time. ``ONLY=ort,ov_fp32`` picks backends.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

from app.backends.openvino_backend import LogitsAndFeatures, shared_core
from models.imaging.decoder import DecodeLimits, decode_image
from models.labels import NIH_LABELS
from models.network import CheXNet, build_network
from models.preprocessing import PreprocessSpec, eval_tensor

SIZE = 224
Run = Callable[[torch.Tensor], Any]


def make_ort(model: CheXNet, folder: Path) -> Run:
    import onnxruntime as ort

    path = folder / "model.onnx"
    axes = {"images": {0: "n"}, "logits": {0: "n"}, "features": {0: "n"}}
    torch.onnx.export(
        LogitsAndFeatures(model), (torch.zeros(1, 3, SIZE, SIZE),), str(path), input_names=["images"],
        output_names=["logits", "features"], dynamic_axes=axes, dynamo=False,
    )  # fmt: skip
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = 2, 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return lambda x: session.run(None, {"images": x.numpy()})


def make_ov(model: CheXNet, precision: str) -> Run:
    import openvino as ov

    converted = ov.convert_model(
        LogitsAndFeatures(model), example_input=torch.zeros(1, 3, SIZE, SIZE), input=[(-1, 3, SIZE, SIZE)]
    )
    config = {"INFERENCE_NUM_THREADS": 2, "INFERENCE_PRECISION_HINT": precision, "PERFORMANCE_HINT": "LATENCY"}
    compiled = shared_core().compile_model(converted, "CPU", config)  # one Core per process: see shared_core
    request = compiled.create_infer_request()
    return lambda x: (lambda r: (r[compiled.output(0)], r[compiled.output(1)]))(request.infer({0: x.numpy()}))


def make_eager(model: CheXNet) -> Run:
    def run(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.inference_mode():
            features = model.forward_features(x.contiguous(memory_format=torch.channels_last))
            return model.forward_head(features), features

    return run


def report(line: str) -> None:
    print(line, flush=True)  # noqa: T201  (the script's output)


def main() -> None:
    rounds, calls = int(os.environ.get("ROUNDS", "3")), int(os.environ.get("CALLS", "4"))
    decode_threads, decode_torch = (
        int(os.environ.get("DECODE_THREADS", "2")),
        int(os.environ.get("DECODE_TORCH_THREADS", "1")),
    )
    torch.manual_seed(0)
    model = build_network("none", len(NIH_LABELS)).eval()
    reference = build_network("none", len(NIH_LABELS)).eval()
    reference.load_state_dict(model.state_dict())
    cl_model = build_network("none", len(NIH_LABELS)).eval().to(memory_format=torch.channels_last)
    cl_model.load_state_dict(model.state_dict())
    folder = Path(tempfile.mkdtemp())
    makers: dict[str, Callable[[], Run]] = {
        "eager_cl": lambda: make_eager(cl_model),
        "ort": lambda: make_ort(model, folder),
        "ov_fp32": lambda: make_ov(model, "f32"),
        "ov_bf16": lambda: make_ov(model, "bf16"),
    }
    only = os.environ.get("ONLY")
    chosen = {k: v for k, v in makers.items() if not only or k in only.split(",")}
    pool = ThreadPoolExecutor(1, initializer=torch.set_num_threads, initargs=(2,))
    runs = {name: pool.submit(make).result() for name, make in chosen.items()}
    batch = torch.randn(8, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        expected = torch.sigmoid(reference(batch))
    for name, run in runs.items():
        logits = torch.as_tensor(np.asarray(pool.submit(run, batch).result()[0]))
        report(f"{name}: max |prob - eager fp32| = {float((torch.sigmoid(logits) - expected).abs().max()):.2g}")
    data = (Path(__file__).resolve().parents[1] / "models/bundled/sample-xray.png").read_bytes()
    spec, stop = PreprocessSpec(), threading.Event()

    def decode_loop() -> None:
        if decode_torch:
            torch.set_num_threads(decode_torch)
        while not stop.is_set():
            eval_tensor(spec, decode_image(data, DecodeLimits()).gray)

    def timed(run: Run, x: torch.Tensor) -> float:
        start = time.perf_counter()
        run(x)
        return time.perf_counter() - start

    best: dict[tuple[str, int, str], float] = {}
    for _ in range(rounds):
        for load in ("idle", "decode"):
            threads = [threading.Thread(target=decode_loop) for _ in range(decode_threads if load == "decode" else 0)]
            stop.clear()
            for thread in threads:
                thread.start()
            for name, run in runs.items():
                for size in (1, 8):
                    x = torch.randn(size, 3, SIZE, SIZE)
                    pool.submit(run, x).result()
                    seconds = min(pool.submit(timed, run, x).result() / size for _ in range(calls))
                    best[(name, size, load)] = min(seconds, best.get((name, size, load), float("inf")))
            stop.set()
            for thread in threads:
                thread.join()
    report(
        f"ms per image, best of {rounds} rounds x {calls} calls; {decode_threads} decode threads, torch {decode_torch}"
    )
    report("| backend | batch 1 | batch 8 | batch 1 + decode | batch 8 + decode |\n|---|---:|---:|---:|---:|")
    for name in runs:
        cells = " | ".join(f"{1000 * best[(name, b, load)]:.1f}" for load in ("idle", "decode") for b in (1, 8))
        report(f"| {name} | {cells} |")


if __name__ == "__main__":
    main()
