"""The README's example outputs, produced by a real run of the bundled demo model, so they cannot go stale.

    python docs/examples.py --write    # rewrite every marked block in README.md and docs/*.md
    python docs/examples.py --check    # exit 1 naming each block that differs from what the service answers now

A marked block is a fenced ``console`` block between ``<!-- example: NAME -->`` and ``<!-- /example -->``; NAME is
one of ``EXAMPLES``. The service runs in this process (``app.main.create_app`` behind Starlette's TestClient) on the
demo model with the eager ``torch`` backend, the reference; ``make serve`` uses OpenVINO, whose probabilities differ
from eager's by at most about 5e-7 (docs/backends.md), below what ``--check`` compares.

``--check`` compares the text exactly and each number within 1e-4, ``content-length`` values left out, so that float
noise between machines and libraries (last digits of a probability, a PNG a few bytes longer) does not fail it,
while any change of wording, field, status or decision does.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from a clone: the repository's own packages

logger = logging.getLogger("docs.examples")

BASE = "http://127.0.0.1:8000"
SAMPLE = "models/bundled/sample-xray.png"
BLOCK = re.compile(r"(<!-- example: (?P<name>[\w-]+) -->\n```console\n)(?P<body>.*?)(```\n<!-- /example -->)", re.S)


def compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def wrap_json(answer: dict[str, Any], width: int = 116) -> str:
    """One top-level field a line; a long object's entries packed into lines of ``width``, ``findings`` one a line.

    A reading aid only: the server sends the same JSON on one line.
    """
    lines = []
    for key, value in answer.items():
        if not isinstance(value, dict) or len(compact(value)) + len(key) < width:
            lines.append(f"{compact(key)}:{compact(value)}")
            continue
        entries = [f"{compact(name)}:{compact(entry)}" for name, entry in value.items()]
        if key == "findings":
            lines.append(f"{compact(key)}:{{\n" + ",\n".join(f"  {entry}" for entry in entries) + "}")
            continue
        rows = [""]
        for entry in entries:
            if rows[-1] and len(rows[-1]) + len(entry) >= width:
                rows[-1] += ","
                rows.append("  ")
            rows[-1] += ("," if rows[-1].strip() else "") + entry
        lines.append(f"{compact(key)}:{{" + "\n".join(rows) + "}")
    return "{" + ",\n".join(lines) + "}"


def upload(path: Path) -> dict[str, tuple[str, bytes, str]]:
    return {"file": (path.name, path.read_bytes(), "application/octet-stream")}


def example_predict(client: Any) -> str:
    command = f"curl -F file=@{SAMPLE} {BASE}/predict"
    answer = client.post(f"{BASE}/predict", files=upload(ROOT / SAMPLE))
    return f"$ {command}\n{wrap_json(answer.json())}\n"


def example_operating_points(client: Any) -> str:
    query = "jq -c '[.findings | to_entries[] | select(.value.above) | .key]'"
    out = []
    for point in ("youden", "spec90"):
        answer = client.post(f"{BASE}/predict?operating_point={point}", files=upload(ROOT / SAMPLE)).json()
        above = [name for name, finding in answer["findings"].items() if finding["above"]]
        out.append(f'$ curl -s -F file=@{SAMPLE} "{BASE}/predict?operating_point={point}" | {query}')
        out.append(json.dumps(above, separators=(",", ":")))
    answer = client.post(f"{BASE}/predict?operating_point=spec95", files=upload(ROOT / SAMPLE))
    out.append(f'$ curl -F file=@{SAMPLE} "{BASE}/predict?operating_point=spec95"')
    out.append(json.dumps(answer.json(), separators=(",", ":"), ensure_ascii=False))
    return "\n".join(out) + "\n"


def example_gradcam(client: Any) -> str:
    command = f"curl -s -D - -o overlay.png -F file=@{SAMPLE} {BASE}/gradcam"
    answer = client.post(f"{BASE}/gradcam", files=upload(ROOT / SAMPLE))
    headers = [f"HTTP/1.1 {answer.status_code} {answer.reason_phrase}"]
    for name, value in answer.headers.items():
        shown = "(32 hex digits, new for every request)" if name == "x-request-id" else value
        headers.append(f"{name}: {shown}")
    return f"$ {command}\n" + "\n".join(headers) + "\n(uvicorn adds date and server)\n"


def example_not_an_image(client: Any) -> str:
    answer = client.post(f"{BASE}/predict", files=upload(ROOT / "README.md"))
    body = json.dumps(answer.json(), separators=(",", ":"), ensure_ascii=False)
    return f"$ curl -F file=@README.md {BASE}/predict\n{body}\n"


EXAMPLES: dict[str, Callable[[Any], str]] = {
    "predict": example_predict,
    "operating-points": example_operating_points,
    "gradcam": example_gradcam,
    "not-an-image": example_not_an_image,
}


def documents(root: Path) -> Iterator[Path]:
    yield root / "README.md"
    yield from sorted((root / "docs").glob("*.md"))


def produce_examples() -> dict[str, str]:
    """Each example's text, from one in-process service on the demo model (eager torch, no warm-up)."""
    from fastapi.testclient import TestClient

    from app.main import create_app
    from app.settings import Settings

    settings = Settings(backend="torch", warmup=False, intra_op_threads=1)
    with TestClient(create_app(settings)) as client:
        return {name: make(client) for name, make in EXAMPLES.items()}


NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:e-?\d+)?")


def same_output(documented: str, produced: str, tolerance: float = 1e-4) -> bool:
    """Equal text around the numbers, and each number within ``tolerance`` (``content-length`` values ignored).

    Float noise between machines and backends (the last digits of a probability, a PNG a few bytes longer) does
    not count; any change of wording, field, status or decision does.
    """
    documented, produced = (re.sub(r"(?im)^(content-length:) *\d+", r"\1 N", t) for t in (documented, produced))
    if NUMBER.split(documented) != NUMBER.split(produced):
        return False
    pairs = zip(NUMBER.findall(documented), NUMBER.findall(produced), strict=True)
    return all(abs(float(a) - float(b)) <= tolerance for a, b in pairs)


def rewrite(text: str, produced: dict[str, str]) -> tuple[str, list[str]]:
    """``text`` with its marked blocks replaced, and the names of those whose output changed."""
    stale: list[str] = []

    def replace(match: re.Match[str]) -> str:
        name = match["name"]
        if name not in produced:
            raise SystemExit(f"docs/examples.py: unknown example {name!r} (known: {', '.join(produced)})")
        if not same_output(match["body"], produced[name]):
            stale.append(name)
        return match.group(1) + produced[name] + match.group(4)

    return BLOCK.sub(replace, text), stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="rewrite the marked blocks")
    mode.add_argument("--check", action="store_true", help="exit 1 when a marked block differs")
    parser.add_argument("--root", type=Path, default=ROOT, help="the repository whose documents to read")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    produced = produce_examples()
    found, failures = 0, []
    for path in documents(args.root):
        text = path.read_text(encoding="utf-8")
        new, stale = rewrite(text, produced)
        found += len(BLOCK.findall(text))
        if args.write and new != text:
            path.write_text(new, encoding="utf-8")
        failures += [f"{path.relative_to(args.root)}: {name}" for name in stale]
    if found == 0:
        print("docs/examples.py: no marked example blocks found", file=sys.stderr)  # noqa: T201 (a command's output)
        return 1
    if args.check and failures:
        print("stale examples (run make readme-examples):\n  " + "\n  ".join(failures), file=sys.stderr)  # noqa: T201
        return 1
    print(f"{found} example blocks {'written' if args.write else 'up to date'}")  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
