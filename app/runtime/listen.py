"""The service's listening sockets, bound before the model loads, so that an address in use is reported at once.

``bind_sockets`` binds one TCP socket per address the host resolves to, as asyncio's ``create_server`` would
(``SO_REUSEADDR``; an IPv6 socket IPv6-only), without listening. A port where another socket listens is refused
here, before the model loads. uvicorn listens on these sockets once the application has started, and until then
connections are refused. On Linux, ``SO_REUSEADDR`` lets another process bind the same port meanwhile (but not
listen on it while these listen): of two servers started at once, the one that listens second fails then.
"""

from __future__ import annotations

import errno
import socket
from typing import Literal


class AddressError(Exception):
    """The service cannot listen on the address; the message (for the operator) says why, and ``about`` whether
    the host or the port is at fault."""

    def __init__(self, reason: str, about: Literal["host", "port"]) -> None:
        super().__init__(reason)
        self.about: Literal["host", "port"] = about


_REASONS: dict[int, tuple[str, Literal["host", "port"]]] = {
    errno.EADDRINUSE: ("the port is in use (by another chexnet serve, or another program)", "port"),
    errno.EACCES: ("permission denied (ports below 1024 need privileges)", "port"),
    errno.EADDRNOTAVAIL: ("that is not an address of this machine", "host"),
}


def bind_sockets(host: str, port: int) -> list[socket.socket]:
    """Bound, not yet listening, TCP sockets for ``host`` (a name or address; "" is every address) and ``port``.

    Raises ``AddressError``: the host does not resolve, the port is in use, binding it is not permitted, or the
    address is not this machine's.
    """
    try:
        found = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror:
        raise AddressError("the host name does not resolve to an address", "host") from None
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(found):  # unique, in the resolver's order
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
    except OSError as exc:
        close_sockets(sockets)
        reason, about = _REASONS.get(exc.errno or 0, (exc.strerror or type(exc).__name__, "port"))
        raise AddressError(reason, about) from None
    return sockets


def close_sockets(sockets: list[socket.socket]) -> None:
    for sock in sockets:
        sock.close()
