"""``chexnet serve``: validate settings, load the model (before the port opens), run uvicorn with a drain."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping
from typing import Any

import uvicorn
from pydantic import ValidationError

from app.main import create_app
from app.predictor import Predictor
from app.settings import Settings, unknown_variables
from models.errors import ModelContractError

logger = logging.getLogger(__name__)


class _NoExceptionText(logging.Filter):
    """uvicorn logs a traceback with the exception's text for a 500; that text may hold paths or patient data."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info:
            name = record.exc_info[0].__name__ if record.exc_info[0] else "exception"
            record.msg, record.args = f"{record.getMessage()} ({name}; details withheld)", ()
            record.exc_info, record.exc_text = None, None
        return True


class StartupError(Exception):
    """The service cannot start; the message is for the operator, ``exit_code`` for the shell."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def check_unknown_variables(environ: Mapping[str, str]) -> None:
    """Name each CHEXNET_* variable no setting reads: a warning, or exit 2 with ``CHEXNET_STRICT_SETTINGS=1``."""
    unknown = unknown_variables(environ)
    if not unknown:
        return
    names = ", ".join(name + (f" (did you mean {close}?)" if close else "") for name, close in unknown)
    if environ.get("CHEXNET_STRICT_SETTINGS", "") in ("1", "true", "yes"):
        raise StartupError(f"unknown settings: {names}; CHEXNET_STRICT_SETTINGS=1 makes this an error", 2)
    logger.warning("ignoring unknown settings: %s", names)


def prepare_service(overrides: dict[str, Any], environ: Mapping[str, str] = os.environ) -> tuple[Settings, Predictor]:
    """Validate settings (exit 2) and load the model (exit 1), all before any port is opened."""
    check_unknown_variables(environ)
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        fields = ", ".join(f"CHEXNET_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}" for e in exc.errors())
        raise StartupError(f"invalid settings: {fields}", 2) from None
    logging.getLogger().setLevel(settings.log_level)
    try:
        return settings, Predictor.load(settings)
    except (ModelContractError, RuntimeError) as exc:
        raise StartupError(f"cannot load the model: {exc}", 1) from None


# Connections beyond those admission can hold (queue + backlog) left for probes, /metrics and refusals.
CONNECTION_HEADROOM = 32


def connection_limit(settings: Settings) -> int:
    """uvicorn's ``limit_concurrency``: a backstop behind admission (``app.admission``), which refuses first.

    Beyond it uvicorn answers 503 itself, as plain text without the API's error shape.
    """
    return settings.queue_size + settings.upload_backlog + CONNECTION_HEADROOM


def run_server(settings: Settings, predictor: Predictor) -> None:
    """Serve until SIGTERM/SIGINT; in-flight requests get up to ``drain_seconds`` to finish."""
    config = uvicorn.Config(
        create_app(settings, predictor),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        access_log=False,  # request lines are counted in /metrics instead
        timeout_graceful_shutdown=math.ceil(settings.drain_seconds),
        server_header=False,
        limit_concurrency=connection_limit(settings),
    )
    server = uvicorn.Server(config)
    logging.getLogger("uvicorn.error").addFilter(_NoExceptionText())
    server.run()
