"""``chexnet serve``: validate settings, bind the address, load the model (all before a connection is accepted),
run uvicorn with a drain."""

from __future__ import annotations

import errno
import logging
import math
import os
import socket
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from types import FrameType
from typing import Any

import torch
import uvicorn
from pydantic import ValidationError
from uvicorn.config import STARTUP_FAILURE as UVICORN_STARTUP_FAILURE

from app.inference.predictor import Predictor, PredictorLike
from app.main import create_app
from app.pipeline import Pipeline
from app.runtime.listen import AddressError, bind_sockets, close_sockets
from app.settings import Settings, unknown_variables
from models.errors import ModelContractError

logger = logging.getLogger(__name__)

# Exit statuses of ``chexnet serve`` (README, "Serve"). uvicorn's own start-up failure is 3 too; with the sockets
# bound here first, it can only mean the application failed to start, which run_server reports as 1.
EXIT_MODEL = 1  # the model cannot be loaded or started
EXIT_SETTINGS = 2  # a flag or CHEXNET_* setting is invalid, or asks for what this machine lacks
EXIT_ADDRESS = 3  # cannot listen on the host and port: in use, not permitted, or not this machine's


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
        raise StartupError(f"unknown settings: {names}; CHEXNET_STRICT_SETTINGS=1 makes this an error", EXIT_SETTINGS)
    logger.warning("ignoring unknown settings: %s", names)


@dataclass
class PreparedService:
    """Everything ``run_server`` needs, made before any connection is accepted."""

    settings: Settings
    predictor: Predictor
    sockets: list[socket.socket]  # bound to host:port, not yet listening


def setting_name(field: str, flags: Collection[str]) -> str:
    """How the user gave a setting: ``--max-wait-ms`` when it came from a ``chexnet serve`` flag, else the
    ``CHEXNET_*`` variable (a default is always valid, so an invalid value came from one or the other)."""
    return f"--{field.replace('_', '-')}" if field in flags else f"CHEXNET_{field.upper()}"


def describe_invalid_settings(exc: ValidationError, flags: Collection[str]) -> str:
    """One line from pydantic's errors, each naming the flag or variable; values are not repeated (secrets)."""
    parts = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else "settings"
        parts.append(f"{setting_name(field, flags)}: {error['msg'].removeprefix('Value error, ')}")
    return "invalid settings: " + "; ".join(parts)


def _given(field: str, value: object, flags: Collection[str], environ: Mapping[str, str]) -> str:
    """How a value was given, for messages: ``--port 80``, ``CHEXNET_PORT=80`` or ``the default port: ...``."""
    variable = f"CHEXNET_{field.upper()}"
    if field in flags:
        return f"--{field.replace('_', '-')} {value}"
    if any(name.upper() == variable for name in environ):
        return f"{variable}={value}"
    return f"the default {field}: choose one with --{field.replace('_', '-')}"


def bind_address(settings: Settings, flags: Collection[str], environ: Mapping[str, str]) -> list[socket.socket]:
    """The listening sockets, bound now (before the model loads); ``StartupError`` with exit 3 if they cannot be."""
    try:
        return bind_sockets(settings.host, settings.port)
    except AddressError as exc:
        host = f"[{settings.host}]" if ":" in settings.host else settings.host
        given = _given(exc.about, getattr(settings, exc.about), flags, environ)
        raise StartupError(f"cannot listen on {host}:{settings.port} ({given}): {exc}", EXIT_ADDRESS) from None


def prepare_service(overrides: dict[str, Any], environ: Mapping[str, str] = os.environ) -> PreparedService:
    """Validate settings (exit 2), bind the address (exit 3), load the model (exit 1), in that order, before any
    connection is accepted. ``overrides`` are the ``chexnet serve`` flags given; messages name them as typed."""
    check_unknown_variables(environ)
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        raise StartupError(describe_invalid_settings(exc, overrides), EXIT_SETTINGS) from None
    logging.getLogger().setLevel(settings.log_level)
    if settings.device == "cuda" and not torch.cuda.is_available():
        asked = _given("device", "cuda", overrides, environ)  # never the default, which is auto
        raise StartupError(
            f"{asked} was asked for, but this machine has no CUDA device (use auto or cpu)", EXIT_SETTINGS
        )
    sockets = bind_address(settings, overrides, environ)
    try:
        return PreparedService(settings, Predictor.load(settings), sockets)
    except (ModelContractError, RuntimeError, ValueError) as exc:
        close_sockets(sockets)
        raise StartupError(f"cannot load the model: {exc}", EXIT_MODEL) from None


class _DrainingServer(uvicorn.Server):
    """uvicorn's server, which also tells the service on SIGTERM/SIGINT, so /readyz says 503 during the drain: a
    balancer that probes over a kept-alive connection must not read a draining replica as ready."""

    def __init__(self, config: uvicorn.Config, pipeline: Pipeline) -> None:
        super().__init__(config)
        self.pipeline = pipeline

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.pipeline.begin_drain()
        super().handle_exit(sig, frame)


def run_server(settings: Settings, predictor: PredictorLike, sockets: list[socket.socket]) -> int:
    """Serve on ``sockets`` until SIGTERM/SIGINT; in-flight requests get up to ``drain_seconds`` to finish.

    Returns 0; ``EXIT_MODEL`` when the application fails to start (uvicorn's exit 3 would read as an address
    problem); ``EXIT_ADDRESS`` when another process began listening on the port after ``bind_address``.
    """
    app = create_app(settings, predictor)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        access_log=False,  # app.guards.middleware.AccessLogMiddleware writes one line per request instead
        timeout_graceful_shutdown=math.ceil(settings.drain_seconds),
        server_header=False,
        # No limit_concurrency: uvicorn counts open connections, so idle sockets alone would make every route,
        # probes included, a plain-text 503. Admission (app.guards.admission) sheds load from the headers instead; slow
        # or idle connections before their headers are a fronting proxy's job (README, Reliability).
    )
    server = _DrainingServer(config, app.state.pipeline)
    logging.getLogger("uvicorn.error").addFilter(_NoExceptionText())
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    logger.info("serving on http://%s:%d once started (Ctrl+C to stop)", host, settings.port)
    try:
        server.run(sockets=sockets)
    except SystemExit as exc:
        if exc.code == UVICORN_STARTUP_FAILURE:
            return EXIT_MODEL
        raise
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        # Binding with SO_REUSEADDR (as every server does, for restarts) reserves the port against listeners, not
        # against another process binding meanwhile: of two servers started together, the second fails here.
        logger.error("cannot listen on %s:%d: the port was taken while the model loaded", host, settings.port)
        return EXIT_ADDRESS
    finally:
        close_sockets(sockets)
    return 0
