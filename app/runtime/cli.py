"""Argument parsing for ``chexnet serve``; the web stack is imported only when it runs."""

from __future__ import annotations

import argparse
import sys
from typing import Any

# The flags' defaults are the settings' (app/settings.py); tests/app/runtime/test_server.py holds the two in step.
FLAG_DEFAULTS = {"host": "127.0.0.1", "port": 8000, "device": "auto"}


def register(commands: Any) -> None:
    p: argparse.ArgumentParser = commands.add_parser("serve", help="serve /predict and /gradcam over HTTP")
    p.description = (
        "Serve the model over HTTP. Each flag overrides its CHEXNET_* environment variable. Exit status: 0 "
        "stopped, 1 the model cannot be loaded or started, 2 invalid flags or settings, 3 cannot listen on the "
        "host and port (checked before the model loads)."
    )
    p.add_argument("--checkpoint", help="checkpoint to serve (default: CHEXNET_CHECKPOINT, else the bundled demo)")
    p.add_argument("--host", help=f"bind address (default: CHEXNET_HOST, else {FLAG_DEFAULTS['host']})")
    p.add_argument("--port", type=int, help=f"port (default: CHEXNET_PORT, else {FLAG_DEFAULTS['port']})")
    p.add_argument(
        "--device",
        choices=["auto", "cpu", "cuda"],
        help=f"auto: cuda when there is one (default: CHEXNET_DEVICE, else {FLAG_DEFAULTS['device']})",
    )
    p.add_argument(
        "--precision",
        choices=["fp32", "bf16", "fp16", "int8"],
        help="fp32; bf16 (CPU or CUDA); fp16 (CUDA); int8 (CPU, with --int8-model) (default: CHEXNET_PRECISION, "
        "else fp32)",
    )
    p.add_argument(
        "--int8-model", help="with --precision int8: the folder chexnet quantize wrote (default: CHEXNET_INT8_MODEL)"
    )
    p.set_defaults(run=_run_serve)


def _run_serve(args: argparse.Namespace) -> int:
    from app.runtime.server import StartupError, prepare_service, run_server

    # --log-level: before or after "serve"
    given = ("checkpoint", "host", "port", "device", "precision", "int8_model", "log_level")
    overrides = {k: v for k in given if (v := getattr(args, k, None)) is not None}
    try:
        service = prepare_service(overrides)
    except StartupError as exc:
        sys.stderr.write(f"chexnet serve: {exc}\n")  # the command line's own one-line message
        return exc.exit_code
    return run_server(service.settings, service.predictor, service.sockets)
