"""The GPU path measured, in one run of a few minutes; ``benchmarks/gpu_check.sh`` runs it after the CUDA tests.

    python -m benchmarks.gpu_bench [--quick] [--out benchmarks/results]

Sections of ``gpu-<date>.json``: model-only img/s of the service's backend by batch size and precision (fp32,
fp32 with TF32, bf16, fp16; input already on the GPU); how far bf16 and fp16 move the probabilities of the
bundled (trained) demo model on real X-rays; decode + preprocess img/s of the 1024 px sample PNG on one thread
and on all cores; ``/predict`` end to end at 64 clients spread over several load processes (the server's CPU
per request, its mean batch and how busy its model thread was); ``chexnet train`` images/s at 224 px on
synthetic data (AMP on CUDA) and the train step alone; a reading of those against the targets. ``--quick`` runs
every section with tiny counts on whatever device there is: a dry run for the test suite, not a measurement.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import json
import logging
import math
import multiprocessing
import shlex
import signal
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import torch

from app.inference.threads import available_cores
from benchmarks import gpu_measure, gpu_serve
from benchmarks.loadgen import SAMPLE_IMAGE
from benchmarks.report import machine_info, versions
from models.bundled import DEMO_CHECKPOINT
from models.checkpoint import load_checkpoint
from models.labels import NIH_LABELS
from models.network import build_network
from models.preprocessing import PreprocessSpec

logger = logging.getLogger("benchmarks")
REPO = Path(__file__).resolve().parents[1]
REAL_XRAYS = [SAMPLE_IMAGE, *sorted((REPO / "tests" / "fixtures").glob("*.png"))]
MODEL_TARGET_IMG_S = 5000.0  # bf16, model only (H200, for the record)
PREDICT_TARGET_IMG_S = 1500.0  # /predict end to end on 1024 px PNGs


@dataclass(frozen=True)
class GpuBenchConfig:
    mode: str
    image_size: int = 224
    batches: tuple[int, ...] = (1, 8, 32, 128, 256)
    timing: tuple[int, int, float] = (2, 5, 1.0)  # untimed calls, at least this many timed calls, about seconds
    decode_seconds: float = 3.0
    clients: int = 64
    load_processes: int = 4
    load_seconds: float = 15.0
    load_warmup_requests: int = 256
    server_env: tuple[tuple[str, str], ...] = (
        ("CHEXNET_MAX_BATCH_SIZE", "64"),
        ("CHEXNET_QUEUE_SIZE", "256"),
        ("CHEXNET_UPLOAD_BACKLOG", "64"),  # every client admitted; the decode pool is then min(cores, 64)
    )
    train_images: int = 2048
    train_side: int = 256
    train_batch: int = 128
    train_epochs: int = 2
    train_workers: int = 8
    train_step_batches: tuple[int, ...] = (64, 128)


FULL = GpuBenchConfig(mode="full")
QUICK = GpuBenchConfig(
    mode="quick",
    image_size=32,
    batches=(1, 2),
    timing=(1, 1, 0.1),
    decode_seconds=0.3,
    clients=4,
    load_processes=1,
    load_seconds=2.0,
    load_warmup_requests=4,
    server_env=(("CHEXNET_MAX_BATCH_SIZE", "4"),),
    train_images=16,
    train_side=64,
    train_batch=8,
    train_epochs=1,
    train_workers=0,
    train_step_batches=(2,),
)


def precisions_for(device: torch.device) -> tuple[str, ...]:
    """All four on CUDA; fp32 and bf16 on the CPU (TF32 and fp16 are CUDA's)."""
    return ("fp32", "tf32", "bf16", "fp16") if device.type == "cuda" else ("fp32", "bf16")


class Sections:
    """The results file, rewritten after every section: a run stopped by a time limit keeps what it measured.

    A section that fails is recorded as ``{"error": ...}`` and the next one still runs (one lent GPU, one try).
    """

    def __init__(self, path: Path, meta: dict[str, Any]) -> None:
        self.path, self.results = path, {"meta": {**meta, "complete": False, "stage_seconds": {}}}
        self.failed: list[str] = []
        self._write()

    def _write(self) -> None:
        self.path.write_text(json.dumps(self.results, indent=2, allow_nan=True) + "\n")

    def measure(self, name: str, label: str, fn: Any, *args: Any) -> None:
        logger.info("%s ...", label)
        start = time.perf_counter()
        try:
            self.results[name] = fn(*args)
        except Exception as exc:  # recorded, and the run goes on to the next section
            logger.exception("%s failed", label)
            self.results[name] = {"error": f"{type(exc).__name__}: {exc}"[-4000:]}
            self.failed.append(name)
        self.results["meta"]["stage_seconds"][name] = seconds = round(time.perf_counter() - start, 1)
        logger.info("%s: %.1f s", label, seconds)
        self._write()

    def finish(self, **fields: Any) -> None:
        self.results["meta"].update(fields, complete=True, failed_sections=self.failed)
        self.results["reading"] = reading(self.results)
        self._write()


def best_rate(rows: list[dict[str, Any]], precision: str) -> float:
    return max((row.get("img_per_s", 0.0) for row in rows if row["precision"] == precision), default=0.0)


def reading(results: dict[str, Any]) -> dict[str, Any]:
    """The figures against the targets, and, when /predict falls short, what the measurements say limits it."""
    needed = ("model_forward", "decode", "predict")
    missing = [name for name in needed if not isinstance(results.get(name), list | dict) or "error" in results[name]]
    if missing:
        return {"text": f"no reading: {', '.join(missing)} failed (see their errors)"}
    model_best = best_rate(results["model_forward"], "bf16")
    per_core = results["decode"][0]["img_per_s"]
    predict = results["predict"]
    decode_cores = PREDICT_TARGET_IMG_S / per_core if per_core else math.nan
    out: dict[str, Any] = {
        "on_gpu": results["meta"]["device"].startswith("cuda"),
        "model_bf16_best_img_per_s": model_best,
        "model_target_img_per_s": MODEL_TARGET_IMG_S,
        "model_target_met": model_best >= MODEL_TARGET_IMG_S,
        "predict_img_per_s": predict["req_per_s"],
        "predict_target_img_per_s": PREDICT_TARGET_IMG_S,
        "predict_target_met": predict["req_per_s"] >= PREDICT_TARGET_IMG_S,
        "decode_img_per_s_one_core": per_core,
        "cores_to_decode_target": decode_cores,
        "server_cores_at_target": PREDICT_TARGET_IMG_S * predict["server_cpu_ms_per_request"] / 1000.0,
        "usable_cores": available_cores(),
    }
    out["text"] = (
        f"model only, bf16: {model_best:.0f} img/s (target {MODEL_TARGET_IMG_S:.0f}). /predict: "
        f"{predict['req_per_s']:.0f} img/s (target {PREDICT_TARGET_IMG_S:.0f}); the model thread was busy "
        f"{100 * predict['model_busy_share']:.0f}% of the window, mean batch {predict['mean_batch']:.1f}; the server "
        f"used {predict['server_cores_busy']:.1f} cores and the load generator {predict['loadgen_cores_busy']:.1f} "
        f"of {available_cores()}. Decode + preprocess of the 1024 px PNG runs at {per_core:.0f} img/s on one core, "
        f"so {PREDICT_TARGET_IMG_S:.0f} img/s needs {decode_cores:.1f} cores for decoding alone, and "
        f"{out['server_cores_at_target']:.1f} cores at this server's CPU per request."
    )
    return out


def describe_run(config: GpuBenchConfig, device: torch.device, tests: dict[str, Any]) -> dict[str, Any]:
    return {
        "created_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "mode": config.mode,
        "command": shlex.join(getattr(sys, "orig_argv", sys.argv)),
        "config": asdict(config),
        "device": str(device),
        "precisions": list(precisions_for(device)),
        "gpu": gpu_measure.gpu_info(device),
        "machine": machine_info(),
        "versions": {**versions(), "openvino": "installed" if find_spec("openvino") else "not installed"},
        "image": {"file": SAMPLE_IMAGE.name, "bytes": SAMPLE_IMAGE.stat().st_size},
        "deviation_images": [path.name for path in REAL_XRAYS],
        "weights": {"throughput": "random, torch.manual_seed(0)", "deviation": "bundled demo model (trained)"},
        "cuda_tests": tests,
    }


def run(config: GpuBenchConfig, out_dir: Path, tests: dict[str, Any] | None = None) -> tuple[Path, list[str]]:
    """Every section, in order: (the JSON results file, written after each section; the sections that failed)."""
    started = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if config.mode == "full" and device.type != "cuda":
        logger.warning("no CUDA device: these figures are the CPU's, not the GPU path's")
    meta = describe_run(config, device, tests or {})
    path = out_dir / f"gpu-{meta['created_utc'].replace(':', '').replace('+0000', 'Z')}.json"
    sections, precisions = Sections(path, meta), precisions_for(device)
    torch.manual_seed(0)
    random_model = build_network("none", len(NIH_LABELS)).eval()
    demo = load_checkpoint(DEMO_CHECKPOINT)
    spec = PreprocessSpec.for_image_size(config.image_size)
    sections.measure(
        "model_forward", "model-only forward", gpu_measure.forward_rates,
        random_model, device, precisions, config.batches, config.image_size, config.timing,
    )  # fmt: skip
    real = functools.partial(gpu_measure.prepared_batch, REAL_XRAYS, demo.spec)
    sections.measure(
        "deviation", "deviation", lambda: gpu_measure.deviations(demo.build_model(), device, precisions, real())
    )
    threads = tuple(sorted({1, available_cores()}))
    sample = SAMPLE_IMAGE.read_bytes()
    sections.measure("decode", "decode", gpu_measure.decode_rates, sample, spec, threads, config.decode_seconds)
    with tempfile.TemporaryDirectory(prefix="chexnet-gpu-bench-") as tmp:
        sections.measure("predict", "/predict end to end", gpu_serve.bench_predict, config, device, Path(tmp))
        sections.measure("train_cli", "chexnet train", gpu_serve.bench_train_cli, config, device, Path(tmp))
    sections.measure(
        "train_step", "train step", gpu_measure.train_step_rates,
        random_model, device, config.train_step_batches, config.image_size, config.timing,
    )  # fmt: skip
    sections.finish(duration_s=round(time.perf_counter() - started, 1))
    return path, sections.failed


def tests_outcome(log: Path | None, exit_code: int | None) -> dict[str, Any]:
    """What gpu_check.sh's pytest run reported: its exit code and last line."""
    if log is None:
        return {}
    lines = log.read_text(errors="replace").strip().splitlines() if log.exists() else []
    return {"exit_code": exit_code, "summary": lines[-1] if lines else "(no output)", "log": log.name}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny counts on any device: a dry run, not a measurement")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--clients", type=int, help="override the /predict clients (default 64)")
    parser.add_argument("--tests-log", type=Path, help="the CUDA tests' output, summarised into the results")
    parser.add_argument("--tests-exit-code", type=int, help="the CUDA tests' exit code")
    args = parser.parse_args()
    # SIGTERM (gpu_check.sh's time limit) as an exception, so the server and the load processes are stopped too
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    config = QUICK if args.quick else FULL
    if args.clients:
        config = replace(config, clients=args.clients)
    path, failed = run(config, args.out, tests_outcome(args.tests_log, args.tests_exit_code))
    print(f"wrote {path}")  # noqa: T201
    print(json.loads(path.read_text())["reading"]["text"])  # noqa: T201
    return 1 if failed else 0


if __name__ == "__main__":
    multiprocessing.set_start_method("spawn")  # load processes must not inherit CUDA state
    sys.exit(main())
