"""Server subprocesses for the benchmark: start on a free loopback port, wait until ready, read memory, kill."""

from __future__ import annotations

import asyncio
import importlib.util
import logging
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

logger = logging.getLogger("benchmarks")
REPO = Path(__file__).resolve().parents[1]
CHEXNET = Path(sys.executable).with_name("chexnet")
LOG_TAIL_CHARS = 3000


@dataclass
class RunningServer:
    name: str
    process: subprocess.Popen[bytes]
    url: str
    startup_s: float


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def chexnet_command() -> list[str]:
    """The ``chexnet`` console script beside this Python, or the module itself where the package is not installed."""
    return [str(CHEXNET)] if CHEXNET.exists() else [sys.executable, "-m", "chexnet_cli"]


def server_command(kind: str, checkpoint: Path, port: int, device: str = "cpu") -> tuple[list[str], str]:
    """(argv, readiness path) for ``ours`` (``chexnet serve``) or ``seed`` (benchmarks.seed_server)."""
    if kind == "ours":
        serve = ["serve", "--checkpoint", str(checkpoint), "--port", str(port), "--device", device]
        return [*chexnet_command(), *serve], "/readyz"
    if kind == "seed":
        argv = [sys.executable, "-m", "benchmarks.seed_server", "--checkpoint", str(checkpoint), "--port", str(port)]
        return argv, "/healthz"
    raise ValueError(f"unknown server kind {kind!r}")


def backend_environment(environ: dict[str, str], openvino_present: bool) -> dict[str, str]:
    """``environ``, with CHEXNET_BACKEND=torch where OpenVINO is not installed (else the server could not start).

    ``make bench`` asks for openvino, and ``auto`` may mean openvino on the CPU; a machine without the package
    (a GPU machine with its own Python, say) still gets a run, of eager torch, with a warning saying so.
    """
    if openvino_present or environ.get("CHEXNET_BACKEND", "auto") == "torch":
        return environ
    logger.warning("openvino is not installed here: the benchmark serves with CHEXNET_BACKEND=torch")
    return {**environ, "CHEXNET_BACKEND": "torch"}


@contextmanager
def running_server(
    kind: str,
    checkpoint: Path,
    log_path: Path,
    timeout_s: float = 180.0,
    device: str = "cpu",
    extra_env: dict[str, str] | None = None,
) -> Iterator[RunningServer]:
    """Start one server (127.0.0.1 only), yield it once ready, and always kill it on the way out."""
    port = free_port()
    argv, ready_path = server_command(kind, checkpoint, port, device)
    # Same environment for both servers: no thread pinning, so each runs as a default deployment would.
    env = {**os.environ, "CHEXNET_HOST": "127.0.0.1", "CHEXNET_LOG_LEVEL": "WARNING", "PYTHONPATH": str(REPO)}
    env = backend_environment({**env, **(extra_env or {})}, importlib.util.find_spec("openvino") is not None)
    url = f"http://127.0.0.1:{port}"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(argv, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            start = time.monotonic()
            _wait_ready(process, url + ready_path, start + timeout_s, log_path)
            yield RunningServer(kind, process, url, time.monotonic() - start)
        finally:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=15)


def _log_tail(log_path: Path) -> str:
    try:
        return log_path.read_text(errors="replace")[-LOG_TAIL_CHARS:]
    except OSError:
        return "(no log)"


def _wait_ready(process: subprocess.Popen[bytes], url: str, deadline: float, log_path: Path) -> None:
    while time.monotonic() < deadline:
        if process.poll() is not None:
            # the log's tail in the message: the log itself lives in a temporary folder that is about to go
            raise RuntimeError(
                f"server exited during start-up (code {process.returncode}); its log ends:\n{_log_tail(log_path)}"
            )
        try:
            if httpx.get(url, timeout=2, trust_env=False).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"server not ready in time; its log ends:\n{_log_tail(log_path)}")


def proc_status(pid: int) -> dict[str, float]:
    """Resident memory now and at its peak (MiB) and the thread count, from /proc/PID/status."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.split()
    return {
        "rss_mib": int(fields["VmRSS"][0]) / 1024,
        "hwm_mib": int(fields["VmHWM"][0]) / 1024,
        "threads": float(fields["Threads"][0]),
    }


class StatusSampler:
    """Samples /proc/PID/status every ``interval_s`` on the running event loop; keeps the maxima."""

    def __init__(self, pid: int, interval_s: float = 0.25) -> None:
        self.pid, self.interval_s = pid, interval_s
        self.max_rss_mib, self.max_threads = 0.0, 0.0
        self._task: asyncio.Task[None] | None = None

    def sample(self) -> None:
        status = proc_status(self.pid)
        self.max_rss_mib = max(self.max_rss_mib, status["rss_mib"])
        self.max_threads = max(self.max_threads, status["threads"])

    async def _loop(self) -> None:
        while True:  # cancelled by stop(); each pass sleeps, so it never spins
            try:
                self.sample()
            except (FileNotFoundError, ProcessLookupError):
                return
            await asyncio.sleep(self.interval_s)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds a process has used (fields 14 and 15 of /proc/PID/stat)."""
    after_name = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(after_name[11]) + int(after_name[12])) / CLOCK_TICKS


def system_busy_s() -> float:
    """CPU seconds all CPUs have spent not idle since boot (first line of /proc/stat)."""
    user, nice, system, _idle, _iowait, irq, softirq, steal = (
        int(v) for v in Path("/proc/stat").read_text().split()[1:9]
    )
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS


@dataclass
class CpuWindow:
    """CPU time used by the server, by this process (the load generator) and by everything else in a window."""

    server_pid: int
    start: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def _read(self) -> tuple[float, float, float]:
        return process_cpu_s(self.server_pid), process_cpu_s(os.getpid()), system_busy_s()

    def __post_init__(self) -> None:
        self.start = self._read()

    def close(self, elapsed_s: float, requests: int) -> dict[str, float]:
        server, client, busy = (b - a for a, b in zip(self.start, self._read(), strict=True))
        cpus = len(os.sched_getaffinity(0))
        return {
            "server_cpu_ms_per_request": server * 1000 / requests if requests else float("nan"),
            "loadgen_cpu_share": client / (elapsed_s * cpus) if elapsed_s > 0 else float("nan"),
            "other_cpu_share": max(0.0, busy - server - client) / (elapsed_s * cpus) if elapsed_s > 0 else float("nan"),
        }
