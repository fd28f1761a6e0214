"""Optional API key: with CHEXNET_API_KEY set, the routes declared ``guarded(api_key=True, ...)``
(``app.guards.route_guards``) need a matching X-API-Key header.

Checked twice on purpose, by the same function: by ``ApiKeyMiddleware`` before the request body is read (an
unauthenticated client cannot make the server spool a 20 MiB upload), and by the route dependency, which also
documents the scheme in OpenAPI (``app.openapi`` keeps it there only when a key is configured).
"""

from __future__ import annotations

import asyncio
import hmac
from typing import TYPE_CHECKING

from fastapi import Request, Security
from fastapi.security import APIKeyHeader
from pydantic import SecretStr
from starlette.types import ASGIApp, Receive, Scope, Send

from app.errors import ApiError, error_response
from app.guards.drain import DRAIN_SECONDS, BodyDrain

if TYPE_CHECKING:  # route_guards imports this module for check_api_key
    from app.guards.route_guards import RouteGuards

api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="needed when CHEXNET_API_KEY is set")
_UNAUTHORIZED = (401, "unauthorized", "a valid X-API-Key header is required")


def key_matches(expected: SecretStr | None, supplied: str | None) -> bool:
    """True when no key is configured, or the supplied one matches (constant-time; never logged)."""
    if expected is None:
        return True
    return supplied is not None and hmac.compare_digest(supplied.encode(), expected.get_secret_value().encode())


async def check_api_key(request: Request, supplied: str | None = Security(api_key_header)) -> None:
    """FastAPI dependency: 401 unless the key matches."""
    if not key_matches(request.app.state.settings.api_key, supplied):
        raise ApiError(*_UNAUTHORIZED, {"WWW-Authenticate": "APIKey"})


class ApiKeyMiddleware:
    """Answers 401 for guarded paths before the body is read."""

    def __init__(self, app: ASGIApp, expected: SecretStr | None, guards: RouteGuards, max_drain_bytes: int) -> None:
        """``guards``: which routes need the key; ``max_drain_bytes``: the most of a refused body read (drain)."""
        self.app, self.expected, self.guards, self.max_drain_bytes = app, expected, guards, max_drain_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.expected is None or not self.guards.needs_key(scope["path"]):
            await self.app(scope, receive, send)
            return
        supplied = dict(scope.get("headers", [])).get(b"x-api-key")
        if key_matches(self.expected, supplied.decode("latin-1") if supplied is not None else None):
            await self.app(scope, receive, send)
            return
        # As admission's refusals: the API's error shape, the body drained (never used), the connection closed.
        headers = {"WWW-Authenticate": "APIKey", "Connection": "close"}
        deadline = asyncio.get_running_loop().time() + DRAIN_SECONDS
        drain = BodyDrain(scope, receive, send, self.max_drain_bytes, deadline)
        await error_response(*_UNAUTHORIZED, headers)(scope, drain.receive, drain.send)
