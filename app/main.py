"""create_app(settings): the FastAPI application, with its state on the app, not in globals."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp

from app.errors import install_error_handlers
from app.guards.admission import AdmissionMiddleware
from app.guards.api_key import ApiKeyMiddleware
from app.guards.middleware import AccessLogMiddleware, DisclaimerMiddleware, MetricsMiddleware
from app.guards.telemetry import Telemetry
from app.inference.predictor import InferenceEngine, Predictor
from app.pages import install_pages
from app.routes import router
from app.service import Service
from app.settings import DISCLAIMER, Settings
from models import __version__

DESCRIPTION = f"""**{DISCLAIMER}**

CheXNet (DenseNet-121) scores a chest X-ray for the served model's labels (GET /model lists them; the bundled
model's are the 14 ChestX-ray14 pathologies) and explains a score with Grad-CAM. Upload PNG (8/16-bit), JPEG or
DICOM as multipart field `file`:

    curl -F file=@xray.png http://127.0.0.1:8000/predict

Every response carries the `X-Disclaimer` header. Errors are `{{"detail": ..., "code": ...}}`.
"""


# One file part, a few text fields of at most 16 KiB (Starlette's defaults: 1,000 files and fields, 1 MiB each).
FORM_LIMITS: Any = {"max_files": 1, "max_fields": 4, "max_part_size": 16 * 1024}  # FastAPI's TypedDict is private


# python-multipart's warnings about malformed forms quote bytes of the body; nothing of an upload is logged.
logging.getLogger("python_multipart").setLevel(logging.ERROR)


class _DisclaimedFastAPI(FastAPI):
    """The disclaimer and the access log wrap the whole stack, outside Starlette's server-error handler, so 500s
    carry the disclaimer and an X-Request-ID, and are logged."""

    def build_middleware_stack(self) -> ASGIApp:
        routes = [*self.routes, *router.routes]  # the included router's routes are not listed in self.routes
        templates = [path for route in routes if isinstance(path := getattr(route, "path", None), str)]
        return DisclaimerMiddleware(AccessLogMiddleware(super().build_middleware_stack(), templates), DISCLAIMER)


def create_app(settings: Settings | None = None, engine: InferenceEngine | None = None) -> FastAPI:
    """The app for ``settings``; loads the checkpoint unless an engine (e.g. a test fake) is given."""
    settings = settings or Settings()
    engine = engine or Predictor.load(settings)
    telemetry = Telemetry(engine.info.labels)
    service = Service(settings, engine, telemetry)
    app = _DisclaimedFastAPI(
        title="CheXNet inference service (research use only)",
        description=DESCRIPTION,
        version=__version__,
        lifespan=service.lifespan,
        form_limits=FORM_LIMITS,
        docs_url=None,  # app.pages serves /docs and /redoc with their assets: no CDN
        redoc_url=None,
    )
    app.state.settings, app.state.service = settings, service
    install_error_handlers(app)
    app.add_middleware(
        AdmissionMiddleware,
        service=service,
        max_bytes=settings.max_upload_bytes,
        upload_timeout_s=settings.upload_timeout_s,
        backlog=service.backlog,
    )
    app.add_middleware(ApiKeyMiddleware, expected=settings.api_key)
    templates = [path for route in router.routes if isinstance(path := getattr(route, "path", None), str)]
    app.add_middleware(MetricsMiddleware, telemetry=telemetry, templates=templates)
    app.include_router(router)
    install_pages(app)
    return app
