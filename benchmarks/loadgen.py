"""A closed-loop load generator on loopback: N clients, each posting the same image again as soon as answered.

    .venv/bin/python -m benchmarks.loadgen --url http://127.0.0.1:8000 --path /predict --clients 4 \
        [--requests 100] [--seconds 30] [--image models/bundled/sample-xray.png]

Bounded twice: it stops issuing requests after ``requests`` (shared by all clients) or ``seconds``, whichever
comes first; requests still in flight ``drain_seconds`` later are cancelled and counted as errors. Reports
completed requests per second, p50 and p99 latency and errors. Targets 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx

REPO = Path(__file__).resolve().parents[1]
SAMPLE_IMAGE = REPO / "models" / "bundled" / "sample-xray.png"


@dataclass(frozen=True)
class LoadSpec:
    """One load level: ``clients`` concurrent loops, at most ``requests`` in total and ``seconds`` of wall time."""

    path: str
    clients: int
    requests: int
    seconds: float
    warmup_requests: int = 0  # untimed, before the measured window (fills connection pools and caches)
    warmup_seconds: float = 15.0
    drain_seconds: float = 10.0  # after the deadline, how long answers to requests in flight are awaited
    request_timeout_s: float = 120.0


@dataclass
class LoadResult:
    path: str
    clients: int
    requests: int  # answered with 200 within the measured window
    errors: int  # non-200 answers, transport failures, requests cancelled after the deadline
    elapsed_s: float
    req_per_s: float
    p50_ms: float
    p99_ms: float
    mean_ms: float
    error_kinds: dict[str, int] = field(default_factory=dict)


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list (``q`` in [0, 100]); NaN for an empty list."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q / 100.0 * len(sorted_values)))
    return sorted_values[rank - 1]


def check_loopback(url: str) -> None:
    host = urlsplit(url).hostname
    if host != "127.0.0.1":
        raise ValueError(f"the load generator targets 127.0.0.1 only, not {host!r}")


class _Counter:
    """Hands out request tickets until the budget or the deadline runs out (one event loop, so no lock)."""

    def __init__(self, budget: int, deadline: float) -> None:
        self.left, self.deadline = budget, deadline

    def take(self) -> bool:
        if self.left <= 0 or time.monotonic() >= self.deadline:
            return False
        self.left -= 1
        return True


async def _client_loop(
    client: httpx.AsyncClient,
    spec: LoadSpec,
    image: bytes,
    counter: _Counter,
    latencies: list[float],
    errors: dict[str, int],
    answered_at: list[float] | None = None,
) -> None:
    files = {"file": ("sample-xray.png", image, "image/png")}
    while counter.take():
        start = time.perf_counter()
        try:
            response = await client.post(spec.path, files=files)
        except httpx.HTTPError as exc:
            errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
            continue
        if response.status_code == 200:
            latencies.append(time.perf_counter() - start)
            if answered_at is not None:
                answered_at.append(time.time())
        else:
            errors[str(response.status_code)] = errors.get(str(response.status_code), 0) + 1


async def _run_phase(
    client: httpx.AsyncClient,
    spec: LoadSpec,
    image: bytes,
    budget: int,
    seconds: float,
    answered_at: list[float] | None = None,
) -> tuple[list[float], dict[str, int], float]:
    """``spec.clients`` loops sharing ``budget`` requests and ``seconds``: (latencies s, errors, elapsed s)."""
    latencies: list[float] = []
    errors: dict[str, int] = {}
    counter = _Counter(budget, time.monotonic() + seconds)
    start = time.perf_counter()
    loops = [
        asyncio.create_task(_client_loop(client, spec, image, counter, latencies, errors, answered_at))
        for _ in range(spec.clients)
    ]
    # The hard stop: requests still unanswered ``drain_seconds`` after the deadline are cancelled and counted.
    _, pending = await asyncio.wait(loops, timeout=seconds + spec.drain_seconds)
    for task in pending:
        task.cancel()
    await asyncio.gather(*loops, return_exceptions=True)
    if pending:
        errors["cancelled_after_deadline"] = len(pending)
    return latencies, errors, time.perf_counter() - start


async def run_load(url: str, spec: LoadSpec, image: bytes) -> LoadResult:
    """Warm up (untimed), then run the measured closed loop; returns throughput and latency figures."""
    check_loopback(url)
    limits = httpx.Limits(max_connections=spec.clients, max_keepalive_connections=spec.clients)
    timeout = httpx.Timeout(spec.request_timeout_s)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=timeout, trust_env=False) as client:
        if spec.warmup_requests:
            await _run_phase(client, spec, image, spec.warmup_requests, spec.warmup_seconds)
        latencies, errors, elapsed = await _run_phase(client, spec, image, spec.requests, spec.seconds)
    ms = sorted(s * 1000.0 for s in latencies)
    return LoadResult(
        path=spec.path,
        clients=spec.clients,
        requests=len(ms),
        errors=sum(errors.values()),
        elapsed_s=round(elapsed, 3),
        req_per_s=len(ms) / elapsed if elapsed > 0 else 0.0,
        p50_ms=percentile(ms, 50),
        p99_ms=percentile(ms, 99),
        mean_ms=sum(ms) / len(ms) if ms else math.nan,
        error_kinds=errors,
    )


@dataclass
class LoadRecord:
    """One load process's raw measured phase, for combining several processes (``record_load``)."""

    started: float  # wall clock (time.time()) when the measured phase began
    ended: float
    latencies_s: list[float]  # per request answered 200, in the order answered
    answered_at: list[float]  # wall clock of each of those answers
    errors: dict[str, int]
    cpu_s: float  # CPU time this load process used in the measured phase


def record_load(url: str, spec: LoadSpec, image: bytes) -> LoadRecord:
    """Warm up (untimed), then one measured phase, keeping every answer's time: run one per load process.

    One Python process cannot post 1024 px PNGs fast enough to load a GPU server; several can, and their
    records are combined over the window in which all of them were measuring.
    """
    check_loopback(url)

    async def phases() -> LoadRecord:
        limits = httpx.Limits(max_connections=spec.clients, max_keepalive_connections=spec.clients)
        async with httpx.AsyncClient(
            base_url=url, limits=limits, timeout=httpx.Timeout(spec.request_timeout_s), trust_env=False
        ) as client:
            if spec.warmup_requests:
                await _run_phase(client, spec, image, spec.warmup_requests, spec.warmup_seconds)
            answered_at: list[float] = []
            cpu, started = time.process_time(), time.time()
            latencies, errors, _ = await _run_phase(client, spec, image, spec.requests, spec.seconds, answered_at)
            return LoadRecord(started, time.time(), latencies, answered_at, errors, time.process_time() - cpu)

    return asyncio.run(phases())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="http://127.0.0.1:PORT")
    parser.add_argument("--path", default="/predict")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--warmup", type=int, default=4)
    parser.add_argument("--image", type=Path, default=SAMPLE_IMAGE)
    args = parser.parse_args()
    spec = LoadSpec(args.path, args.clients, args.requests, args.seconds, args.warmup)
    result = asyncio.run(run_load(args.url, spec, args.image.read_bytes()))
    print(json.dumps(asdict(result), indent=2))  # noqa: T201


if __name__ == "__main__":
    main()
