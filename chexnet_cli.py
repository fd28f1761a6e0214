"""The ``chexnet`` command: one entry point whose subcommands live with their side of the house.

``train``, ``evaluate``, ``predict`` and ``import`` are registered by ``training.cli``; ``serve`` by
``app.runtime.cli``.
Each side only touches argparse here and imports its heavy modules when its subcommand runs, so
``chexnet serve`` works without the training extras and ``chexnet train`` without a web stack.

Conventions every subcommand gets from here: ``--help`` shows each option's default, ``--log-level`` is
accepted before or after the command, and ``chexnet --version`` names the release.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import Any

import app.runtime.cli
import training.cli
from models import __version__

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
LOG_LEVEL_HELP = "logging level, before or after the command (default: INFO; for serve, CHEXNET_LOG_LEVEL or INFO)"


class HelpWithDefaults(argparse.HelpFormatter):
    """Ends each option's help with ``(default: ...)``, unless it has no default (None, or False for a switch)
    or its help already says. Help strings are %-formatted by argparse, so a literal percent sign is ``%%``."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        no_default = action.default is None or action.default is False or action.default == argparse.SUPPRESS
        if "(default" in text or not action.option_strings or no_default:
            return text
        return f"{text} (default: %(default)s)"


class CommandParser(argparse.ArgumentParser):
    """An ArgumentParser whose help shows defaults; subcommands' parsers are of this class too."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpWithDefaults)
        super().__init__(*args, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    parser = CommandParser(
        prog="chexnet",
        description="CheXNet chest X-ray classifier: train, evaluate, predict, import, serve. Research use only — "
        "not for diagnosis or treatment.",
    )
    parser.add_argument("--version", action="version", version=f"chexnet {__version__}")
    parser.add_argument(
        "--log-level",
        choices=LOG_LEVELS,
        help=LOG_LEVEL_HELP,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=CommandParser)
    training.cli.register(commands)
    app.runtime.cli.register(commands)
    for command in commands.choices.values():
        # SUPPRESS: when absent after the command, the value given before it (or None) stays
        command.add_argument("--log-level", choices=LOG_LEVELS, default=argparse.SUPPRESS, help=LOG_LEVEL_HELP)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level or "INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    result: int = args.run(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
