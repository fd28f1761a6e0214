"""One error shape for the whole API, and the one place that maps domain exceptions to HTTP statuses.

Every error body is ``{"detail": "<message for a person>", "code": "<machine code>"}``. Messages are
written here or by the domain code for a person; exception text is never echoed (it can carry file
paths or patient data), and a 500 says nothing about what went wrong inside.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence

from fastapi import FastAPI, Request
from fastapi.exceptions import HTTPException, RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from models.imaging.errors import InputError, UnsupportedFormatError

logger = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = "1"
NOT_A_FILE_MESSAGE = (
    "'file' must be a file upload: send the X-ray as a multipart/form-data file part with a file name "
    "(for example: curl -F file=@xray.png ...)."
)


_PLAIN_NAME = re.compile(r"[A-Za-z0-9_.\-\[\] ]{1,40}")


def shown_name(name: str) -> str:
    """A form part's or query parameter's name as a message may show it: quoted when it is a short plain name of
    letters, digits and ``_.-[]`` or spaces, else ``an unnamed part``-style placeholder (never other client text)."""
    return f"'{name}'" if _PLAIN_NAME.fullmatch(name) else "(a name with other characters)"


class ApiError(HTTPException):
    """An error the API reports as is: status, machine code, message for a person, optional headers.

    A FastAPI ``HTTPException`` so that one raised while the body is read (``app.guards.admission``) reaches the handler
    as itself: FastAPI turns any other exception during body parsing into a generic 400.
    """

    def __init__(self, status: int, code: str, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(status_code=status, detail=detail, headers=headers)
        self.status, self.code, self.detail, self.headers = status, code, detail, headers or {}


class OverloadedError(ApiError):
    def __init__(self) -> None:
        super().__init__(503, "overloaded", "the server is busy; retry shortly", {"Retry-After": RETRY_AFTER_SECONDS})


class QueueTimeoutError(ApiError):
    def __init__(self) -> None:
        detail = "the request waited too long for the model; retry shortly"
        super().__init__(503, "queue_timeout", detail, {"Retry-After": RETRY_AFTER_SECONDS})


class ClientClosedError(ApiError):
    """The client went away before its answer was computed: nginx's 499, for the access log and /metrics only."""

    def __init__(self) -> None:
        super().__init__(499, "client_closed_request", "the client closed the connection")


class OutOfMemoryError(ApiError):
    def __init__(self) -> None:
        detail = "the server ran out of memory for this request; retry shortly"
        super().__init__(503, "out_of_memory", detail, {"Retry-After": RETRY_AFTER_SECONDS})


class UnknownOperatingPointError(ApiError):
    """``?operating_point=`` names a point the model lacks (the name asked for is not echoed)."""

    def __init__(self, available: tuple[str, ...], suggestion: str | None = None) -> None:
        hint = f"did you mean '{suggestion}'? " if suggestion else ""
        detail = (
            f"unknown operating point; {hint}operating_point must be one of this model's operating points: "
            f"{', '.join(available)}"
            if available
            else "this model has no operating points; leave operating_point out"
        )
        super().__init__(422, "unknown_operating_point", detail)


class UnsupportedContentEncodingError(ApiError):
    """An upload with a ``Content-Encoding`` other than identity: refused, not decoded (docs/structure-app.md)."""

    def __init__(self, coding: str | None) -> None:
        named = f"Content-Encoding {coding!r}" if coding else "this Content-Encoding"
        detail = f"{named} is not accepted: send the upload uncompressed (Content-Encoding: identity, or none)"
        super().__init__(415, "unsupported_content_encoding", detail, {"Accept-Encoding": "identity"})


def payload_too_large(max_bytes: int) -> ApiError:
    mib = max_bytes / (1024 * 1024)
    limit = f"{mib:g} MiB" if mib >= 1 and mib == round(mib, 1) else f"{max_bytes:,} bytes"
    return ApiError(413, "payload_too_large", f"upload larger than the {limit} limit", {"Connection": "close"})


BAD_FORM_MESSAGE = (
    "The request body is not a multipart form this service accepts: one file part named 'file', at most 4 text "
    "fields of at most 16 KiB each."
)
MULTIPLE_FILES_MESSAGE = "Send one X-ray per request: the form has more than one file part."


class NotReadyError(ApiError):
    def __init__(self) -> None:
        super().__init__(503, "not_ready", "the model is loading; retry shortly", {"Retry-After": RETRY_AFTER_SECONDS})


class UnknownQueryParameterError(ApiError):
    """The query has parameters the route does not read (named, as ``shown_name`` shows them, with the accepted)."""

    def __init__(self, unknown: Iterable[str], accepted: Iterable[str]) -> None:
        names = ", ".join(shown_name(name) for name in list(unknown)[:3])
        known = ", ".join(accepted)
        allowed = f"this route accepts {known}" if known else "this route takes no query parameters"
        super().__init__(422, "unknown_query_parameter", f"unknown query parameter {names}; {allowed}")


class UnknownPathologyError(ApiError):
    """``?pathology=`` names none of the model's labels (after ignoring case, spaces and underscores)."""

    def __init__(self, suggestion: str | None, labels: Sequence[str]) -> None:
        hint = f"did you mean {suggestion!r}? " if suggestion else ""
        detail = (
            f"unknown pathology; {hint}use one of this model's {len(labels)} labels ({', '.join(labels)}; case, "
            "spaces and underscores do not matter) or 'all'"
        )
        super().__init__(422, "unknown_pathology", detail)


_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_format",
    422: "validation_error",
    503: "unavailable",
}


def error_response(status: int, code: str, detail: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail, "code": code}, status_code=status, headers=dict(headers or {}))


def _describe_validation(exc: RequestValidationError) -> tuple[str, str]:
    """(code, message) from pydantic's error list, without echoing input values or framework text.

    Query and path parameters keep pydantic's message (it names the allowed values); a body field gets a fixed
    one, since validators of form fields speak in Python types (``Expected UploadFile, received: <class 'str'>``).
    """
    parts = []
    for error in exc.errors()[:3]:
        loc = tuple(str(p) for p in error.get("loc", ()))
        where = ".".join(p for p in loc if p != "body")
        if error.get("type") == "missing":
            parts.append(f"'{where}' is required" + (" (multipart/form-data upload)" if where == "file" else ""))
        elif loc == ("body", "file"):
            return "not_a_file", NOT_A_FILE_MESSAGE
        elif loc[:1] == ("body",):
            parts.append(f"'{where}' is not valid")
        else:
            parts.append(f"'{where}': {error.get('msg', 'invalid value')}")
    return "validation_error", "; ".join(parts) or "invalid request"


async def _on_api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.code, exc.detail, exc.headers)


async def _on_input_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, InputError)
    status = 415 if isinstance(exc, UnsupportedFormatError) else 422
    return error_response(status, exc.code, exc.message)


async def _on_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400 and str(exc.detail).startswith("Too many files"):  # FORM_LIMITS: one file part
        return error_response(422, "multiple_files", MULTIPLE_FILES_MESSAGE)
    if exc.status_code == 400:  # the form parser's own words name its internals; ours name the limits
        return error_response(400, "bad_request", BAD_FORM_MESSAGE)
    code = _STATUS_CODES.get(exc.status_code, "http_error")
    detail = exc.detail if isinstance(exc.detail, str) and exc.status_code < 500 else "request failed"
    return error_response(exc.status_code, code, detail, dict(exc.headers or {}))


async def _on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return error_response(422, *_describe_validation(exc))


async def _on_memory_error(request: Request, exc: Exception) -> JSONResponse:
    logger.error("out of memory on %s", request.url.path)
    error = OutOfMemoryError()
    return error_response(error.status, error.code, error.detail, error.headers)


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    logger.error("unhandled %s on %s", type(exc).__name__, request.url.path)
    return error_response(500, "internal_error", "internal server error")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _on_api_error)
    app.add_exception_handler(InputError, _on_input_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(MemoryError, _on_memory_error)
    app.add_exception_handler(Exception, _on_unexpected)
