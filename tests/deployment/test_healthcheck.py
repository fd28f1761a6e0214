"""The image's health check (``python -m app.runtime.probe``) against a local server, and /readyz while draining."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import uvicorn

from app.runtime.probe import readiness_url
from app.runtime.server import _DrainingServer
from tests.app.fakes import FakePredictor, client_for
from tests.conftest import FIXTURES


class _Readyz(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/readyz" else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # keep pytest output clean
        pass


@pytest.fixture
def readyz_server(request: pytest.FixtureRequest) -> Iterator[int]:
    handler = type("Handler", (_Readyz,), {"status": request.param})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def run_probe(**settings: str) -> int:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHEXNET_") and "proxy" not in k.lower()}
    env["http_proxy"] = env["HTTP_PROXY"] = "http://127.0.0.1:9"  # a proxy that refuses: the probe must not use it
    result = subprocess.run(
        [sys.executable, "-m", "app.runtime.probe"], capture_output=True, timeout=30, check=False, env=env | settings
    )
    assert result.stdout == b""
    return result.returncode


@pytest.mark.parametrize(("readyz_server", "exit_status"), [(200, 0), (503, 1)], indirect=["readyz_server"])
@pytest.mark.parametrize("host", ["0.0.0.0", "127.0.0.1", ""])
def test_probe_follows_chexnet_port_and_readyz(readyz_server: int, exit_status: int, host: str) -> None:
    assert run_probe(CHEXNET_HOST=host, CHEXNET_PORT=str(readyz_server)) == exit_status


def test_probe_fails_when_nothing_listens() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert run_probe(CHEXNET_PORT=str(port)) == 1


def test_probe_fails_on_a_port_that_is_no_number() -> None:
    assert run_probe(CHEXNET_PORT="eighty") == 1


def test_readiness_url_defaults_are_the_serve_defaults() -> None:
    assert readiness_url({}) == "http://127.0.0.1:8000/readyz"
    assert readiness_url({"CHEXNET_HOST": "0.0.0.0", "CHEXNET_PORT": "8731"}) == "http://127.0.0.1:8731/readyz"
    assert readiness_url({"CHEXNET_HOST": "::"}) == "http://[::1]:8000/readyz"
    assert readiness_url({"CHEXNET_HOST": "10.1.2.3"}) == "http://10.1.2.3:8000/readyz"


def test_probe_imports_no_torch() -> None:
    code = "import sys, app.runtime.probe; sys.exit(1 if 'torch' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code], timeout=60, check=False).returncode == 0


def test_sigterm_makes_readyz_503_while_requests_are_still_answered() -> None:
    with client_for(FakePredictor()) as client:
        app: Any = client.app
        server = _DrainingServer(uvicorn.Config(app), app.state.pipeline)
        assert client.get("/readyz").status_code == 200
        server.handle_exit(signal.SIGTERM, None)
        assert server.should_exit
        response = client.get("/readyz")
        assert (response.status_code, response.json()["code"]) == (503, "not_ready")
        xray = (FIXTURES / "00000075_000.png").read_bytes()
        files = {"file": ("x.png", xray, "image/png")}
        assert client.post("/predict", files=files).status_code == 200  # what reaches the service is still answered
        assert client.get("/healthz").status_code == 200
