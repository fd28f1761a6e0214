"""Argument parsing for ``chexnet serve``; the web stack is imported only when it runs."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def register(commands: Any) -> None:
    p: argparse.ArgumentParser = commands.add_parser("serve", help="serve /predict and /gradcam over HTTP")
    p.description = "Serve the model over HTTP. Options override CHEXNET_* environment variables."
    p.add_argument("--checkpoint", help="checkpoint to serve (default: CHEXNET_CHECKPOINT or the bundled demo)")
    p.add_argument("--host", help="bind address (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default 8000)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], help="inference device (default auto)")
    p.set_defaults(run=_run_serve)


def _run_serve(args: argparse.Namespace) -> int:
    from app.server import StartupError, prepare_service, run_server

    overrides = {k: v for k in ("checkpoint", "host", "port", "device") if (v := getattr(args, k)) is not None}
    try:
        settings, predictor = prepare_service(overrides)
    except StartupError as exc:
        sys.stderr.write(f"chexnet serve: {exc}\n")  # the command line's own one-line message
        return exc.exit_code
    run_server(settings, predictor)
    return 0
