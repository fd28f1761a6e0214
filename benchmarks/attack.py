"""A hostile load test: many clients mixing good, bad, huge and slow uploads against a running server.

    .venv/bin/python -m benchmarks.attack [--clients 32] [--rounds 8] [--checkpoint PATH]

Starts ``chexnet serve`` with small, explicit limits (``ATTACK_SETTINGS``) so the memory bound is tight, then
runs ``clients`` threads, each sending ``rounds`` uploads drawn in turn from :data:`KINDS`: small and large good
X-rays to /predict and /gradcam, a truncated PNG, a text file, an upload over the byte limit, an image over the
pixel cap, and a client that sends its body one byte at a time and never finishes. It records every answer's
status, each kind's latency, and the server's peak resident memory (VmHWM) against the bound
``app.inference.memory.memory_bound_bytes`` gives for those settings. ``tests/e2e/test_attack.py`` runs it small and
asserts: every request answered, only the statuses each kind allows, memory within the bound.
"""

from __future__ import annotations

import argparse
import io
import json
import socket
import statistics
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image

from app.inference.memory import memory_bound_bytes
from app.settings import Settings

MIB = 1024 * 1024
ATTACK_SETTINGS = {
    "CHEXNET_MAX_PIXELS": str(4_000_000),
    "CHEXNET_MAX_UPLOAD_BYTES": str(4 * MIB),
    "CHEXNET_DECODE_CONCURRENCY": "2",
    "CHEXNET_QUEUE_SIZE": "8",
    "CHEXNET_UPLOAD_BACKLOG": "8",
    "CHEXNET_UPLOAD_TIMEOUT_S": "3",
    "CHEXNET_MAX_WAIT_MS": "5",
}


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


@dataclass(frozen=True)
class Kind:
    """One kind of upload: where it goes, its bytes, and the statuses it may get (503 is always allowed)."""

    name: str
    path: str
    body: bytes
    allowed: frozenset[int]
    slow: bool = False


def make_kinds(small_xray: bytes) -> list[Kind]:
    side = 1990  # 3.96 MP: just under the 4 MP cap, a decode of the largest allowed size
    ramp = (np.add.outer(np.arange(side), np.arange(side)) % 4096).astype(np.uint16)
    large_16bit = _png(ramp)
    over_cap = _png(np.zeros((2100, 2100), dtype=np.uint8))  # 4.41 MP, a few KB
    ok = frozenset({200})
    return [
        Kind("small_predict", "/predict", small_xray, ok),
        Kind("small_gradcam", "/gradcam", small_xray, ok),
        Kind("large_predict", "/predict", large_16bit, ok),
        Kind("large_gradcam_all", "/gradcam?pathology=all", large_16bit, ok),
        Kind("truncated", "/predict", small_xray[: len(small_xray) // 3], frozenset({422})),
        Kind("text", "/predict", b"patient notes, not an image\n" * 20, frozenset({415})),
        Kind("over_bytes", "/predict", b"\0" * (5 * MIB), frozenset({413})),
        Kind("over_pixels", "/gradcam", over_cap, frozenset({422})),
        Kind("slow", "/predict", small_xray, frozenset({408}), slow=True),
    ]


def multipart(body: bytes) -> tuple[bytes, str]:
    boundary = "attackboundary"
    head = f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="x"\r\n\r\n'.encode()
    return head + body + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def send_slowly(url: str, kind: Kind, byte_interval_s: float = 0.25) -> int:
    """Headers, then the body one byte at a time until the server answers; the answer's status."""
    host, port = url.removeprefix("http://").split(":")
    body, content_type = multipart(kind.body)
    head = (
        f"POST {kind.path} HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    with socket.create_connection((host, int(port)), timeout=60) as sock:
        sock.sendall(head.encode())
        sock.settimeout(byte_interval_s)
        for byte in body:
            try:
                sock.sendall(bytes([byte]))
                reply = sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:  # the server closed the connection after answering
                break
            if reply:
                return int(reply.split(b" ", 2)[1])
        sock.settimeout(30)
        return int(sock.recv(4096).split(b" ", 2)[1])


def send(client: httpx.Client, url: str, kind: Kind) -> int:
    if kind.slow:
        return send_slowly(url, kind)
    body, content_type = multipart(kind.body)
    return client.post(f"{url}{kind.path}", content=body, headers={"content-type": content_type}).status_code


def peak_rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM")


def current_rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def run_attack(url: str, pid: int, kinds: list[Kind], clients: int, rounds: int) -> dict[str, Any]:
    """``clients`` threads, each sending ``rounds`` uploads (kinds in turn, offset per client)."""
    idle_rss = current_rss_bytes(pid)
    statuses: dict[str, Counter[int]] = defaultdict(Counter)
    latencies: dict[str, list[float]] = defaultdict(list)
    failures: list[str] = []

    def client_loop(index: int) -> None:
        with httpx.Client(timeout=120) as client:
            for step in range(rounds):
                kind = kinds[(index + step) % len(kinds)]
                start = time.perf_counter()
                try:
                    status = send(client, url, kind)
                except Exception as exc:  # a lost request: no answer at all
                    failures.append(f"{kind.name}: {type(exc).__name__}")
                    continue
                statuses[kind.name][status] += 1
                latencies[kind.name].append(time.perf_counter() - start)

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        list(pool.map(client_loop, range(clients)))
    elapsed = time.perf_counter() - start
    unexpected = {
        kind.name: {s: n for s, n in statuses[kind.name].items() if s not in kind.allowed | {503}} for kind in kinds
    }
    return {
        "clients": clients,
        "requests": clients * rounds,
        "elapsed_s": elapsed,
        "statuses": {name: dict(counts) for name, counts in statuses.items()},
        "unexpected": {name: found for name, found in unexpected.items() if found},
        "lost": failures,
        "p50_ms": {name: statistics.median(values) * 1e3 for name, values in latencies.items()},
        "idle_rss_mib": idle_rss / MIB,
        "peak_rss_mib": peak_rss_bytes(pid) / MIB,
    }


def attack_settings() -> Settings:
    return Settings(**{key.removeprefix("CHEXNET_").lower(): value for key, value in ATTACK_SETTINGS.items()})


def bound_mib(idle_rss_mib: float, image_size: int) -> float:
    """The documented bound for ATTACK_SETTINGS: the server's idle memory plus ``memory_bound_bytes``."""
    return idle_rss_mib + memory_bound_bytes(attack_settings(), image_size) / MIB


def main() -> None:
    from models.bundled import DEMO_CHECKPOINT, SAMPLE_XRAY
    from models.checkpoint import load_checkpoint
    from tests.server_process import running_server

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--checkpoint", type=Path, default=DEMO_CHECKPOINT)
    args = parser.parse_args()
    with running_server(args.checkpoint, **ATTACK_SETTINGS) as server:
        result = run_attack(
            server.url, server.process.pid, make_kinds(SAMPLE_XRAY.read_bytes()), args.clients, args.rounds
        )
    image_size = load_checkpoint(args.checkpoint).spec.image_size
    result["bound_mib"] = bound_mib(result["idle_rss_mib"], image_size)
    print(json.dumps(result, indent=2))  # noqa: T201


if __name__ == "__main__":
    main()
