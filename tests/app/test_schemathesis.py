"""The API against its own OpenAPI document (schemathesis, property-based): no 5xx, no undocumented status,
content types and bodies as documented. A real server with a tiny random-weight model, over loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app.main import create_app
from app.settings import Settings
from models.checkpoint import load_checkpoint, save_checkpoint
from tests.app.fakes import FakePredictor, fake_operating_points
from tests.server_process import Server, running_server

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def server(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The tiny model with operating points, so /predict's findings are checked against the schema too."""
    checkpoint = load_checkpoint(tiny_checkpoint)
    checkpoint.operating_points = fake_operating_points(temperature=1.5)
    with_points = save_checkpoint(checkpoint, tmp_path_factory.mktemp("points") / "tiny-points.pt")
    with running_server(with_points, CHEXNET_MAX_WAIT_MS="0") as running:
        yield running


# The document the real server serves is the app's own; built here from the app with a fake engine (no model).
schema = schemathesis.openapi.from_dict(create_app(Settings(), FakePredictor()).openapi())


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_schema(case: schemathesis.Case, server: Server) -> None:
    case.call_and_validate(base_url=server.url, checks=CHECKS, timeout=60)
