"""README's and docs' example outputs equal what docs/examples.py produces from a real run now."""

from __future__ import annotations

import importlib.util
import json
from types import ModuleType

import pytest

from tests.conftest import REPO


def load_examples() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_examples", REPO / "docs" / "examples.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


examples = load_examples()


def block(name: str, body: str) -> str:
    return f"<!-- example: {name} -->\n```console\n{body}```\n<!-- /example -->\n"


def test_same_output_allows_float_noise_only() -> None:
    assert examples.same_output('{"p":0.12345678}\n', '{"p":0.12345999}\n')
    assert examples.same_output("content-length: 718924\n", "content-length: 766853\n")
    assert not examples.same_output('{"p":0.1234}\n', '{"p":0.1236}\n')  # 2e-4 apart
    assert not examples.same_output('{"above":true}\n', '{"above":false}\n')
    assert not examples.same_output('{"detail":"a"}\n', '{"detail":"b"}\n')
    assert not examples.same_output('["Effusion"]\n', '["Effusion","Mass"]\n')


def test_rewrite_names_a_stale_block_and_replaces_it() -> None:
    text = "intro\n" + block("predict", "old\n") + "middle\n" + block("gradcam", "same\n")
    new, stale = examples.rewrite(text, {"predict": "new\n", "gradcam": "same\n"})
    assert stale == ["predict"]
    assert new == "intro\n" + block("predict", "new\n") + "middle\n" + block("gradcam", "same\n")


def test_wrapped_json_is_the_same_json() -> None:
    answer = {
        "probabilities": {f"Class{k}": k / 7 for k in range(14)},
        "findings": {"A": {"above": True}},
        "note": None,
    }
    assert json.loads(examples.wrap_json(answer)) == answer
    assert max(len(line) for line in examples.wrap_json(answer).splitlines()) <= 120


@pytest.mark.slow
def test_every_marked_example_equals_a_run_of_the_demo_model_now() -> None:
    produced = examples.produce_examples()
    documents = list(examples.documents(REPO))
    found: set[str] = set()
    for path in documents:
        text = path.read_text(encoding="utf-8")
        found |= {match["name"] for match in examples.BLOCK.finditer(text)}
        _, stale = examples.rewrite(text, produced)
        assert stale == [], f"{path.relative_to(REPO)}: {stale} differ from a run now; run make readme-examples"
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert {match["name"] for match in examples.BLOCK.finditer(readme)} == {"predict", "operating-points", "gradcam"}
    assert found == set(produced)  # every example is shown somewhere
