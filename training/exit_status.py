"""Exit statuses of the training-side commands, decided in one place: domain exception -> status + one line.

Every command (``train evaluate calibrate predict import``) runs its work through :func:`run_command`, which looks
the exception up in :func:`exit_rules` (first match wins, so subclasses come before their bases) and prints one
line, ``chexnet COMMAND: MESSAGE``: on stdout for status 0, else on stderr. An exception the table lacks is a bug
and keeps its traceback.

The statuses are those README documents, and agree with ``chexnet serve``'s (``app.runtime.server``: 1 the model
cannot be loaded or started, 2 an invalid setting, 3 the address; a test keeps them equal):

====== ==================================================================================================
0      done; ``train --resume`` of a run whose epochs are all done ("nothing to do")
1      the work failed: an unreadable image, label table or list, a checkpoint that cannot be loaded, missing
       ImageNet weights, a non-finite loss, a file that could not be read or written; ``predict``: some files
       could not be read (the others are written)
2      usage: an invalid option value, an ``--out`` that already holds a run (or exists) without ``--overwrite``
====== ==================================================================================================

Messages: a domain exception's text is written for the person at the terminal (it names their own files and
options), so it is shown, on one line. An ``OSError``'s text is not: it can name files the user never gave
(temporary files, caches), so only its reason is shown.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass

EXIT_DONE = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

Describe = Callable[[BaseException], str]


class UsageError(ValueError):
    """An option value that cannot work, found before any data is read (exit status 2); the text says what to fix."""


@dataclass(frozen=True)
class ExitRule:
    """``exception`` (and its subclasses) ends the command with ``status``; ``describe`` gives the message."""

    exception: type[BaseException]
    status: int
    describe: Describe


def one_line(text: str) -> str:
    """``text`` with line breaks folded into spaces, so that a message is one line of the terminal."""
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


def exception_text(exc: BaseException) -> str:
    """The exception's own text on one line: for domain exceptions, whose text is a message for the user."""
    return one_line(str(exc))


def os_error_reason(exc: BaseException) -> str:
    """An ``OSError`` without its file names: "a file could not be read or written: REASON"."""
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "input/output error"
    return f"a file could not be read or written: {reason}"


def unreadable_image(exc: BaseException) -> str:
    """``UnreadableImageError``: "cannot read image PATH: REASON" (the decoder's message is fixed text)."""
    return f"cannot read image {exc}"


def exit_rules() -> tuple[ExitRule, ...]:
    """The table, in the order it is matched. Imported when a command fails, so that parsing stays light."""
    from models.errors import ModelContractError
    from models.labels import LabelSetError
    from training.batch_scoring.inputs import InputListError
    from training.batch_scoring.merge import ShardMergeError
    from training.batch_scoring.results_table import ResultsTableError
    from training.data.dataset import UnreadableImageError
    from training.data.image_check import UnreadableImagesError
    from training.data.image_files import NoImagesFoundError
    from training.data.label_policies import PolicyError
    from training.data.label_tables import LabelTableError
    from training.data.sources import DataOptionError
    from training.loop.config import TrainConfigError
    from training.loop.epochs import NonFiniteLossError
    from training.loop.resume import RunAlreadyFinishedError
    from training.scoring.precision import PrecisionError
    from training.scoring.study_level import ScoringError

    return (
        ExitRule(RunAlreadyFinishedError, EXIT_DONE, exception_text),
        ExitRule(UsageError, EXIT_USAGE, exception_text),
        ExitRule(TrainConfigError, EXIT_USAGE, exception_text),
        ExitRule(PolicyError, EXIT_USAGE, exception_text),  # --uncertain / --blank
        ExitRule(DataOptionError, EXIT_USAGE, exception_text),  # --data KIND:LABELS:IMAGES, --label-set
        ExitRule(ScoringError, EXIT_USAGE, exception_text),  # --per study:... on a table without studies
        ExitRule(PrecisionError, EXIT_USAGE, exception_text),  # --precision this device cannot run
        ExitRule(UnreadableImageError, EXIT_FAILED, unreadable_image),
        ExitRule(UnreadableImagesError, EXIT_FAILED, exception_text),
        ExitRule(NoImagesFoundError, EXIT_FAILED, exception_text),
        ExitRule(LabelTableError, EXIT_FAILED, exception_text),
        ExitRule(LabelSetError, EXIT_FAILED, exception_text),
        ExitRule(ModelContractError, EXIT_FAILED, exception_text),
        ExitRule(NonFiniteLossError, EXIT_FAILED, exception_text),
        ExitRule(ShardMergeError, EXIT_FAILED, exception_text),  # predict merge: a missing, doubled or unfinished shard
        ExitRule(ResultsTableError, EXIT_FAILED, exception_text),  # predict --resume / merge: a table without record
        ExitRule(InputListError, EXIT_FAILED, exception_text),  # predict --list
        ExitRule(OSError, EXIT_FAILED, os_error_reason),
        ExitRule(ValueError, EXIT_FAILED, exception_text),  # an option or input refused with a message for the user
    )


def exit_status_of(exc: BaseException, rules: tuple[ExitRule, ...]) -> tuple[int, str] | None:
    """(status, message) of the first rule ``exc`` matches; None when it matches none."""
    for rule in rules:
        if isinstance(exc, rule.exception):
            return rule.status, rule.describe(exc)
    return None


def run_command(
    command: str, work: Callable[[], int], messages: Mapping[type[BaseException], Describe] | None = None
) -> int:
    """``work()``'s own status, or the table's for the exception it raised, after printing the one-line message.

    ``messages`` lets a command word a message its own way (a hint of what to do next); the status is always the
    table's. Exceptions that match no rule propagate (with their traceback: they are bugs).
    """
    try:
        return work()
    except Exception as exc:  # looked up in the table; one it lacks is raised again
        found = exit_status_of(exc, exit_rules())
        if found is None:
            raise
        status, message = found
        for kind, describe in (messages or {}).items():
            if isinstance(exc, kind):
                message = describe(exc)
                break
        print(f"chexnet {command}: {message}", file=sys.stdout if status == EXIT_DONE else sys.stderr)
        return status
