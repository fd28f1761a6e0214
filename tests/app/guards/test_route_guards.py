"""Guards come from the routes: a new upload route declared as such is limited, shed, deadline-bound and keyed
without any list being touched; every route of the real app is classified."""

from __future__ import annotations

import asyncio

import pytest
from fastapi import FastAPI, Request
from fastapi.routing import APIRoute

from app.guards.route_guards import RouteGuards, UndeclaredGuardsError, declared_guards, guarded
from app.main import create_app
from app.settings import Settings
from app.uploads import FIELD
from tests.app.fakes import FakePredictor, client_for
from tests.app.test_api import upload

KEY = {"X-API-Key": "k"}


def add_scan_route(app: FastAPI) -> None:
    """A route the app does not have, with a path parameter: declared as an upload route that needs the key."""

    @app.post("/scans/{study}/score", **guarded(upload=True, api_key=True))
    async def score_scan(request: Request, study: str) -> dict[str, int]:
        form = await request.form()
        upload_file = form[FIELD]
        assert not isinstance(upload_file, str)
        return {"bytes": len(await upload_file.read())}


def test_a_new_upload_route_is_limited_shed_and_keyed_from_its_declaration() -> None:
    predictor = FakePredictor()
    app = create_app(Settings(api_key="k", max_upload_bytes=64 * 1024, queue_size=10), predictor)
    add_scan_route(app)
    from fastapi.testclient import TestClient

    with TestClient(app, raise_server_exceptions=False) as client:
        ok = client.post("/scans/7/score", files=upload(b"x" * 100), headers=KEY)
        no_key = client.post("/scans/7/score", files=upload(b"x" * 100))
        too_large = client.post("/scans/7/score", files=upload(b"x" * 65 * 1024), headers=KEY)
        gzip = client.post("/scans/7/score", files=upload(), headers={**KEY, "Content-Encoding": "gzip"})
        predictor.depth = 10  # the model's queue is full
        shed = client.post("/scans/7/score", files=upload(), headers=KEY)
    assert (ok.status_code, ok.json()) == (200, {"bytes": 100})
    assert (no_key.status_code, no_key.json()["code"]) == (401, "unauthorized")
    assert (too_large.status_code, too_large.json()["code"]) == (413, "payload_too_large")
    assert (gzip.status_code, gzip.json()["code"]) == (415, "unsupported_content_encoding")
    assert (shed.status_code, shed.json()["code"], shed.headers["retry-after"]) == (503, "overloaded", "1")


def test_a_new_upload_route_is_deadline_bound() -> None:
    app = create_app(Settings(upload_timeout_s=0.2), FakePredictor())
    add_scan_route(app)
    guards: RouteGuards = app.route_guards  # type: ignore[attr-defined]
    guards.load(app.routes)
    assert guards.takes_upload("/scans/abc/score", "POST") and guards.needs_key("/scans/abc/score")
    assert not guards.takes_upload("/scans/abc/score", "GET") and not guards.takes_upload("/scans/score", "POST")

    async def trickle() -> dict[str, object]:
        await asyncio.sleep(0.05)
        return {"type": "http.request", "body": b"", "more_body": True}

    sent: list[dict[str, object]] = []

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    async def call() -> None:
        headers = [(b"content-type", b"multipart/form-data; boundary=b"), (b"host", b"t")]
        scope = {"type": "http", "method": "POST", "path": "/scans/1/score", "raw_path": b"/scans/1/score",
                 "query_string": b"", "headers": headers, "http_version": "1.1", "scheme": "http",
                 "server": ("t", 80), "client": ("c", 1), "root_path": ""}  # fmt: skip
        app.state.pipeline._warm = True  # ready without a lifespan
        await app(scope, trickle, send)  # type: ignore[arg-type]

    asyncio.run(call())
    assert sent[0]["status"] == 408


def test_every_route_of_the_real_app_is_classified() -> None:
    with client_for(FakePredictor(), api_key="k") as client:
        app = client.app
        assert isinstance(app, FastAPI)
        table = {}
        from fastapi.routing import iter_route_contexts

        for context in iter_route_contexts(app.routes):
            guards = declared_guards(context.original_route)
            assert guards is not None, context.path
            if isinstance(context.original_route, APIRoute):
                table[context.path] = (guards.upload, guards.api_key)
    assert table == {
        "/healthz": (False, False), "/readyz": (False, False), "/predict": (True, True), "/gradcam": (True, True),
        "/model": (False, True), "/metrics": (False, True), "/openapi.json": (False, False), "/": (False, False),
        "/docs": (False, False), "/redoc": (False, False),
    }  # fmt: skip


def test_an_undeclared_api_route_stops_the_app() -> None:
    app = create_app(Settings(), FakePredictor())

    @app.get("/undeclared")
    async def read_undeclared() -> dict[str, str]:
        return {}

    with pytest.raises(UndeclaredGuardsError, match=r"route /undeclared does not declare its guards"):
        app.build_middleware_stack()
