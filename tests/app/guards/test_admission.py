"""Admission from the headers alone, the backlog count, the upload deadline, the streamed size limit, and the
drain that lets an early answer arrive."""

from __future__ import annotations

import asyncio
import json
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi import APIRouter
from starlette.types import Message, Receive, Scope, Send

from app.errors import ApiError
from app.guards.admission import AdmissionMiddleware, Backlog, admission_of
from app.guards.route_guards import RouteGuards, guarded
from tests.server_process import running_server

LIMIT = 1000


@dataclass
class FakeService:
    ready: bool = True
    full: bool = False

    def queue_full(self) -> bool:
        return self.full


def scope_for(
    path: str = "/predict", length: int | None = 10, method: str = "POST", extra: tuple[tuple[bytes, bytes], ...] = ()
) -> Scope:
    headers = [(b"content-length", str(length).encode())] if length is not None else []
    return {"type": "http", "path": path, "method": method, "headers": [*headers, *extra]}


def upload_guards() -> RouteGuards:
    """/predict declared as an upload route, /model as a keyed one: as the app's router declares them."""
    router = APIRouter()
    router.add_api_route("/predict", lambda: None, methods=["POST"], **guarded(upload=True, api_key=True))
    router.add_api_route("/model", lambda: None, methods=["GET"], **guarded(upload=False, api_key=True))
    router.add_api_route("/healthz", lambda: None, methods=["GET"], **guarded(upload=False, api_key=False))
    guards = RouteGuards()
    guards.load(router.routes)
    return guards


class Body:
    """An ASGI ``receive`` giving ``chunks`` chunks of ``size`` bytes (the last without more_body); counts them."""

    def __init__(self, chunks: int, size: int = 100) -> None:
        self.left, self.size, self.read = chunks, size, 0

    async def __call__(self) -> Message:
        self.left -= 1
        self.read += 1
        return {"type": "http.request", "body": b"x" * self.size, "more_body": self.left > 0}


class Recorder:
    """An ASGI ``send`` that keeps the status, headers and JSON body."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def __call__(self, message: Message) -> None:
        self.messages.append(message)

    @property
    def status(self) -> int:
        return int(self.messages[0]["status"])

    @property
    def headers(self) -> dict[str, str]:
        return {k.decode(): v.decode() for k, v in self.messages[0]["headers"]}

    @property
    def body(self) -> dict[str, Any]:
        return dict(json.loads(b"".join(m.get("body", b"") for m in self.messages[1:])))


async def never_called() -> Message:
    raise AssertionError("the body was read")


async def reading_app(scope: Scope, receive: Receive, send: Send) -> None:
    """Reads the whole body, then answers 200 with the byte count; an ApiError becomes its status (as FastAPI)."""
    total = 0
    try:
        while True:
            message = await receive()
            total += len(message.get("body", b""))
            if not message.get("more_body", False):
                break
    except ApiError as error:
        await send({"type": "http.response.start", "status": error.status, "headers": []})
        await send({"type": "http.response.body", "body": json.dumps({"code": error.code}).encode()})
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": json.dumps({"bytes": total}).encode()})


def middleware(service: FakeService, backlog: Backlog, app: Any = reading_app, timeout: float = 5.0) -> Any:
    return AdmissionMiddleware(
        app, service=service, max_bytes=LIMIT, upload_timeout_s=timeout, backlog=backlog, guards=upload_guards()
    )


@pytest.mark.parametrize(
    ("service", "backlog", "length", "status", "code"),
    [
        (FakeService(ready=False), Backlog(4), 10, 503, "not_ready"),
        (FakeService(full=True), Backlog(4), 10, 503, "overloaded"),
        (FakeService(), Backlog(4, count=4), 10, 503, "overloaded"),
        (FakeService(), Backlog(4), LIMIT + 1, 413, "payload_too_large"),
    ],
)
def test_refused_from_the_headers_and_the_body_drained_before_the_answer_ends(
    service: FakeService, backlog: Backlog, length: int, status: int, code: str
) -> None:
    """The app never sees the body; the answer is sent whole, then the body is read to its end, then it ends."""
    sent, body = Recorder(), Body(chunks=3)
    asyncio.run(middleware(service, backlog, app=never_called)(scope_for(length=length), body, sent))
    assert sent.status == status and sent.body["code"] == code
    assert sent.headers["connection"] == "close"
    assert body.read == 3
    assert [m.get("more_body", False) for m in sent.messages[1:]] == [True, False]
    if status == 503:
        assert sent.headers["retry-after"] == "1"
    assert backlog.count == backlog.limit * (backlog.count == backlog.limit)  # unchanged: nothing was admitted


def test_a_refused_100_continue_upload_is_not_waited_for() -> None:
    """A client that asked ``Expect: 100-continue`` sends nothing after a final answer: the body is not drained."""
    sent = Recorder()
    scope = scope_for(extra=((b"expect", b"100-continue"),))
    asyncio.run(middleware(FakeService(full=True), Backlog(4), app=never_called)(scope, never_called, sent))
    assert sent.status == 503 and [m.get("more_body", False) for m in sent.messages[1:]] == [False]


def test_draining_stops_at_the_byte_bound() -> None:
    sent, body = Recorder(), Body(chunks=1000, size=300)
    asyncio.run(middleware(FakeService(full=True), Backlog(4), app=never_called)(scope_for(), body, sent))
    assert sent.status == 503 and body.read == 4  # 1,200 bytes: past LIMIT (1,000), then the answer ends


@pytest.mark.parametrize(("coding", "named"), [(b"gzip", "'gzip'"), (b"GZip, br", "'gzip, br'"), (b"x\x01y", None)])
def test_a_content_encoding_other_than_identity_gets_415(coding: bytes, named: str | None) -> None:
    sent = Recorder()
    scope = scope_for(extra=((b"content-encoding", coding),))
    asyncio.run(middleware(FakeService(), Backlog(4), app=never_called)(scope, Body(1), sent))
    assert sent.status == 415 and sent.body["code"] == "unsupported_content_encoding"
    assert sent.headers["accept-encoding"] == "identity"
    lead = f"Content-Encoding {named}" if named else "this Content-Encoding"
    assert sent.body["detail"].startswith(lead + " is not accepted")


def test_identity_is_accepted() -> None:
    sent = Recorder()
    scope = scope_for(extra=((b"content-encoding", b"identity"),))
    asyncio.run(middleware(FakeService(), Backlog(4))(scope, Body(1), sent))
    assert sent.status == 200


def test_other_routes_and_methods_pass_untouched() -> None:
    service, backlog = FakeService(ready=False), Backlog(1, count=1)
    for scope in (scope_for("/model", None, "GET"), scope_for("/predict", None, "GET"), scope_for("/healthz")):
        sent = Recorder()

        async def body() -> Message:
            return {"type": "http.request", "body": b"", "more_body": False}

        asyncio.run(middleware(service, backlog)(scope, body, sent))
        assert sent.status == 200


def test_a_request_is_counted_from_admission_until_it_is_queued_and_again_until_it_ends() -> None:
    backlog = Backlog(2)
    seen: list[int] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        admission = admission_of(scope)
        assert admission is not None
        seen.append(backlog.count)  # counted before a byte of the body is read
        await receive()
        admission.leave()  # Service.infer: while queued, the model's queue counts it
        seen.append(backlog.count)
        admission.rejoin()
        seen.append(backlog.count)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    async def body() -> Message:
        return {"type": "http.request", "body": b"x", "more_body": False}

    asyncio.run(middleware(FakeService(), backlog, app)(scope_for(), body, Recorder()))
    assert seen == [1, 0, 1] and backlog.count == 0


def test_a_burst_is_counted_as_it_is_admitted() -> None:
    """Ten requests arrive at once, none has sent its body: two are admitted, eight refused, none read."""
    backlog = Backlog(2)
    release = asyncio.Event()

    async def run() -> list[int]:
        async def slow_body() -> Message:
            await release.wait()
            return {"type": "http.request", "body": b"x", "more_body": False}

        recorders = [Recorder() for _ in range(10)]
        calls = [middleware(FakeService(), backlog)(scope_for(), slow_body, sent) for sent in recorders]
        tasks = [asyncio.create_task(call) for call in calls]
        await asyncio.sleep(0.05)
        assert backlog.count == 2
        release.set()
        await asyncio.gather(*tasks)
        return [sent.status for sent in recorders]

    statuses = asyncio.run(run())
    assert sorted(statuses) == [200] * 2 + [503] * 8
    assert backlog.count == 0


def test_a_body_that_does_not_arrive_in_time_gets_408() -> None:
    backlog = Backlog(4)

    async def trickle() -> Message:
        await asyncio.sleep(0.03)
        return {"type": "http.request", "body": b"x", "more_body": True}

    sent = Recorder()
    asyncio.run(middleware(FakeService(), backlog, timeout=0.2)(scope_for(length=None), trickle, sent))
    assert sent.status == 408 and sent.body["code"] == "upload_timeout"
    assert backlog.count == 0


def test_a_body_without_length_is_counted_as_it_streams() -> None:
    sent, body = Recorder(), Body(chunks=5, size=600)
    asyncio.run(middleware(FakeService(), Backlog(4))(scope_for(length=None), body, sent))
    assert sent.status == 413 and sent.body["code"] == "payload_too_large"
    assert body.read == 4  # 2 chunks to pass the limit, then 2 drained (1,200 bytes, past the bound) before the end


def test_the_deadline_ends_with_the_body() -> None:
    """After the last body chunk, receive waits for a disconnect: no deadline applies to that."""
    messages = iter([{"type": "http.request", "body": b"x", "more_body": False}, {"type": "http.disconnect"}])

    async def receive() -> Message:
        message = next(messages)
        if message["type"] == "http.disconnect":
            await asyncio.sleep(0.3)
        return message

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        assert (await receive())["type"] == "http.disconnect"
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    sent = Recorder()
    asyncio.run(middleware(FakeService(), Backlog(4), app, timeout=0.1)(scope_for(), receive, sent))
    assert sent.status == 200


def test_a_slow_client_gets_408_from_the_real_server(tiny_checkpoint: Path) -> None:
    with running_server(tiny_checkpoint, CHEXNET_UPLOAD_TIMEOUT_S="1") as server:
        host, port = server.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            head = (
                "POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                "Content-Length: 100000\r\n\r\n--b\r\n"
            )
            sock.sendall(head.encode())  # then nothing more: the body never arrives
            chunks = []
            while chunk := sock.recv(65536):  # until the server closes the connection
                chunks.append(chunk)
            reply = b"".join(chunks).decode("latin-1")
        status_line, _, rest = reply.partition("\r\n")
        assert status_line == "HTTP/1.1 408 Request Timeout"
        assert '"code":"upload_timeout"' in rest and "x-disclaimer" in rest.lower()
