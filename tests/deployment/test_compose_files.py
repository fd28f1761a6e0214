"""Static checks of the Compose files: what each file holds, and the setups they merge into.

docker-compose.yml holds what every setup shares; docker-compose.override.yml (read by a plain `docker compose up`)
adds the GPU and the published port; deploy/compose/cpu.yml the CPU and the same port; deploy/compose/host-loopback.yml
the host's network on 127.0.0.1. Compose merges by adding, so the GPU and the port must stay out of the shared file.
tests/deployment/test_container.py starts the CPU setup for real.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deployment.files import ROOT, duration_seconds, interpolate

COMPOSE = ROOT / "docker-compose.yml"
GPU_OVERRIDE = ROOT / "docker-compose.override.yml"
CPU = ROOT / "deploy" / "compose" / "cpu.yml"
HOST_LOOPBACK = ROOT / "deploy" / "compose" / "host-loopback.yml"
PORT_LINE = "${CHEXNET_BIND:-127.0.0.1}:8000:8000"
DRAIN_SECONDS_DEFAULT = 20.0


def chexnet_service(path: Path) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert list(document["services"]) == ["chexnet"], path.name
    service: dict[str, Any] = document["services"]["chexnet"]
    return service


@pytest.fixture(scope="module")
def service() -> dict[str, Any]:
    return chexnet_service(COMPOSE)


def test_shared_file_has_no_gpu_no_port_no_device(service: dict[str, Any]) -> None:
    assert "deploy" not in service
    assert "ports" not in service
    assert "network_mode" not in service
    assert "CHEXNET_DEVICE" not in service["environment"]


def test_shared_file_builds_this_repository(service: dict[str, Any]) -> None:
    assert service["build"] == {"context": ".", "dockerfile": "Dockerfile"}
    assert service["image"] == "chexnet:local"


def test_gpu_override_reserves_one_nvidia_gpu_and_publishes_on_loopback() -> None:
    gpu = chexnet_service(GPU_OVERRIDE)
    assert gpu["deploy"]["resources"]["reservations"]["devices"] == [
        {"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}
    ]
    assert gpu["environment"] == {"CHEXNET_DEVICE": "cuda"}
    assert gpu["ports"] == [PORT_LINE]
    assert set(gpu) == {"environment", "ports", "deploy"}


def test_cpu_override_is_the_gpu_one_without_the_gpu() -> None:
    cpu = chexnet_service(CPU)
    assert cpu == {"environment": {"CHEXNET_DEVICE": "cpu"}, "ports": [PORT_LINE]}


def test_host_loopback_binds_127_0_0_1_without_published_ports() -> None:
    host = chexnet_service(HOST_LOOPBACK)
    assert host["network_mode"] == "host"
    assert "ports" not in host and "deploy" not in host
    assert host["environment"]["CHEXNET_HOST"] == "127.0.0.1"
    assert interpolate(host["environment"]["CHEXNET_PORT"], {}) == "8000"
    assert interpolate(host["environment"]["CHEXNET_PORT"], {"CHEXNET_PORT": "8731"}) == "8731"
    assert interpolate(host["environment"]["CHEXNET_DEVICE"], {}) == "cpu"


def test_published_port_is_loopback_unless_bind_is_given() -> None:
    assert interpolate(PORT_LINE, {}) == "127.0.0.1:8000:8000"
    assert interpolate(PORT_LINE, {"CHEXNET_BIND": ""}) == "127.0.0.1:8000:8000"
    assert interpolate(PORT_LINE, {"CHEXNET_BIND": "0.0.0.0"}) == "0.0.0.0:8000:8000"


def test_environment_passes_checkpoint_and_key_through_only_when_set(service: dict[str, Any]) -> None:
    env = service["environment"]
    assert all(key.startswith("CHEXNET_") for key in env)
    assert env["CHEXNET_CHECKPOINT"] is None
    assert env["CHEXNET_API_KEY"] is None


def test_checkpoints_mounted_read_only(service: dict[str, Any]) -> None:
    assert service["volumes"] == ["./checkpoints:/checkpoints:ro"]
    assert "CHEXNET_CHECKPOINT=/checkpoints/best.pt" in COMPOSE.read_text(encoding="utf-8")


def test_health_check_is_the_image_own(service: dict[str, Any]) -> None:
    assert "healthcheck" not in service  # the Dockerfile's follows CHEXNET_PORT; a copy here would not


def test_restart_and_graceful_stop(service: dict[str, Any]) -> None:
    assert service["restart"] == "unless-stopped"
    assert service["stop_signal"] == "SIGTERM"
    grace = duration_seconds(service["stop_grace_period"])
    assert grace == 45.0  # over the 20 s drain, with room for the process to end (a loaded stop took 29.7 s)
    drain = float(service["environment"].get("CHEXNET_DRAIN_SECONDS") or DRAIN_SECONDS_DEFAULT)
    assert grace > drain >= DRAIN_SECONDS_DEFAULT


def test_hardening(service: dict[str, Any]) -> None:
    assert service["read_only"] is True
    assert [entry.split(":")[0] for entry in service["tmpfs"]] == ["/tmp"]
    assert service["security_opt"] == ["no-new-privileges:true"]
    assert service["cap_drop"] == ["ALL"]
    assert "privileged" not in service


def test_duration_parser() -> None:
    assert duration_seconds("30s") == 30.0
    assert duration_seconds("1m30s") == 90.0
    assert duration_seconds("1.5m") == 90.0
    assert duration_seconds("500ms") == 0.5
    with pytest.raises(AssertionError):
        duration_seconds("30")


def compose_command() -> list[str] | None:
    """``docker compose`` (v2) when the plugin works, else Debian's ``docker-compose`` (1.29), else None."""
    if docker := shutil.which("docker"):
        probe = subprocess.run([docker, "compose", "version"], capture_output=True, timeout=30, check=False)
        if probe.returncode == 0:
            return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


def merged_config(*files: Path) -> dict[str, Any]:
    command = compose_command()
    if command is None:
        pytest.skip("neither `docker compose` nor `docker-compose` is installed (apt-get install docker-compose)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHEXNET_")}
    args = [arg for f in files for arg in ("-f", str(f))] if files else []
    result = subprocess.run(
        [*command, *args, "config"], capture_output=True, text=True, timeout=60, check=False, cwd=ROOT, env=env
    )
    assert result.returncode == 0, result.stderr
    service: dict[str, Any] = yaml.safe_load(result.stdout)["services"]["chexnet"]
    return service


def published(service: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(host address, host port, container port) from either the short or the long port syntax."""
    out = []
    for port in service.get("ports", []):
        if isinstance(port, str):
            host_ip, host_port, target = port.rsplit(":", 2)
            out.append((host_ip, host_port, target.removesuffix("/tcp")))
        else:
            out.append((port["host_ip"], str(port["published"]), str(port["target"])))
    return out


def test_plain_up_is_the_gpu_setup() -> None:
    resolved = merged_config()  # docker-compose.yml + docker-compose.override.yml, as `docker compose up` reads
    assert resolved["environment"]["CHEXNET_DEVICE"] == "cuda"
    assert resolved["deploy"]["resources"]["reservations"]["devices"][0]["driver"] == "nvidia"
    assert published(resolved) == [("127.0.0.1", "8000", "8000")]
    assert resolved["read_only"] is True


def test_cpu_setup_has_no_gpu() -> None:
    resolved = merged_config(COMPOSE, CPU)
    assert resolved["environment"]["CHEXNET_DEVICE"] == "cpu"
    assert "deploy" not in resolved
    assert published(resolved) == [("127.0.0.1", "8000", "8000")]


def test_host_loopback_setup_is_valid() -> None:
    resolved = merged_config(COMPOSE, HOST_LOOPBACK)
    assert resolved["network_mode"] == "host"
    assert "ports" not in resolved and "deploy" not in resolved
    assert resolved["environment"]["CHEXNET_HOST"] == "127.0.0.1"
