"""Reading the deployment files as Docker and Compose read them: Dockerfile instructions, Compose interpolation and
durations, .dockerignore matching. Shared by the static tests and the container tests."""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"

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


def read_dockerfile() -> list[Instruction]:
    return parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8"))


def final_stage_of(dockerfile: list[Instruction]) -> list[Instruction]:
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
