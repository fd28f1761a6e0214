"""The image built from the real Dockerfile and run as users run it; the compose setup for a box without a GPU.

Opt-in (``make container-test`` sets RUN_DEPLOY_TESTS=container): the first build takes minutes and GBs. Skips,
saying why, where no Docker daemon answers. Every container uses the host's network bound to 127.0.0.1 only.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from models.bundled import SAMPLE_XRAY
from tests.conftest import FIXTURES
from tests.deployment.engine import (
    TEST_IMAGE,
    build_image,
    docker,
    inspect,
    opted_in,
    record_figures,
    running_container,
    wait_healthy,
    why_no_engine,
)
from tests.deployment.files import ROOT
from tests.server_process import free_port, running_server

if not opted_in("container"):
    pytest.skip("container tests run with make container-test (RUN_DEPLOY_TESTS=container)", allow_module_level=True)
if (reason := why_no_engine()) is not None:
    pytest.skip(reason, allow_module_level=True)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

UID = "10001"
DRAIN_SECONDS = 20
STOP_TIMEOUT = 45  # docker stop -t, as compose's stop_grace_period
# Reference settings for parity: the eager torch backend on the CPU, on both sides.
REFERENCE = {"CHEXNET_DEVICE": "cpu", "CHEXNET_BACKEND": "torch"}
# The HEALTHCHECK's command, start period and retries are the image's; only how often it runs is shortened here
# (30 s in the image) so the test need not wait half a minute for the first check.
HEALTH_INTERVAL = ["--health-interval", "2s"]


@pytest.fixture(scope="module")
def image() -> str:
    record_figures(**build_image())
    return TEST_IMAGE


def settings_args(**env: str) -> list[str]:
    return [arg for key, value in env.items() for arg in ("-e", f"{key}={value}")]


def predict(url: str, data: bytes) -> dict[str, float]:
    response = httpx.post(f"{url}/predict", files={"file": ("x.png", data, "image/png")}, timeout=120)
    assert response.status_code == 200, response.text
    probabilities: dict[str, float] = response.json()["probabilities"]
    return probabilities


def test_image_serves_hardened_on_another_port_like_a_local_serve(image: str) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {"CHEXNET_HOST": "127.0.0.1", "CHEXNET_PORT": str(port), **REFERENCE}
    with running_container(*HEALTH_INTERVAL, *settings_args(**env), image=image) as container:
        started = wait_healthy(container, url)
        record_figures(start_up_seconds=round(started, 1))
        info = inspect(container)
        host = info["HostConfig"]
        assert (host["ReadonlyRootfs"], host["CapDrop"], host["NetworkMode"]) == (True, ["ALL"], "host")
        assert host["SecurityOpt"] == ["no-new-privileges:true"]
        assert docker("exec", container, "id", "-u").stdout.strip() == UID
        assert info["Config"]["User"] == f"{UID}:{UID}"
        in_container = predict(url, SAMPLE_XRAY.read_bytes())
    with running_server(None, **REFERENCE) as local:
        on_host = predict(local.url, SAMPLE_XRAY.read_bytes())
    assert list(in_container) == list(on_host)
    assert max(abs(in_container[k] - on_host[k]) for k in on_host) <= 1e-6


@pytest.fixture
def user_checkpoint(tiny_checkpoint: Path, tmp_path: Path) -> Path:
    """A checkpoint of the test's making in a folder uid 10001 can read (pytest's tmp folders are 0700)."""
    folder = tmp_path / "checkpoints"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)
    copy = folder / "mine.pt"
    shutil.copyfile(tiny_checkpoint, copy)
    copy.chmod(0o644)
    return copy


def wait_in_progress(url: str, count: int, timeout: float = 60) -> None:
    """Until the service reports at least ``count`` requests in progress (the /metrics request asking included)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in httpx.get(f"{url}/metrics", timeout=5).text.splitlines():
            if line.startswith("chexnet_requests_in_progress ") and float(line.split()[1]) >= count:
                return
        time.sleep(0.02)
    raise AssertionError(f"never {count} requests in progress")


def gradcam_all(url: str, data: bytes) -> int:
    files = {"file": ("x.png", data, "image/png")}
    return httpx.post(f"{url}/gradcam?pathology=all", files=files, timeout=120).status_code


def test_mounted_checkpoint_is_served_and_docker_stop_drains(image: str, user_checkpoint: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        "CHEXNET_HOST": "127.0.0.1",
        "CHEXNET_PORT": str(port),
        "CHEXNET_CHECKPOINT": "/checkpoints/mine.pt",
        "CHEXNET_MAX_WAIT_MS": "1000",  # holds the requests in the batcher's window while the stop arrives
        "CHEXNET_DRAIN_SECONDS": str(DRAIN_SECONDS),
        **REFERENCE,
    }
    mount = ["-v", f"{user_checkpoint.parent}:/checkpoints:ro"]
    xray = (FIXTURES / "00000075_000.png").read_bytes()
    with running_container(*HEALTH_INTERVAL, *mount, *settings_args(**env), image=image) as container:
        wait_healthy(container, url)
        card = httpx.get(f"{url}/model", timeout=10).json()
        assert card["sha256"] == hashlib.sha256(user_checkpoint.read_bytes()).hexdigest()
        with ThreadPoolExecutor(max_workers=6) as pool:
            futures = [pool.submit(gradcam_all, url, xray) for _ in range(6)]
            wait_in_progress(url, 6 + 1)  # the six, and the /metrics request asking
            started = time.monotonic()
            docker("stop", "-t", str(STOP_TIMEOUT), container, timeout=STOP_TIMEOUT + 30)
            stopped_after = time.monotonic() - started
            statuses = [f.result() for f in futures]
        state = inspect(container)["State"]
    assert statuses == [200] * 6
    assert (state["ExitCode"], state["OOMKilled"]) == (0, False)
    assert stopped_after < STOP_TIMEOUT
    record_figures(docker_stop_seconds_with_6_gradcam_in_flight=round(stopped_after, 1))


def compose(project_dir: Path, *args: str, port: int, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    files = ["-f", str(ROOT / "docker-compose.yml"), "-f", str(ROOT / "deploy" / "compose" / "host-loopback.yml")]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHEXNET_")} | {"CHEXNET_PORT": str(port)}
    command = ["docker-compose", "--project-directory", str(project_dir), "-p", "chexnet-test", *files, *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    return result


@pytest.fixture
def compose_project(image: str, tmp_path: Path) -> Iterator[tuple[Path, int]]:
    if shutil.which("docker-compose") is None:
        pytest.skip("no docker-compose (apt-get install docker-compose)")
    docker("tag", image, "chexnet:local")  # the compose file's image name; built above from the same Dockerfile
    (tmp_path / "checkpoints").mkdir(mode=0o755)
    port = free_port()
    try:
        yield tmp_path, port
    finally:
        subprocess.run(
            ["docker-compose", "--project-directory", str(tmp_path), "-p", "chexnet-test", "-f",
             str(ROOT / "docker-compose.yml"), "down", "-t", "1"],
            capture_output=True, timeout=120, check=False,
        )  # fmt: skip


def test_compose_cpu_setup_up_serves_and_down_drains(compose_project: tuple[Path, int]) -> None:
    project, port = compose_project
    url = f"http://127.0.0.1:{port}"
    compose(project, "up", "-d", "--no-build", port=port)
    container = compose(project, "ps", "-q", "chexnet", port=port).stdout.strip()
    # The compose file's own settings (no HEALTH_INTERVAL here): the first health check runs after 30 s.
    wait_healthy(container, url)
    info: dict[str, Any] = inspect(container)
    assert info["HostConfig"]["DeviceRequests"] in (None, [])  # no GPU reservation in this setup
    assert "CHEXNET_DEVICE=cpu" in info["Config"]["Env"]
    assert sorted(predict(url, SAMPLE_XRAY.read_bytes())) == sorted(httpx.get(f"{url}/model").json()["labels"])
    # Grad-CAM panel sheets, not /predict: a /predict of the demo model ends in tens of ms, too soon to be seen
    # in flight by the /metrics poll; a sheet of every label's map takes long enough to be caught and drained.
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = [pool.submit(gradcam_all, url, SAMPLE_XRAY.read_bytes()) for _ in range(2)]
        wait_in_progress(url, 2 + 1)
        started = time.monotonic()
        compose(project, "stop", port=port)  # stop_grace_period: 45 s
        stopped_after = time.monotonic() - started
        statuses = [f.result() for f in futures]
    state = inspect(container)["State"]
    logs = docker("logs", "--tail", "20", container).stderr  # access lines and life-cycle only: no patient data
    assert statuses == [200, 200]
    assert state["ExitCode"] == 0, logs
    record_figures(compose_stop_seconds_with_2_gradcam_in_flight=round(stopped_after, 1))
    compose(project, "down", port=port)
    assert docker("ps", "-aq", "--filter", f"id={container}").stdout.strip() == ""
