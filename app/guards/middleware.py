"""Plain ASGI wrappers (not BaseHTTPMiddleware, which misses 413s and 500s): disclaimer, metrics, access log."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.guards.telemetry import Telemetry


class DisclaimerMiddleware:
    """Adds ``X-Disclaimer`` to every HTTP response, including those of the server-error handler."""

    def __init__(self, app: ASGIApp, text: str) -> None:
        self.app, self.header = app, (b"x-disclaimer", text.encode("latin-1"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_header(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), self.header]
            await send(message)

        await self.app(scope, receive, send_with_header)


def route_label(scope: Scope, templates: frozenset[str]) -> str:
    """The route template that served the request; for one answered before routing (admission, the API key), its
    path when that is one of ``templates``; else ``unmatched``. Never a raw path, which could hold anything."""
    route = getattr(scope.get("route"), "path", None)
    if isinstance(route, str):
        return route
    return str(scope["path"]) if scope["path"] in templates else "unmatched"


class MetricsMiddleware:
    """Counts requests by route template (never the raw path) and status, and times them."""

    def __init__(self, app: ASGIApp, telemetry: Telemetry, templates: Iterable[str] = ()) -> None:
        """``templates``: the application's route paths, for requests answered before routing (admission)."""
        self.app, self.telemetry, self.templates = app, telemetry, frozenset(templates)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = {"code": 500}
        start = time.perf_counter()

        async def record_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        self.telemetry.in_progress.inc()
        try:
            await self.app(scope, receive, record_status)
        finally:
            self.telemetry.in_progress.dec()
            self.telemetry.on_request(route_label(scope, self.templates), status["code"], time.perf_counter() - start)


ACCESS_LOGGER = "chexnet.access"
REQUEST_ID_HEADER = b"x-request-id"
# An incoming X-Request-ID is kept only when it is 16 to 64 hex digits, hyphens allowed: a UUID, nginx's
# $request_id, a W3C trace id. A free-form id could carry a name or a record number into the log; such an id is
# replaced by a new one (and never logged).
_REQUEST_ID = re.compile(r"[0-9A-Fa-f-]{16,64}")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def request_id_from(headers: Iterable[tuple[bytes, bytes]]) -> str:
    """The client's X-Request-ID when well formed (see ``_REQUEST_ID``), else a new one: 32 hex digits (uuid4)."""
    for name, value in headers:
        if name.lower() == REQUEST_ID_HEADER:
            text = value.decode("latin-1")
            if _REQUEST_ID.fullmatch(text) and sum(c != "-" for c in text) >= 16:
                return text
            break
    return uuid.uuid4().hex


class AccessLogMiddleware:
    """One line per request on the ``chexnet.access`` logger, and ``X-Request-ID`` on every response.

    The line (logfmt) holds the request id, the method, the route template (``/gradcam``, never the raw path or the
    query, which can hold what a client typed; ``unmatched`` for any other path), the status (0 when no response
    was sent), the latency in ms (arrival to the last byte sent) and the body bytes received and sent. The same
    fields are on the record as ``extra`` for structured handlers. Wraps the whole stack, so 500s are logged too.
    """

    def __init__(self, app: ASGIApp, templates: Iterable[str] = ()) -> None:
        """``templates``: the application's route paths, for requests answered before routing (admission)."""
        self.app, self.templates = app, frozenset(templates)
        self.logger = logging.getLogger(ACCESS_LOGGER)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_from(scope["headers"])
        scope.setdefault("state", {})["request_id"] = request_id  # request.state.request_id for other code
        seen = {"status": 0, "in": 0, "out": 0}
        start = time.perf_counter()

        async def counting_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                seen["in"] += len(message.get("body", b""))
            return message

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                seen["status"] = message["status"]
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != REQUEST_ID_HEADER]
                message["headers"] = [*headers, (REQUEST_ID_HEADER, request_id.encode("latin-1"))]
            elif message["type"] == "http.response.body":
                seen["out"] += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, counting_receive, send_with_id)
        finally:
            self._log(scope, request_id, seen, (time.perf_counter() - start) * 1000)

    def _log(self, scope: Scope, request_id: str, seen: dict[str, int], ms: float) -> None:
        route = route_label(scope, self.templates)
        method = scope["method"] if scope["method"] in _METHODS else "OTHER"
        fields = {"request_id": request_id, "method": method, "route": route, "status": seen["status"],
                  "latency_ms": round(ms, 1), "bytes_in": seen["in"], "bytes_out": seen["out"]}  # fmt: skip
        self.logger.info("id=%s method=%s route=%s status=%d ms=%.1f in=%d out=%d", *fields.values(), extra=fields)
