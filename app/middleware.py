"""Plain ASGI wrappers (not BaseHTTPMiddleware, which misses 413s and 500s): disclaimer, metrics."""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.telemetry import Telemetry


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


class MetricsMiddleware:
    """Counts requests by route template (never the raw path) and status, and times them."""

    def __init__(self, app: ASGIApp, telemetry: Telemetry) -> None:
        self.app, self.telemetry = app, telemetry

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
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.telemetry.on_request(template, status["code"], time.perf_counter() - start)
