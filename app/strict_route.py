"""The route class of every API route: a query parameter the route does not read is an error, not ignored, and
the request's multipart form is read by ``app.uploads.UploadFormParser``.

FastAPI ignores unknown query parameters, so ``/predict?pathology=Mass`` (a ``/gradcam`` parameter) answered 200
as if nothing had been asked. Here it is a 422 naming the parameter and the ones the route accepts.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from app.errors import UnknownQueryParameterError
from app.uploads import UploadRequest


class StrictRoute(APIRoute):
    """``APIRouter(route_class=StrictRoute)``: see the module docstring."""

    def accepted_query(self) -> tuple[str, ...]:
        """The query parameters this route reads (its own and its dependencies'), by the name a client sends."""
        return tuple(dict.fromkeys(_query_names(self.dependant)))

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        accepted = self.accepted_query()

        async def strict_handler(request: Request) -> Response:
            unknown = [name for name in dict.fromkeys(request.query_params.keys()) if name not in accepted]
            if unknown:
                raise UnknownQueryParameterError(unknown, accepted)
            return await handler(UploadRequest(request.scope, request.receive))

        return strict_handler


def _query_names(dependant: Dependant) -> list[str]:
    names = [param.alias for param in dependant.query_params]
    for sub in dependant.dependencies:
        names.extend(_query_names(sub))
    return names
