"""create_app(settings): the app factory. The FastAPI application, with its state on the app, not in globals.

The runtime that serves it (settings check, sockets, uvicorn, drain) is ``app.runtime.server`` (``chexnet serve``).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp

from app.errors import install_error_handlers
from app.guards.admission import AdmissionMiddleware
from app.guards.api_key import ApiKeyMiddleware
from app.guards.middleware import AccessLogMiddleware, DisclaimerMiddleware, MetricsMiddleware
from app.guards.route_guards import RouteGuards, route_paths
from app.guards.telemetry import Telemetry
from app.inference.predictor import Predictor, PredictorLike
from app.openapi import install_openapi
from app.pages import install_pages
from app.pipeline import Pipeline
from app.routes import router
from app.settings import DISCLAIMER, Settings
from models import __version__

DESCRIPTION = f"""**{DISCLAIMER}**

CheXNet (DenseNet-121) scores a chest X-ray for each of the model's labels (GET /model lists them) and explains a
score with Grad-CAM. Upload PNG (8/16-bit), JPEG or DICOM as multipart field `file`:

    curl -F file=@xray.png {{server}}/predict

Every response carries the `X-Disclaimer` header. Errors are `{{"detail": ..., "code": ...}}`.
"""


# One file part, a few text fields of at most 16 KiB (Starlette's defaults: 1,000 files and fields, 1 MiB each).
FORM_LIMITS: Any = {"max_files": 1, "max_fields": 4, "max_part_size": 16 * 1024}  # FastAPI's TypedDict is private


# python-multipart's warnings about malformed forms quote bytes of the body; nothing of an upload is logged.
logging.getLogger("python_multipart").setLevel(logging.ERROR)


class _ChexnetFastAPI(FastAPI):
    """Builds its middleware stack once every route is there (at the first request): the routes' guard
    declarations are read then, and the disclaimer and the access log wrap the whole stack, outside Starlette's
    server-error handler, so 500s carry the disclaimer and an X-Request-ID, and are logged."""

    route_guards: RouteGuards

    def build_middleware_stack(self) -> ASGIApp:
        self.route_guards.load(self.routes)  # raises UndeclaredGuardsError for an API route without a declaration
        templates = route_paths(self.routes)
        return DisclaimerMiddleware(AccessLogMiddleware(super().build_middleware_stack(), templates), DISCLAIMER)


def create_app(settings: Settings | None = None, predictor: PredictorLike | None = None) -> FastAPI:
    """The app for ``settings``; loads the checkpoint unless a predictor (e.g. a test fake) is given."""
    settings = settings or Settings()
    predictor = predictor or Predictor.load(settings)
    telemetry = Telemetry(predictor.info.labels)
    pipeline = Pipeline(settings, predictor, telemetry)
    app = _ChexnetFastAPI(
        title="CheXNet inference service (research use only)",
        description=DESCRIPTION,
        version=__version__,
        lifespan=pipeline.lifespan,
        form_limits=FORM_LIMITS,
        openapi_url=None,  # app.openapi serves the exact document
        docs_url=None,  # app.pages serves /docs and /redoc with their assets: no CDN
        redoc_url=None,
    )
    app.route_guards = guards = RouteGuards()
    app.state.settings, app.state.pipeline = settings, pipeline
    install_error_handlers(app)
    app.add_middleware(
        AdmissionMiddleware,
        service=pipeline,
        max_bytes=settings.max_upload_bytes,
        upload_timeout_s=settings.upload_timeout_s,
        backlog=pipeline.backlog,
        guards=guards,
    )
    app.add_middleware(
        ApiKeyMiddleware, expected=settings.api_key, guards=guards, max_drain_bytes=settings.max_upload_bytes
    )
    app.add_middleware(MetricsMiddleware, telemetry=telemetry, templates=route_paths(router.routes))
    app.include_router(router)
    info = predictor.info
    points = tuple(info.operating_points.points) if info.operating_points else ()
    install_openapi(app, info.labels, points, key_configured=settings.api_key is not None)
    install_pages(app)
    return app
