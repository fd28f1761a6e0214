"""Admission before the body: an upload is refused or counted from its headers alone, then timed while it arrives.

A request to an upload route (declared with ``guarded(upload=True, ...)``, ``app.guards.route_guards``) passes
four checks before a byte of its body is read:

1. the model is ready (else 503 ``not_ready``);
2. the model's queue holds fewer than ``CHEXNET_QUEUE_SIZE`` inferences and fewer than ``CHEXNET_UPLOAD_BACKLOG``
   admitted requests are outside it (receiving, waiting for the pool, decoding or rendering), else 503
   ``overloaded`` with ``Retry-After``;
3. a declared ``Content-Length`` is within ``CHEXNET_MAX_UPLOAD_BYTES`` (else 413). A body without one is counted
   as it streams, and refused with the same 413 once it passes the limit. (Starlette's own body limit was tried:
   it replaces the app's JSON 413 with a plain-text one, outside the API's error shape.)
4. its ``Content-Encoding`` is absent or ``identity`` (else 415 ``unsupported_content_encoding`` naming the
   coding, with ``Accept-Encoding: identity``): a compressed upload is refused, not decoded, so the upload limit
   is always the size of the bytes the decoder reads (docs/structure-app.md).

A refusal, like any answer sent before the body has all arrived, is completed only after the rest of the body is
drained (``app.guards.drain``), so that it reaches a client still sending.

An admitted request counts toward the backlog from that moment (so a burst cannot all pass before any is
counted) until it enters the model's queue, and again after it leaves it, until its response is sent. Its body
must have arrived within ``CHEXNET_UPLOAD_TIMEOUT_S`` of admission, else 408 ``upload_timeout``: a client sending
a byte a second holds a connection and a backlog place for at most that long.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from typing import Protocol

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import (
    ApiError,
    NotReadyError,
    OverloadedError,
    UnsupportedContentEncodingError,
    error_response,
    payload_too_large,
)
from app.guards.drain import DRAIN_SECONDS, BodyDrain
from app.guards.route_guards import RouteGuards

ADMISSION_KEY = "chexnet.admission"


_CODINGS = re.compile(rb"[a-z0-9!#$%&'*+.^_`|~-]{1,32}(?:[ \t]*,[ \t]*[a-z0-9!#$%&'*+.^_`|~-]{1,32}){0,3}")


class UploadTimeoutError(ApiError):
    def __init__(self, seconds: float) -> None:
        super().__init__(
            408, "upload_timeout", f"the upload did not arrive within {seconds:g} s", {"Connection": "close"}
        )


class AdmissionSource(Protocol):
    """What admission asks of the service."""

    @property
    def ready(self) -> bool: ...

    def queue_full(self) -> bool: ...


@dataclass
class Backlog:
    """Admitted requests outside the model's queue; ``limit`` is ``CHEXNET_UPLOAD_BACKLOG``."""

    limit: int
    count: int = 0


@dataclass
class Admission:
    """One admitted request's place in the backlog: left while its inference is queued or running."""

    backlog: Backlog
    counted: bool = field(default=True)

    def leave(self) -> None:
        if self.counted:
            self.counted = False
            self.backlog.count -= 1

    def rejoin(self) -> None:
        if not self.counted:
            self.counted = True
            self.backlog.count += 1


def admission_of(scope: Scope) -> Admission | None:
    """The request's admission, when it came through :class:`AdmissionMiddleware`."""
    admission: Admission | None = scope.get("state", {}).get(ADMISSION_KEY)
    return admission


class AdmissionMiddleware:
    """Refuses or admits upload requests from their headers; answers 408 when the body is too slow."""

    def __init__(
        self,
        app: ASGIApp,
        service: AdmissionSource,
        max_bytes: int,
        upload_timeout_s: float,
        backlog: Backlog,
        guards: RouteGuards,
    ) -> None:
        """``guards``: which routes take an upload, read from the routes' declarations."""
        self.app, self.service, self.max_bytes = app, service, max_bytes
        self.upload_timeout_s, self.backlog, self.guards = upload_timeout_s, backlog, guards

    def _refusal(self, scope: Scope) -> ApiError | None:
        if not self.service.ready:
            return NotReadyError()
        if self.service.queue_full() or self.backlog.count >= self.backlog.limit:
            return OverloadedError()
        declared = dict(scope.get("headers", [])).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            return payload_too_large(self.max_bytes)
        coding = dict(scope.get("headers", [])).get(b"content-encoding", b"").strip().lower()
        if coding not in (b"", b"identity"):
            # the coding is named only when it is a plain token list (RFC 9110 8.4), never other client text
            named = coding.decode("latin-1") if _CODINGS.fullmatch(coding) else None
            return UnsupportedContentEncodingError(named)
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.guards.takes_upload(scope["path"], scope["method"]):
            await self.app(scope, receive, send)
            return
        now = asyncio.get_running_loop().time()
        refusal = self._refusal(scope)
        if refusal is not None:
            headers = {**(refusal.headers or {}), "Connection": "close"}  # the body is drained, never used
            drain = BodyDrain(scope, receive, send, self.max_bytes, now + min(DRAIN_SECONDS, self.upload_timeout_s))
            await error_response(refusal.status, refusal.code, refusal.detail, headers)(
                scope, drain.receive, drain.send
            )
            return
        self.backlog.count += 1
        admission = Admission(self.backlog)
        scope.setdefault("state", {})[ADMISSION_KEY] = admission
        deadline = now + self.upload_timeout_s
        drain = BodyDrain(scope, receive, send, self.max_bytes, deadline)  # an early answer (413, 422) arrives too
        try:
            await self.app(scope, self._by_deadline(drain.receive, deadline), drain.send)
        finally:
            admission.leave()

    def _by_deadline(self, receive: Receive, deadline: float) -> Receive:
        """``receive`` with the upload deadline and the streamed byte count (raised as API errors)."""
        arrived, received = False, 0

        async def receive_by_deadline() -> Message:
            nonlocal arrived, received
            if arrived:  # the body is in; later calls wait for a disconnect, which has no deadline
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise UploadTimeoutError(self.upload_timeout_s) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise payload_too_large(self.max_bytes)
            arrived = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        return receive_by_deadline
