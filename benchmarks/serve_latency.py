"""Latency and memory of a running ``chexnet serve`` (CPU or GPU): p50/p90 over N sequential requests.

    .venv/bin/python benchmarks/serve_latency.py [--requests 50] [--image models/bundled/sample-xray.png]

Starts the server on a free loopback port with the bundled demo model (or --checkpoint), waits for /readyz,
then times /predict and /gradcam one request at a time, and reads the server's resident memory from /proc.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 120) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if process.poll() is not None:
            raise SystemExit("server exited during start-up")
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return time.monotonic() - start
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise SystemExit("server not ready in time")


def memory_mib(pid: int) -> dict[str, float]:
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return {key: int(fields[key].split()[0]) / 1024 for key in ("VmRSS", "VmHWM")}


def time_route(client: httpx.Client, path: str, data: bytes, n: int) -> dict[str, float]:
    seconds = []
    for _ in range(n):
        start = time.perf_counter()
        response = client.post(path, files={"file": ("x.png", data, "image/png")})
        seconds.append(time.perf_counter() - start)
        response.raise_for_status()
    ms = sorted(s * 1000 for s in seconds)
    return {"p50_ms": statistics.median(ms), "p90_ms": ms[int(0.9 * (n - 1))], "mean_ms": statistics.fmean(ms)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--image", type=Path, default=REPO / "models" / "bundled" / "sample-xray.png")
    parser.add_argument("--checkpoint", type=Path)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    port = free_port()
    command = [str(Path(sys.executable).with_name("chexnet")), "serve", "--port", str(port), "--device", args.device]
    if args.checkpoint:
        command += ["--checkpoint", str(args.checkpoint)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ))
    url = f"http://127.0.0.1:{port}"
    try:
        startup = wait_ready(url, process)
        data = args.image.read_bytes()
        with httpx.Client(base_url=url, timeout=120) as client:
            for path in ("/predict", "/gradcam"):  # one untimed call each
                client.post(path, files={"file": ("x.png", data, "image/png")}).raise_for_status()
            result = {
                "image": args.image.name,
                "requests": args.requests,
                "startup_to_ready_s": round(startup, 1),
                "predict": time_route(client, "/predict", data, args.requests),
                "gradcam": time_route(client, "/gradcam", data, args.requests),
                "server_memory_mib": memory_mib(process.pid),
            }
    finally:
        process.terminate()
        process.wait(timeout=60)
    print(json.dumps(result, indent=2))  # noqa: T201


if __name__ == "__main__":
    main()
