"""Answers that arrive: a response sent before the request's body is all read completes only after the rest of the
body has been read and discarded, up to a byte bound and a deadline.

Why: a server that closes a TCP connection with unread data in its receive buffer makes the kernel send a reset
(RFC 1122, 4.2.2.13; RFC 7230, 6.6 describes the "TCP reset problem"). A client still sending its upload then
sees a connection error instead of the 503 (with ``Retry-After``) or 413 that was already on its way. So the
response (status, headers, the whole JSON body, with its Content-Length) is sent at once, and only its end is
held back while the body is drained; then the connection closes cleanly.

Not drained: a request with ``Expect: 100-continue`` whose body was never asked for (the client sends nothing
after a final answer, RFC 9110 10.1.1), a body beyond ``max_bytes`` more, or one still arriving at the deadline:
then the connection closes as before.
"""

from __future__ import annotations

import asyncio
import logging

from starlette.types import Message, Receive, Scope, Send

logger = logging.getLogger(__name__)

DRAIN_SECONDS = 5.0  # the most a refused request's body is read for, from the refusal


class BodyDrain:
    """``receive`` and ``send`` for one request: ``receive`` notes how far the body has arrived; ``send`` holds back
    the end of a response sent before that, drains the body (see the module docstring), then ends it."""

    def __init__(self, scope: Scope, receive: Receive, send: Send, max_bytes: int, deadline: float) -> None:
        """``deadline``: event-loop time after which nothing more is read; ``max_bytes``: the most drained."""
        self._receive, self._send = receive, send
        self.max_bytes, self.deadline = max_bytes, deadline
        headers = dict(scope.get("headers", []))
        self._expects_continue = headers.get(b"expect", b"").lower() == b"100-continue"
        self.asked = False  # receive was called: a 100-continue client has been told to send
        self.complete = False  # the body has all arrived (or the client went away)

    async def receive(self) -> Message:
        self.asked = True
        message = await self._receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            self.complete = True
        return message

    async def send(self, message: Message) -> None:
        if message["type"] != "http.response.body" or message.get("more_body", False) or not self._should_drain():
            await self._send(message)
            return
        await self._send({**message, "more_body": True})
        await self._drain()
        await self._send({"type": "http.response.body", "body": b"", "more_body": False})

    def _should_drain(self) -> bool:
        return not self.complete and (self.asked or not self._expects_continue)

    async def _drain(self) -> None:
        drained = 0
        try:
            async with asyncio.timeout_at(self.deadline):
                while not self.complete and drained <= self.max_bytes:
                    message = await self.receive()
                    drained += len(message.get("body", b""))
        except TimeoutError:
            logger.debug("stopped draining a refused upload at the deadline")
