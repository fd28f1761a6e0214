"""Rolling restart behind a real proxy: three ``chexnet serve`` replicas on 127.0.0.1 behind Debian's nginx, under
bounded closed-loop load, each restarted with SIGTERM and back (/readyz 200) before the next goes. Zero failed
requests, and every answer equal to one replica's.

Opt-in (``make rolling-test`` sets RUN_DEPLOY_TESTS=rolling); skips where nginx is not installed.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import pytest

from tests.conftest import FIXTURES
from tests.deployment.engine import opted_in, record_figures
from tests.deployment.files import ROOT
from tests.server_process import free_port, serve_command

if not opted_in("rolling"):
    pytest.skip("the rolling restart runs with make rolling-test (RUN_DEPLOY_TESTS=rolling)", allow_module_level=True)
NGINX = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")
if NGINX is None:
    pytest.skip("no nginx (apt-get install nginx-light)", allow_module_level=True)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

REPLICAS = 3
CLIENTS = 4
MAX_REQUESTS = 2000  # the load is bounded whatever happens
REPLICA_ENV = {
    "CHEXNET_DEVICE": "cpu",
    "CHEXNET_BACKEND": "torch",  # the reference backend: answers comparable across replicas exactly
    "CHEXNET_INTRA_OP_THREADS": "1",
    "CHEXNET_DRAIN_SECONDS": "20",
    "OMP_NUM_THREADS": "1",
}
TEMPLATE = ROOT / "deploy" / "nginx" / "chexnet-upstream.conf"


class Replica:
    """One ``chexnet serve`` process on a fixed port, restartable."""

    def __init__(self, checkpoint: Path, port: int) -> None:
        self.checkpoint, self.port = checkpoint, port
        self.url = f"http://127.0.0.1:{port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 300) -> None:
        args = ["--host", "127.0.0.1", "--port", str(self.port), "--checkpoint", str(self.checkpoint)]
        self.process = subprocess.Popen(
            serve_command(*args),
            env={k: v for k, v in os.environ.items() if not k.startswith("CHEXNET_")} | REPLICA_ENV,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while True:
            assert self.process.poll() is None, f"replica on {self.port} exited with {self.process.returncode}"
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"replica on {self.port} not ready in {timeout} s"
            time.sleep(0.1)

    def terminate(self, timeout: float = 30) -> int:
        """SIGTERM, then the exit status once it has drained."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


@contextmanager
def nginx_in_front(replicas: list[Replica], folder: Path) -> Iterator[str]:
    port = free_port()
    upstreams = "\n".join(f"    server 127.0.0.1:{r.port} max_fails=1 fail_timeout=2s;" for r in replicas)
    site = TEMPLATE.read_text().replace("@UPSTREAMS@", upstreams).replace("@LISTEN@", f"127.0.0.1:{port}")
    (folder / "site.conf").write_text(site)
    temp = {name: folder / name for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi")}
    config = folder / "nginx.conf"
    config.write_text(
        f"worker_processes 1;\ndaemon off;\npid {folder / 'nginx.pid'};\nerror_log {folder / 'error.log'} warn;\n"
        "events { worker_connections 256; }\n"
        "http {\n  access_log off;\n"
        + "".join(f"  {name}_temp_path {path};\n" for name, path in temp.items()).replace(
            "body_temp", "client_body_temp"
        )
        + f"  include {folder / 'site.conf'};\n}}\n"
    )
    process = subprocess.Popen(
        [str(NGINX), "-p", str(folder), "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, f"nginx exited: {process.stderr.read() if process.stderr else b''!r}"
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "nginx did not answer"
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


class ClosedLoop:
    """CLIENTS threads, each sending the next /predict when its last one is answered, until stopped or bounded."""

    def __init__(self, url: str, xray: bytes) -> None:
        self.url, self.xray = url, xray
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.statuses: Counter[int | str] = Counter()
        self.answers: list[dict[str, float]] = []
        self.upstreams: Counter[str] = Counter()
        self.threads = [threading.Thread(target=self.client, daemon=True) for _ in range(CLIENTS)]

    def client(self) -> None:
        with httpx.Client(timeout=120) as session:
            while not self.stop.is_set():
                with self.lock:
                    if sum(self.statuses.values()) >= MAX_REQUESTS:
                        return
                try:
                    response = session.post(f"{self.url}/predict", files={"file": ("x.png", self.xray, "image/png")})
                    status: int | str = response.status_code
                except httpx.TransportError as exc:
                    status, response = type(exc).__name__, None
                with self.lock:
                    self.statuses[status] += 1
                    if status == 200 and response is not None:
                        self.answers.append(response.json()["probabilities"])
                        self.upstreams[response.headers["x-upstream"]] += 1

    def __enter__(self) -> ClosedLoop:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=150)

    def served(self) -> int:
        with self.lock:
            return sum(self.statuses.values())


def test_rolling_restart_of_three_replicas_fails_no_request(tiny_checkpoint: Path, tmp_path: Path) -> None:
    xray = (FIXTURES / "00000075_000.png").read_bytes()
    replicas = [Replica(tiny_checkpoint, free_port()) for _ in range(REPLICAS)]
    with ExitStack() as cleanup:
        for replica in replicas:
            cleanup.callback(replica.kill)
            replica.start()
        reference = httpx.post(f"{replicas[0].url}/predict", files={"file": ("x.png", xray, "image/png")}, timeout=60)
        assert reference.status_code == 200
        url = cleanup.enter_context(nginx_in_front(replicas, tmp_path))
        exits, back_after = [], []
        with ClosedLoop(url, xray) as load:
            for replica in replicas:
                before = load.served()
                while load.served() < before + 2 * CLIENTS:  # under load when the signal comes
                    time.sleep(0.01)
                exits.append(replica.terminate())
                started = time.monotonic()
                replica.start()
                back_after.append(time.monotonic() - started)
            before = load.served()
            while load.served() < before + 2 * CLIENTS:  # and after the last one is back
                time.sleep(0.01)
    assert exits == [-signal.SIGTERM] * REPLICAS  # uvicorn re-raises SIGTERM once drained (a container exits 0)
    assert set(load.statuses) == {200}, load.statuses
    expected = reference.json()["probabilities"]
    assert all(list(answer) == list(expected) for answer in load.answers)
    # Not bit-equal: a request batched with others (up to CLIENTS at once) goes through other kernels than alone.
    deviation = max(abs(answer[k] - expected[k]) for answer in load.answers for k in expected)
    assert deviation <= 1e-6
    assert {f"127.0.0.1:{r.port}" for r in replicas} <= set(load.upstreams)
    record_figures(
        rolling_restart={
            "requests": load.statuses[200],
            "failed": sum(n for status, n in load.statuses.items() if status != 200),
            "replica_back_seconds": [round(s, 1) for s in back_after],
            "max_probability_deviation": deviation,
        }
    )
