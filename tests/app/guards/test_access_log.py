"""One access line per request (route template, never the raw path or query) and X-Request-ID on every answer."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator

import httpx
import pytest

from app.errors import OverloadedError
from app.guards.middleware import ACCESS_LOGGER, request_id_from
from tests.app.fakes import FakePredictor, client_for
from tests.app.test_api import upload

UUID = "123e4567-e89b-12d3-a456-426614174000"
GENERATED = re.compile(r"[0-9a-f]{32}")


@pytest.fixture
def access(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """The access log, captured at INFO."""
    with caplog.at_level(logging.INFO, logger=ACCESS_LOGGER):
        yield caplog


def lines(access: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """The access lines, less client_for's polls of /readyz."""
    return [r for r in access.records if r.name == ACCESS_LOGGER and "route=/readyz" not in r.getMessage()]


def test_a_prediction_is_one_line_with_its_bytes(access: pytest.LogCaptureFixture) -> None:
    with client_for(FakePredictor()) as client:
        response = client.post("/predict", files=upload(), headers={"X-Request-ID": UUID})
    assert response.status_code == 200
    assert response.headers["x-request-id"] == UUID
    (record,) = lines(access)
    sent = len(response.request.read())
    assert record.getMessage() == (
        f"id={UUID} method=POST route=/predict status=200 ms={record.latency_ms:.1f} in={sent} "  # type: ignore[attr-defined]
        f"out={len(response.content)}"
    )
    assert (record.request_id, record.route, record.status, record.bytes_in, record.bytes_out) == (  # type: ignore[attr-defined]
        UUID, "/predict", 200, sent, len(response.content)
    )  # fmt: skip
    assert record.latency_ms > 0  # type: ignore[attr-defined]
    assert record.levelno == logging.INFO


def test_every_answer_has_a_request_id_and_a_line(access: pytest.LogCaptureFixture) -> None:
    with client_for(FakePredictor(error=OverloadedError()), max_upload_bytes=64 * 1024) as client:
        responses = {
            "healthz": client.get("/healthz"),
            "unmatched": client.get("/patients/John-Doe?name=Jane"),
            "too large": client.post("/predict", files=upload(b"\0" * (65 * 1024))),  # refused before routing
            "invalid": client.post("/gradcam?pathology=John-Doe", files=upload()),
            "overloaded": client.post("/predict", files=upload()),
        }
    assert {name: r.status_code for name, r in responses.items()} == {
        "healthz": 200, "unmatched": 404, "too large": 413, "invalid": 422, "overloaded": 503,
    }  # fmt: skip
    ids = [r.headers["x-request-id"] for r in responses.values()]
    assert all(GENERATED.fullmatch(i) for i in ids) and len(set(ids)) == len(ids)
    logged = [(r.request_id, r.method, r.route, r.status, r.bytes_in) for r in lines(access)]  # type: ignore[attr-defined]
    assert logged == [
        (ids[0], "GET", "/healthz", 200, 0),
        (ids[1], "GET", "unmatched", 404, 0),
        # refused from Content-Length; the body is then drained (app.guards.drain), never used
        (ids[2], "POST", "/predict", 413, len(responses["too large"].request.read())),
        (ids[3], "POST", "/gradcam", 422, len(responses["invalid"].request.read())),
        (ids[4], "POST", "/predict", 503, len(responses["overloaded"].request.read())),
    ]
    text = "\n".join(r.getMessage() for r in access.records if r.name != "httpx")  # httpx: the test's client
    assert "John" not in text and "Jane" not in text and "patients" not in text


def test_a_500_is_logged_with_its_request_id(access: pytest.LogCaptureFixture) -> None:
    with client_for(FakePredictor(error=RuntimeError("boom"))) as client:
        response = client.post("/predict", files=upload())
    assert response.status_code == 500
    (record,) = lines(access)
    assert (record.status, record.request_id) == (500, response.headers["x-request-id"])  # type: ignore[attr-defined]


def test_an_unusual_method_is_not_logged_as_sent(access: pytest.LogCaptureFixture) -> None:
    with client_for(FakePredictor()) as client:
        client.request("JOHNDOE", "/healthz")
    assert [r.method for r in lines(access)] == ["OTHER"]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("incoming", "kept"),
    [
        (UUID, True),
        ("0af7651916cd43dd8448eb211c80319c", True),  # a W3C trace id, nginx's $request_id
        ("0AF7651916CD43DD", True),
        ("John-Doe-1960-01-01", False),  # free text could put a name or a record number in the log
        ("12345678", False),  # too short: a record number, say
        ("0af7651916cd43dd8448eb211c80319c0af7651916cd43dd8448eb211c80319c0", False),  # over 64
        ("----------------", False),
        ("0af76519 16cd43dd8448", False),
        ("", False),
    ],
)
def test_incoming_request_ids_are_kept_only_when_well_formed(incoming: str, kept: bool) -> None:
    found = request_id_from([(b"x-request-id", incoming.encode())])
    assert (found == incoming) is kept
    assert kept or GENERATED.fullmatch(found)


def test_a_response_never_has_two_request_ids() -> None:
    with client_for(FakePredictor()) as client:
        response = client.get("/healthz", headers={"X-Request-ID": "not-hex"})
    assert response.headers.get_list("x-request-id") == [response.headers["x-request-id"]]
    assert GENERATED.fullmatch(response.headers["x-request-id"])
    assert isinstance(response, httpx.Response)
