"""Run inside a network namespace with only loopback up (see test_ray_engine.py): a two-node local Ray cluster,
``chexnet predict --engine ray`` against it, and the worker node killed once the first batch is written.

Usage: python ray_two_nodes.py CHECKPOINT IMAGES OUT; prints one JSON line (driver status, parts at the kill)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from ray.cluster_utils import Cluster

STORE = 80 * 1024 * 1024  # the smallest object store Ray accepts is 75 MiB


def main(checkpoint: str, images: str, out: str) -> None:
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "object_store_memory": STORE})
    worker = cluster.add_node(num_cpus=2, object_store_memory=STORE)
    cluster.wait_for_nodes()
    command = [sys.executable, "-m", "chexnet_cli", "predict", "--engine", "ray", "--address", cluster.address,
               "--checkpoint", checkpoint, "--batch-size", "1", "--actors", "2", "--device", "cpu", "-r", "--out", out,
               images]  # fmt: skip
    driver = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    parts_at_kill = -1
    deadline = time.monotonic() + 120
    while driver.poll() is None and time.monotonic() < deadline:
        parts = len([p for p in Path(out).glob("part-*.parquet")]) if Path(out).is_dir() else 0
        if parts >= 1 and parts_at_kill < 0:
            cluster.remove_node(worker)
            parts_at_kill = parts
        time.sleep(0.05)
    if driver.poll() is None:
        driver.kill()
    stderr = driver.communicate()[1]
    cluster.shutdown()
    print(json.dumps({"status": driver.returncode, "parts_at_kill": parts_at_kill, "stderr_tail": stderr[-2000:]}))


if __name__ == "__main__":
    os.environ.setdefault("RAY_DISABLE_USAGE_STATS", "1")
    main(*sys.argv[1:4])
