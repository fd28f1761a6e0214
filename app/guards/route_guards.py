"""Which routes take an upload and which need the API key: declared on the route, read from the router.

Every API route says it in its decorator, for example::

    @router.post("/predict", **guarded(upload=True, api_key=True), ...)
    @router.get("/healthz", **guarded(upload=False, api_key=False), ...)

``guarded`` adds the dependencies that check the declaration inside the route (the API key, which also documents
the scheme in OpenAPI; the one-file form rule) and records it on the route (``openapi_extra["x-guards"]``, which
``app.openapi`` removes from the published document). ``RouteGuards.load`` reads every route's declaration when
the app's middleware stack is built (at its first request, after every route has been added); the admission and
API-key middleware (``app.guards.admission``, ``app.guards.api_key``) ask it about each request before the body
is read. An API route without a declaration stops the app at that moment with ``UndeclaredGuardsError``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import Depends
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.routing import BaseRoute, compile_path

from app.guards.api_key import check_api_key
from app.uploads import require_one_file

GUARDS_KEY = "x-guards"


class UndeclaredGuardsError(RuntimeError):
    """An API route does not say whether it takes an upload and whether it needs the key (names the route)."""


@dataclass(frozen=True)
class Guards:
    """``upload``: admission (limits, load shedding, upload deadline, Content-Encoding); ``api_key``: the key."""

    upload: bool = False
    api_key: bool = False


def guarded(*, upload: bool, api_key: bool) -> dict[str, Any]:
    """Route keyword arguments declaring its guards (and adding the dependencies that check them in the route)."""
    dependencies = [Depends(check_api_key)] if api_key else []
    if upload:
        dependencies.append(Depends(require_one_file))
    return {"dependencies": dependencies, "openapi_extra": {GUARDS_KEY: {"upload": upload, "api_key": api_key}}}


def declared_guards(route: BaseRoute) -> Guards | None:
    """The route's declaration; None for an API route without one; open (no guards) for a mount or a plain
    Starlette route (the static files, the OpenAPI document), which take no upload and hold no model data."""
    if not isinstance(route, APIRoute):
        return Guards()
    declared = (route.openapi_extra or {}).get(GUARDS_KEY)
    if not isinstance(declared, dict):
        return None
    return Guards(upload=bool(declared["upload"]), api_key=bool(declared["api_key"]))


@dataclass(frozen=True)
class _Entry:
    path: re.Pattern[str]  # the route's own compiled template: /items/{id} matches /items/7
    methods: frozenset[str]
    guards: Guards


class RouteGuards:
    """The guards of each request's route, from the routes' declarations (see the module docstring)."""

    def __init__(self) -> None:
        self._entries: tuple[_Entry, ...] = ()

    def load(self, routes: Sequence[BaseRoute]) -> None:
        """Read every route's declaration, included routers' routes too (at their full path). Raises
        UndeclaredGuardsError naming an API route without one."""
        entries = []
        for context in iter_route_contexts(routes):
            guards = declared_guards(context.original_route)
            path = context.path or ""
            if guards is None:
                raise UndeclaredGuardsError(f"route {path} does not declare its guards: add **guarded(...)")
            if guards.upload or guards.api_key:
                entries.append(_Entry(compile_path(path)[0], frozenset(context.methods or ()), guards))
        self._entries = tuple(entries)

    def takes_upload(self, path: str, method: str) -> bool:
        """True when a route declared as taking an upload serves ``method`` at ``path``."""
        return any(e.guards.upload and method in e.methods and e.path.match(path) for e in self._entries)

    def needs_key(self, path: str) -> bool:
        """True when a route at ``path`` needs the key, whatever the method (so a wrong method is 401 first)."""
        return any(e.guards.api_key and e.path.match(path) for e in self._entries)


def route_paths(routes: Sequence[BaseRoute]) -> list[str]:
    """Every route's path template, included routers' routes too (at their full path)."""
    return [path for context in iter_route_contexts(routes) if isinstance(path := context.path, str)]
