"""``chexnet serve`` as a process: start-up failures exit before the port opens; SIGTERM drains in-flight work."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import uvicorn

import chexnet_cli
from app.server import CONNECTION_HEADROOM, check_unknown_variables, run_server
from app.settings import Settings
from tests.app.fakes import FakeEngine
from tests.conftest import FIXTURES
from tests.server_process import free_port, running_server, serve_command

pytestmark = pytest.mark.slow


def start_and_fail(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        serve_command("--port", str(free_port()), *args),
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_uvicorn_tracebacks_lose_their_exception_text() -> None:
    import logging
    import sys

    from app.server import _NoExceptionText

    try:
        raise ValueError("/home/alice/John-Doe.dcm")
    except ValueError:
        record = logging.LogRecord(
            "uvicorn.error", logging.ERROR, __file__, 1, "Exception in ASGI application", (), sys.exc_info()
        )
    assert _NoExceptionText().filter(record)
    assert record.getMessage() == "Exception in ASGI application (ValueError; details withheld)"
    assert record.exc_info is None
    assert "John" not in logging.Formatter().format(record)


def test_missing_checkpoint_exits_1_with_one_clear_message(tmp_path: Path) -> None:
    result = start_and_fail("--checkpoint", str(tmp_path / "missing.pt"))
    assert result.returncode == 1
    assert (
        result.stderr.strip().splitlines()[-1].startswith("chexnet serve: cannot load the model: checkpoint not found")
    )
    assert "Traceback" not in result.stderr


def test_corrupt_checkpoint_exits_1(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"PK\x03\x04 not really a zip")
    result = start_and_fail("--checkpoint", str(corrupt))
    assert result.returncode == 1
    assert "corrupt" in result.stderr and "Traceback" not in result.stderr


def test_invalid_setting_exits_2_naming_the_variable() -> None:
    result = start_and_fail(CHEXNET_MAX_BATCH_SIZE="0")
    assert result.returncode == 2
    assert "CHEXNET_MAX_BATCH_SIZE" in result.stderr


def wait_for_requests_in_progress(url: str, count: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        metrics = httpx.get(f"{url}/metrics", timeout=5).text
        if f"chexnet_requests_in_progress {float(count)}" in metrics:
            return
        time.sleep(0.01)
    raise AssertionError(f"never {count} requests in progress")


def test_sigterm_finishes_requests_in_flight(tiny_checkpoint: Path) -> None:
    xray = (FIXTURES / "00000075_000.png").read_bytes()
    with running_server(tiny_checkpoint, CHEXNET_MAX_WAIT_MS="1000") as server:

        def call(_: int) -> int:
            files = {"file": ("x.png", xray, "image/png")}
            return httpx.post(f"{server.url}/gradcam?pathology=all", files=files, timeout=60).status_code

        with ThreadPoolExecutor(max_workers=6) as pool:
            futures = [pool.submit(call, i) for i in range(6)]
            wait_for_requests_in_progress(server.url, 6 + 1)  # the six, in the batcher's window, and this probe
            server.process.send_signal(signal.SIGTERM)
            statuses = [f.result() for f in futures]
        assert statuses == [200] * 6
        # uvicorn re-raises SIGTERM after its graceful shutdown, so the exit is "terminated by SIGTERM"
        assert server.process.wait(timeout=30) == -signal.SIGTERM
        log = server.process.stdout.read() if server.process.stdout else ""
        assert "Application shutdown complete" in log
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{server.url}/healthz", timeout=2)


def test_uvicorn_backstop_is_queue_plus_backlog_plus_headroom(monkeypatch: pytest.MonkeyPatch) -> None:
    configs: list[uvicorn.Config] = []
    monkeypatch.setattr(uvicorn.Server, "run", lambda self: configs.append(self.config))
    run_server(Settings(queue_size=10, upload_backlog=5), FakeEngine())  # type: ignore[arg-type]
    assert [c.limit_concurrency for c in configs] == [10 + 5 + CONNECTION_HEADROOM]


def test_unreadable_checkpoint_exits_1_with_one_line(
    tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Mode 0600 owned by another user, as a container's mount can be (simulated: this may run as root)."""
    real_read = Path.read_bytes

    def refuse(path: Path) -> bytes:
        if path.name == tiny_checkpoint.name:
            raise PermissionError(13, "Permission denied")
        return real_read(path)

    monkeypatch.setattr(Path, "read_bytes", refuse)
    assert chexnet_cli.main(["serve", "--checkpoint", str(tiny_checkpoint), "--port", str(free_port())]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [
        f"chexnet serve: cannot load the model: cannot read checkpoint {tiny_checkpoint}: permission denied"
    ]


def test_unknown_variable_is_a_warning_without_its_value(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        check_unknown_variables({"CHEXNET_MAX_WAIT": "7", "CHEXNET_PORT": "1", "CHEXNET_FUZZ": "long", "HOME": "/"})
    assert caplog.messages == ["ignoring unknown settings: CHEXNET_MAX_WAIT (did you mean CHEXNET_MAX_WAIT_MS?)"]


def test_unknown_variable_is_named_with_a_suggestion_and_strict_mode_refuses_it() -> None:
    result = start_and_fail(CHEXNET_API_KEYS="secret-value", CHEXNET_STRICT_SETTINGS="1")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "chexnet serve: unknown settings: CHEXNET_API_KEYS (did you mean CHEXNET_API_KEY?); "
        "CHEXNET_STRICT_SETTINGS=1 makes this an error"
    )
    assert "secret-value" not in result.stderr
