"""Plain ASGI wrappers (not BaseHTTPMiddleware, which misses 413s and 500s): disclaimer, body limit, metrics."""

from __future__ import annotations

import json
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


class _BodyTooLargeError(Exception):
    pass


class BodyLimitMiddleware:
    """413 once the request body passes ``max_bytes`` — by Content-Length up front, or counted as it streams."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    def _reply_413(self) -> list[Message]:
        mib = self.max_bytes / (1024 * 1024)
        body = json.dumps({"detail": f"upload larger than the {mib:g} MiB limit", "code": "payload_too_large"})
        return [
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"connection", b"close")],
            },
            {"type": "http.response.body", "body": body.encode()},
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            for message in self._reply_413():
                await send(message)
            return
        state = {"received": 0, "started": False, "refused": False}

        async def counting_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                state["received"] += len(message.get("body", b""))
                if state["received"] > self.max_bytes:
                    if not state["started"]:  # answer now; whatever the app sends afterwards is dropped
                        state["refused"] = True
                        for reply in self._reply_413():
                            await send(reply)
                    raise _BodyTooLargeError
            return message

        async def guarded_send(message: Message) -> None:
            if state["refused"]:
                return
            if message["type"] == "http.response.start":
                state["started"] = True
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except _BodyTooLargeError:
            if not state["refused"]:
                raise


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

        try:
            await self.app(scope, receive, record_status)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.telemetry.on_request(template, status["code"], time.perf_counter() - start)
