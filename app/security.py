"""Optional API key: with CHEXNET_API_KEY set, model routes need a matching X-API-Key header."""

from __future__ import annotations

import hmac

from fastapi import Request, Security
from fastapi.security import APIKeyHeader

from app.errors import ApiError

api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="needed when CHEXNET_API_KEY is set")


def require_api_key(request: Request, supplied: str | None) -> None:
    """Constant-time comparison; the key is never logged or echoed."""
    expected = request.app.state.settings.api_key
    if expected is None:
        return
    if supplied is None or not hmac.compare_digest(supplied.encode(), expected.get_secret_value().encode()):
        raise ApiError(401, "unauthorized", "a valid X-API-Key header is required", {"WWW-Authenticate": "APIKey"})


async def check_api_key(request: Request, supplied: str | None = Security(api_key_header)) -> None:
    """FastAPI dependency form of ``require_api_key``."""
    require_api_key(request, supplied)
