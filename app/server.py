"""``chexnet serve``: validate settings, load the model (before the port opens), run uvicorn with a drain."""

from __future__ import annotations

import logging
import math
import sys
from typing import Any

import uvicorn
from pydantic import ValidationError

from app.main import create_app
from app.predictor import Predictor
from app.settings import Settings
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


def _settings_or_message(overrides: dict[str, Any]) -> Settings | str:
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        fields = ", ".join(f"CHEXNET_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}" for e in exc.errors())
        return f"invalid settings: {fields}"


def serve(overrides: dict[str, Any]) -> int:
    """Exit 2 for bad settings, 1 for a model that cannot be loaded; otherwise serve until SIGTERM/SIGINT."""
    settings = _settings_or_message(overrides)
    if isinstance(settings, str):
        print(f"chexnet serve: {settings}", file=sys.stderr)  # noqa: T201 - the CLI's own message
        return 2
    logging.getLogger().setLevel(settings.log_level)
    try:
        predictor = Predictor.load(settings)
    except (ModelContractError, RuntimeError) as exc:
        print(f"chexnet serve: cannot load the model: {exc}", file=sys.stderr)  # noqa: T201
        return 1
    config = uvicorn.Config(
        create_app(settings, predictor),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        access_log=False,  # uvicorn's access line is not needed; metrics count requests without paths' contents
        timeout_graceful_shutdown=math.ceil(settings.drain_seconds),
        server_header=False,
    )
    server = uvicorn.Server(config)
    logging.getLogger("uvicorn.error").addFilter(_NoExceptionText())
    server.run()
    return 0
