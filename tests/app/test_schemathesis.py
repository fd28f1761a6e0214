"""The API against its own OpenAPI document (schemathesis, property-based, its default checks): a real server with
a tiny random-weight model, over loopback, once without and once with an API key. The document is the one the
server serves (its ``servers`` entry is the address it was fetched from). ``make schemathesis`` runs it longer.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from models.checkpoint import load_checkpoint, save_checkpoint
from tests.app.fakes import fake_operating_points
from tests.server_process import Server, running_server

KEY = "fuzz-key-0123"
# torch backend: no OpenVINO export at start-up (minutes on a busy machine); no batching wait
FAST = {"CHEXNET_MAX_WAIT_MS": "0", "CHEXNET_BACKEND": "torch"}
EXAMPLES = int(os.environ.get("CHEXNET_SCHEMATHESIS_EXAMPLES", "8"))  # per operation; make schemathesis: more


@pytest.fixture(scope="module")
def with_points(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model with operating points, so /predict's findings are checked against the schema too."""
    checkpoint = load_checkpoint(tiny_checkpoint)
    checkpoint.operating_points = fake_operating_points(temperature=1.5)
    return save_checkpoint(checkpoint, tmp_path_factory.mktemp("points") / "tiny-points.pt")


@pytest.fixture(scope="module")
def open_server(with_points: Path) -> Iterator[Server]:
    with running_server(with_points, timeout=240, **FAST) as running:
        yield running


@pytest.fixture(scope="module")
def keyed_server(with_points: Path) -> Iterator[Server]:
    with running_server(with_points, timeout=240, **FAST, CHEXNET_API_KEY=KEY) as running:
        yield running


def fuzz(server: Server, headers: dict[str, str]) -> list[str]:
    """Run every operation of the document ``server`` serves through schemathesis' default checks; the labels of
    the operations run (a failing check raises, naming the case)."""
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    labels = []
    for result in schema.get_all_operations():
        operation = result.ok()
        labels.append(operation.label)

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case: schemathesis.Case) -> None:
            case.call_and_validate(headers=headers, timeout=60, excluded_checks=_excluded(case))

        check()
    return labels


def _excluded(case: schemathesis.Case) -> list[schemathesis.checks.CheckFunction]:
    """Every default check, except that an upload of schema-valid bytes may be refused: the schema says "a binary
    file of at least one byte", and no schema can say "a chest X-ray"; random bytes are rightly 415 or 422 (both
    declared, with the error body, and the other checks still hold those answers to the document)."""
    uploads = case.operation.method.upper() == "POST" and case.operation.path in ("/predict", "/gradcam")
    return [schemathesis.checks.positive_data_acceptance] if uploads else []


OPERATIONS = ["GET /healthz", "GET /readyz", "POST /predict", "POST /gradcam", "GET /model", "GET /metrics"]


def test_api_without_a_key_conforms_to_its_schema(open_server: Server) -> None:
    assert fuzz(open_server, {}) == OPERATIONS


def test_api_with_a_key_conforms_to_its_schema(keyed_server: Server) -> None:
    assert fuzz(keyed_server, {"X-API-Key": KEY}) == OPERATIONS


def test_the_key_is_declared_only_when_configured(open_server: Server, keyed_server: Server) -> None:
    import httpx

    bare, keyed = (httpx.get(f"{s.url}/openapi.json", timeout=30).json() for s in (open_server, keyed_server))
    assert "securitySchemes" not in bare["components"]
    assert not any("security" in op for path in bare["paths"].values() for op in path.values())
    assert keyed["components"]["securitySchemes"] == {
        "APIKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key",
                         "description": "needed when CHEXNET_API_KEY is set"}
    }  # fmt: skip
    secured = {path for path, ops in keyed["paths"].items() for op in ops.values() if "security" in op}
    assert secured == {"/predict", "/gradcam", "/model", "/metrics"}
    assert bare["servers"] == [{"url": open_server.url}]
    assert f"curl -F file=@xray.png {open_server.url}/predict" in bare["info"]["description"]
