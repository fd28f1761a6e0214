"""Overload answers that arrive (issue 16, item 4): 32 clients post 1 MB uploads to a real server with small queue
limits while two other processes keep both cores busy. Every request gets an answer, 200 or 503 with Retry-After;
none ends in a connection error (a reset that would destroy the early 503 while the client is still sending)."""

from __future__ import annotations

import io
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.server_process import running_server

CLIENTS, ROUNDS = 32, 3
BUSY_SECONDS = 40  # each busy process ends by itself even if the test is interrupted
BUSY_LOOP = f"import time\nend = time.monotonic() + {BUSY_SECONDS}\nwhile time.monotonic() < end:\n    pass\n"


def noise_png(side: int = 1024) -> bytes:
    """An 8-bit grey PNG of noise: about 1 MB, since noise does not compress."""
    pixels = np.random.default_rng(0).integers(0, 256, (side, side), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.slow
def test_every_overloaded_upload_gets_its_answer_on_a_busy_machine(tiny_checkpoint: Path) -> None:
    image = noise_png()
    assert len(image) > 1_000_000
    outcomes: list[tuple[int, str | None] | str] = []
    lock = threading.Lock()

    def client() -> None:
        with httpx.Client(timeout=60) as session:
            for _ in range(ROUNDS):
                try:
                    r = session.post(f"{server.url}/predict", files={"file": ("x.png", image, "image/png")})
                    outcome: tuple[int, str | None] | str = (r.status_code, r.headers.get("retry-after"))
                except httpx.TransportError as error:
                    outcome = type(error).__name__
                with lock:
                    outcomes.append(outcome)

    settings = {"CHEXNET_QUEUE_SIZE": "2", "CHEXNET_UPLOAD_BACKLOG": "2", "CHEXNET_BACKEND": "torch"}
    with running_server(tiny_checkpoint, timeout=240, **settings) as server:
        busy = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) for _ in range(2)]
        try:
            threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        finally:
            for process in busy:
                process.kill()
                process.wait()
    errors = [o for o in outcomes if isinstance(o, str)]
    assert errors == []
    answered = [o for o in outcomes if not isinstance(o, str)]
    assert len(answered) == CLIENTS * ROUNDS
    assert {status for status, _ in answered} <= {200, 503}
    assert all(retry == "1" for status, retry in answered if status == 503)
    assert any(status == 503 for status, _ in answered)  # the limits were reached: the test exercised shedding
