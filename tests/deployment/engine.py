"""The Docker engine for the container tests: whether one answers (else why not), the image built once from the real
Dockerfile, containers run as users run them, and the figures the tests measure (size, build and start-up time).

Network rule: every container uses the host's network and binds 127.0.0.1 only (the daemon runs without its bridge).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from tests.deployment.files import ROOT

OPT_IN = "RUN_DEPLOY_TESTS"  # make container-test / make rolling-test set it; the image build is minutes and GBs
TEST_IMAGE = "chexnet:container-test"
FIGURES = ROOT / "runs" / "container-test" / "figures.json"
# What `docker compose` files and docs ask for: read-only root, tmpfs /tmp, no capabilities, no setuid escalation.
HARDENING = [
    "--read-only",
    "--tmpfs",
    "/tmp:size=1g,mode=1777",
    "--cap-drop",
    "ALL",
    "--security-opt",
    "no-new-privileges:true",
]


def opted_in(kind: str) -> bool:
    return kind in os.environ.get(OPT_IN, "").split(",")


def docker(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"docker {args[0]} failed ({result.returncode}): {result.stderr[-2000:]}")
    return result


def why_no_engine() -> str | None:
    """None when a Docker daemon answers; else the reason, for a skip message."""
    if shutil.which("docker") is None:
        return "no docker command (apt-get install docker.io; deploy/docker-engine.sh does it)"
    try:
        result = docker("info", "--format", "{{.ServerVersion}}", timeout=30, check=False)
    except subprocess.TimeoutExpired:
        return "`docker info` did not answer within 30 s"
    if result.returncode != 0:
        reason = (result.stderr.strip().splitlines() or ["no message"])[-1][:200]
        return f"no Docker daemon answers (`docker info`: {reason}); deploy/docker-engine.sh starts one as root"
    return None


def record_figures(**figures: Any) -> None:
    """Merge ``figures`` into runs/container-test/figures.json (make container-test prints it)."""
    FIGURES.parent.mkdir(parents=True, exist_ok=True)
    current = json.loads(FIGURES.read_text()) if FIGURES.exists() else {}
    FIGURES.write_text(json.dumps({**current, **figures}, indent=2, sort_keys=True) + "\n")


def build_image() -> dict[str, Any]:
    """Build the real Dockerfile (legacy builder, host network) on PYTHON_IMAGE, else on the stand-in base.

    Returns the figures: build seconds (with whatever layer cache there is), image bytes, base image.
    """
    base = (
        os.environ.get("PYTHON_IMAGE")
        or subprocess.run(
            [str(ROOT / "deploy" / "stand-in-base.sh")], capture_output=True, text=True, timeout=900, check=True
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    env = {**os.environ, "DOCKER_BUILDKIT": "0"}
    started = time.monotonic()
    result = subprocess.run(
        ["docker", "build", "--network", "host", "--build-arg", f"PYTHON_IMAGE={base}", "-t", TEST_IMAGE, "."],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    seconds = time.monotonic() - started
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    size = int(docker("image", "inspect", "--format", "{{.Size}}", TEST_IMAGE).stdout)
    return {"base_image": base, "build_seconds": round(seconds, 1), "image_bytes": size}


def inspect(container: str) -> dict[str, Any]:
    info: dict[str, Any] = json.loads(docker("inspect", container).stdout)[0]
    return info


@contextmanager
def running_container(*args: str, image: str = TEST_IMAGE) -> Iterator[str]:
    """``docker run -d`` on the host network with the hardening flags; removed afterwards whatever happened."""
    name = f"chexnet-test-{uuid.uuid4().hex[:10]}"
    docker("run", "-d", "--name", name, "--network", "host", *HARDENING, *args, image)
    try:
        yield name
    finally:
        docker("rm", "-f", name, check=False)


def wait_healthy(container: str, url: str, timeout: float = 240) -> float:
    """Seconds from now until /readyz answers 200 from the host; then waits for Docker's own health status."""
    started = time.monotonic()
    ready_after: float | None = None
    while time.monotonic() - started < timeout:
        state = inspect(container)["State"]
        assert state["Running"], f"container exited ({state['ExitCode']}): {docker('logs', container).stderr[-2000:]}"
        if ready_after is None:
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    ready_after = time.monotonic() - started
            except httpx.TransportError:
                pass
        if ready_after is not None and state.get("Health", {}).get("Status") == "healthy":
            return ready_after
        time.sleep(0.25)
    raise AssertionError(f"not healthy in {timeout} s: {docker('logs', container).stderr[-2000:]}")
