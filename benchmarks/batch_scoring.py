"""Batch scoring throughput (docs/scale-scoring.md): files/s for ``chexnet predict`` in 1 process, 2 shards at
once, and ``--engine ray`` on a two-node local cluster (inside a loopback-only network namespace), and where one
process's time goes (decode + preprocessing vs the model). Writes ``results/batch-scoring-<date>.json``.

    python -m benchmarks.batch_scoring [--files 64] [--side 1024] [--no-ray] [--device cpu|cuda] [--out DIR]

Every run includes the start of its processes (importing torch, loading the model), as a user's job does.
"""

from __future__ import annotations

import argparse
import datetime
import io
import json
import logging
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
logger = logging.getLogger(__name__)


def make_pngs(folder: Path, count: int, side: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (side, side), dtype=np.uint8), "L").save(buffer, "PNG")
        paths.append(folder / f"x{i:05d}.png")
        paths[-1].write_bytes(buffer.getvalue())
    return paths


def split_times(paths: list[Path], device: str, batch: int) -> dict[str, float]:
    """Seconds per file for decode + preprocessing and for the model, in this process."""
    import torch

    from models.bundled import DEMO_CHECKPOINT
    from models.checkpoint import load_checkpoint
    from models.preprocessing import eval_tensor
    from training.data.dataset import load_gray

    checkpoint = load_checkpoint(DEMO_CHECKPOINT)
    start = time.perf_counter()
    tensors = [eval_tensor(checkpoint.spec, load_gray(p)) for p in paths]
    decode = time.perf_counter() - start
    model = checkpoint.build_model().to(device).eval()
    x = torch.stack(tensors).to(device)
    with torch.inference_mode():
        model(x[:batch])
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for i in range(0, len(x), batch):
            torch.sigmoid(model(x[i : i + batch])).cpu()
        forward = time.perf_counter() - start
    return {"decode_s_per_file": decode / len(paths), "model_s_per_file": forward / len(paths)}


def chexnet(*args: str) -> list[str]:
    return [sys.executable, "-m", "chexnet_cli", "--log-level", "WARNING", "predict", *args]


def timed(commands: list[list[str]], env: dict[str, str]) -> float:
    start = time.perf_counter()
    running = [subprocess.Popen(c, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for c in commands]
    codes = [p.wait() for p in running]
    if any(codes):
        raise RuntimeError(f"a scoring process failed: {codes}")
    return time.perf_counter() - start


RAY_INSIDE = """
import subprocess, sys, time
from ray.cluster_utils import Cluster
cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "object_store_memory": 80 << 20})
cluster.add_node(num_cpus=1, object_store_memory=80 << 20)
cluster.wait_for_nodes()
start = time.perf_counter()
subprocess.run(sys.argv[1:] + ["--address", cluster.address], check=True, stdout=subprocess.DEVNULL,
               stderr=subprocess.DEVNULL)
print(time.perf_counter() - start)
cluster.shutdown()
"""


def ray_seconds(images: Path, out: Path, env: dict[str, str], device: str) -> float:
    command = [*chexnet("--engine", "ray", "--actors", "2", "--batch-size", "16", "--device", device, "--out",
                        str(out), str(images))]  # fmt: skip
    script = out.parent / "ray_inside.py"
    script.write_text(RAY_INSIDE)
    inner = " ".join(["ip link set lo up && exec", sys.executable, str(script), *command])
    done = subprocess.run(["unshare", "-rn", "sh", "-c", inner], env=env, capture_output=True, text=True, check=True)
    return float(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=64)
    parser.add_argument("--side", type=int, default=1024, help="PNG side in pixels")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-ray", action="store_true")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(REPO), "RAY_DISABLE_USAGE_STATS": "1"}
    work = Path(tempfile.mkdtemp(prefix="batch-scoring-"))
    try:
        images = work / "images"
        paths = make_pngs(images, args.files, args.side)
        command = shlex.join(["python", "-m", "benchmarks.batch_scoring", *sys.argv[1:]])  # no machine paths
        result: dict[str, object] = {"files": args.files, "side": args.side, "device": args.device,
                                     "cpus": os.cpu_count(), "command": command}  # fmt: skip
        result.update(split_times(paths[: min(32, len(paths))], args.device, 16))
        one = timed([chexnet("--resume", "--device", args.device, "--out", str(work / "one.csv"), str(images))], env)
        result["one_process_files_per_s"] = args.files / one
        shards = [chexnet("--shard", f"{k}/2", "--device", args.device, "--out", str(work / f"s{k}.csv"), str(images))
                  for k in (1, 2)]  # fmt: skip
        result["two_shards_files_per_s"] = args.files / timed(shards, env)
        if not args.no_ray and shutil.which("unshare"):
            try:
                result["ray_two_nodes_files_per_s"] = args.files / ray_seconds(
                    images, work / "r.parquet", env, args.device
                )
            except (subprocess.CalledProcessError, ValueError, IndexError) as exc:
                result["ray_two_nodes_files_per_s"] = {"error": type(exc).__name__}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    args.out.mkdir(parents=True, exist_ok=True)
    target = args.out / f"batch-scoring-{datetime.date.today().isoformat()}.json"
    target.write_text(json.dumps(result, indent=1) + "\n")
    logging.basicConfig(level="INFO")
    logger.info("%s", json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
