"""Admission before the body: an upload is refused or counted from its headers alone, then timed while it arrives.

A request to an upload route (``/predict``, ``/gradcam``) passes three checks before a byte of its body is read:

1. the model is ready (else 503 ``not_ready``);
2. the model's queue holds fewer than ``CHEXNET_QUEUE_SIZE`` inferences and fewer than ``CHEXNET_UPLOAD_BACKLOG``
   admitted requests are outside it (receiving, waiting for the pool, decoding or rendering), else 503
   ``overloaded`` with ``Retry-After``;
3. a declared ``Content-Length`` is within ``CHEXNET_MAX_UPLOAD_BYTES`` (else 413). A body without one is counted
   as it streams, and refused with the same 413 once it passes the limit. (Starlette's own body limit was tried:
   it replaces the app's JSON 413 with a plain-text one, outside the API's error shape.)

An admitted request counts toward the backlog from that moment (so a burst cannot all pass before any is
counted) until it enters the model's queue, and again after it leaves it, until its response is sent. Its body
must have arrived within ``CHEXNET_UPLOAD_TIMEOUT_S`` of admission, else 408 ``upload_timeout``: a client sending
a byte a second holds a connection and a backlog place for at most that long.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Protocol

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import ApiError, NotReadyError, OverloadedError, error_response, payload_too_large

UPLOAD_PATHS = frozenset({"/predict", "/gradcam"})
ADMISSION_KEY = "chexnet.admission"


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
        self, app: ASGIApp, service: AdmissionSource, max_bytes: int, upload_timeout_s: float, backlog: Backlog
    ) -> None:
        self.app, self.service, self.max_bytes = app, service, max_bytes
        self.upload_timeout_s, self.backlog = upload_timeout_s, backlog

    def _refusal(self, scope: Scope) -> ApiError | None:
        if not self.service.ready:
            return NotReadyError()
        if self.service.queue_full() or self.backlog.count >= self.backlog.limit:
            return OverloadedError()
        declared = dict(scope.get("headers", [])).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            return payload_too_large(self.max_bytes)
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in UPLOAD_PATHS or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        refusal = self._refusal(scope)
        if refusal is not None:
            headers = {**(refusal.headers or {}), "Connection": "close"}  # do not wait for a body we will not read
            await error_response(refusal.status, refusal.code, refusal.detail, headers)(scope, receive, send)
            return
        self.backlog.count += 1
        admission = Admission(self.backlog)
        scope.setdefault("state", {})[ADMISSION_KEY] = admission
        try:
            await self.app(scope, self._by_deadline(receive), send)
        finally:
            admission.leave()

    def _by_deadline(self, receive: Receive) -> Receive:
        """``receive`` with the upload deadline and the streamed byte count (raised as API errors)."""
        deadline = asyncio.get_running_loop().time() + self.upload_timeout_s
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
