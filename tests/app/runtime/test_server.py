"""``chexnet serve`` as a process: start-up failures exit before the port opens; SIGTERM drains in-flight work."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import uvicorn

import app.runtime.server
import chexnet_cli
from app.runtime.cli import FLAG_DEFAULTS
from app.runtime.listen import AddressError, bind_sockets, close_sockets
from app.runtime.server import EXIT_ADDRESS, EXIT_MODEL, check_unknown_variables, run_server
from app.settings import Settings
from tests.app.fakes import FakePredictor
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

    from app.runtime.server import _NoExceptionText

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


def test_uvicorn_writes_no_access_log_of_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    configs: list[uvicorn.Config] = []
    monkeypatch.setattr(uvicorn.Server, "run", lambda self, sockets: configs.append(self.config))
    assert run_server(Settings(queue_size=10, upload_backlog=5), FakePredictor(), sockets=[]) == 0
    assert [c.access_log for c in configs] == [False]  # app.guards.middleware.AccessLogMiddleware logs requests instead


def test_idle_connections_do_not_make_the_probes_503(tiny_checkpoint: Path) -> None:
    """uvicorn's limit_concurrency counted idle sockets: 40 of them (over queue 1 + backlog 1 + 32) took /readyz."""
    with running_server(tiny_checkpoint, CHEXNET_QUEUE_SIZE="1", CHEXNET_UPLOAD_BACKLOG="1") as server:
        host, port = server.url.removeprefix("http://").split(":")
        idle = [socket.create_connection((host, int(port)), timeout=5) for _ in range(40)]
        try:
            assert httpx.get(f"{server.url}/readyz", timeout=10).status_code == 200
        finally:
            for sock in idle:
                sock.close()


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
        check_unknown_variables(
            {"CHEXNET_MAX_WAIT": "7", "CHEXNET_FOO": "x", "CHEXNET_PORT": "1", "CHEXNET_FUZZ": "long", "HOME": "/"}
        )
    assert caplog.messages == [
        "ignoring unknown settings: CHEXNET_FOO, CHEXNET_MAX_WAIT (did you mean CHEXNET_MAX_WAIT_MS?)"
    ]  # no suggestion when nothing is close (CHEXNET_FOO is not a near miss of CHEXNET_PORT)


def test_unknown_variable_is_named_with_a_suggestion_and_strict_mode_refuses_it() -> None:
    result = start_and_fail(CHEXNET_API_KEYS="secret-value", CHEXNET_STRICT_SETTINGS="1")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "chexnet serve: unknown settings: CHEXNET_API_KEYS (did you mean CHEXNET_API_KEY?); "
        "CHEXNET_STRICT_SETTINGS=1 makes this an error"
    )
    assert "secret-value" not in result.stderr


def test_serve_flag_defaults_are_the_settings_defaults() -> None:
    assert {name: Settings.model_fields[name].default for name in FLAG_DEFAULTS} == FLAG_DEFAULTS


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--port", "99999"], {}, "invalid settings: --port: Input should be less than or equal to 65535"),
        ([], {"CHEXNET_PORT": "99999"}, "invalid settings: CHEXNET_PORT: Input should be less than or equal to 65535"),
        (["--device", "cuda"], {}, "--device cuda was asked for, but this machine has no CUDA device (use auto or "
         "cpu)"),
        ([], {"CHEXNET_DEVICE": "cuda"}, "CHEXNET_DEVICE=cuda was asked for, but this machine has no CUDA device (use "
         "auto or cpu)"),
        (["--log-level", "LOUD"], {}, None),  # argparse's own usage error, also exit 2
    ],
)  # fmt: skip
def test_serve_messages_name_what_the_user_typed(
    args: list[str], env: dict[str, str], message: str | None, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(app.runtime.server.torch.cuda, "is_available", lambda: False)
    if message is None:
        with pytest.raises(SystemExit) as exit_info:
            chexnet_cli.main(["serve", *args])
        assert exit_info.value.code == 2
        return
    assert chexnet_cli.main(["serve", *args]) == 2
    assert capsys.readouterr().err == f"chexnet serve: {message}\n"


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_a_port_in_use_exits_3_before_the_model_loads(
    busy_port: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = str(tmp_path / "missing.pt")  # loading it would exit 1: the port is checked first
    assert chexnet_cli.main(["serve", "--port", str(busy_port), "--checkpoint", missing]) == 3
    assert capsys.readouterr().err == (
        f"chexnet serve: cannot listen on 127.0.0.1:{busy_port} (--port {busy_port}): the port is in use (by another "
        "chexnet serve, or another program)\n"
    )
    monkeypatch.setenv("CHEXNET_PORT", str(busy_port))
    assert chexnet_cli.main(["serve", "--checkpoint", missing]) == 3
    assert f"(CHEXNET_PORT={busy_port}): the port is in use" in capsys.readouterr().err


def test_a_host_that_is_not_this_machine_exits_3(capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    assert chexnet_cli.main(["serve", "--host", "192.0.2.1", "--port", str(port)]) == 3  # TEST-NET-1: not ours
    assert capsys.readouterr().err == (
        f"chexnet serve: cannot listen on 192.0.2.1:{port} (--host 192.0.2.1): that is not an address of this machine\n"
    )


def test_bound_sockets_refuse_connections_until_uvicorn_listens() -> None:
    port = free_port()
    sockets = bind_sockets("127.0.0.1", port)
    try:
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5)
    finally:
        close_sockets(sockets)


def test_a_port_with_a_listener_is_refused_naming_the_port(busy_port: int) -> None:
    with pytest.raises(AddressError) as caught:
        bind_sockets("127.0.0.1", busy_port)
    assert (str(caught.value), caught.value.about) == (
        "the port is in use (by another chexnet serve, or another program)",
        "port",
    )


def test_a_port_taken_while_the_model_loaded_exits_3(caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()
    ours = bind_sockets("127.0.0.1", port)
    with socket.socket() as theirs:  # another server, bound meanwhile (SO_REUSEADDR allows it) and listening first
        theirs.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        theirs.bind(("127.0.0.1", port))
        theirs.listen()
        assert run_server(Settings(port=port), FakePredictor(), ours) == EXIT_ADDRESS  # type: ignore[arg-type]
    assert f"cannot listen on 127.0.0.1:{port}: the port was taken while the model loaded" in caplog.messages


class PredictorThatCannotStart(FakePredictor):
    async def start(self) -> None:
        raise RuntimeError("no model thread")


def test_an_application_that_fails_to_start_exits_1_not_uvicorns_3() -> None:
    sockets = bind_sockets("127.0.0.1", free_port())
    assert run_server(Settings(), PredictorThatCannotStart(), sockets) == EXIT_MODEL  # type: ignore[arg-type]
    assert all(sock.fileno() == -1 for sock in sockets)  # closed


def test_serve_log_level_after_the_command_reaches_the_settings(
    busy_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = logging.getLogger()
    monkeypatch.setattr(root, "level", root.level)  # restored after the test
    monkeypatch.setenv("CHEXNET_LOG_LEVEL", "ERROR")
    assert chexnet_cli.main(["serve", "--port", str(busy_port), "--log-level", "WARNING"]) == 3
    assert root.level == logging.WARNING


def test_a_client_that_leaves_before_inference_is_not_computed(tiny_checkpoint: Path) -> None:
    xray = (FIXTURES / "00000075_000.png").read_bytes()
    head = b'--b\r\nContent-Disposition: form-data; name="file"; filename="x"\r\n\r\n'
    body = head + xray + b"\r\n--b--\r\n"
    with running_server(tiny_checkpoint) as server:
        before = httpx.get(f"{server.url}/metrics", timeout=10).text
        host, port = server.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            request = (
                f"POST /gradcam HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            )
            sock.sendall(request.encode() + body)  # and leave at once, before any answer
        deadline = time.monotonic() + 30
        while 'route="/gradcam",status="499"' not in (text := httpx.get(f"{server.url}/metrics", timeout=10).text):
            assert time.monotonic() < deadline, "the disconnect was never recorded"
            time.sleep(0.05)
    batches = [line for line in text.splitlines() if line.startswith("chexnet_batch_size_count")]
    assert batches == [line for line in before.splitlines() if line.startswith("chexnet_batch_size_count")]
