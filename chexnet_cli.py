"""The ``chexnet`` command: one entry point whose subcommands live with their side of the house.

``train``, ``evaluate``, ``predict`` and ``import`` are registered by ``training.cli``; ``serve`` by ``app.cli``.
Each side only touches argparse here and imports its heavy modules when its subcommand runs, so
``chexnet serve`` works without the training extras and ``chexnet train`` without a web stack.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

import app.cli
import training.cli


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chexnet",
        description="CheXNet chest X-ray classifier: train, evaluate, predict, import, serve. Research use only — "
        "not for diagnosis or treatment.",
    )
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    training.cli.register(commands)
    app.cli.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    result: int = args.run(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
