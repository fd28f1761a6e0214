"""Run ``chexnet serve`` as a real process on a free loopback port, for start-up, drain and end-to-end tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

CHEXNET = Path(sys.executable).with_name("chexnet")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    process: subprocess.Popen[str]
    url: str


def serve_command(*args: str) -> list[str]:
    return [str(CHEXNET), "serve", *args]


@contextmanager
def running_server(checkpoint: Path | None, timeout: float = 90.0, **env: str) -> Iterator[Server]:
    port = free_port()
    args = ["--port", str(port), *(["--checkpoint", str(checkpoint)] if checkpoint else [])]
    process = subprocess.Popen(
        serve_command(*args),
        env={**os.environ, "OMP_NUM_THREADS": "1", **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise AssertionError(f"server exited early: {process.stdout.read() if process.stdout else ''}")
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("server did not become ready in time")
            time.sleep(0.2)
        yield Server(process, url)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
