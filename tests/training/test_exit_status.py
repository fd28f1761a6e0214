"""One table maps every training command's exceptions to the documented exit statuses and a one-line message."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from app.runtime import server
from chexnet_cli import main
from models.errors import CheckpointError
from tests.training.synthetic import make_square_dataset
from training.data.label_tables import LabelTableError
from training.exit_status import EXIT_DONE, EXIT_FAILED, EXIT_USAGE, UsageError, run_command
from training.loop.config import TrainConfigError
from training.loop.resume import RunAlreadyFinishedError


def test_the_statuses_agree_with_serve() -> None:
    assert (server.EXIT_MODEL, server.EXIT_SETTINGS) == (EXIT_FAILED, EXIT_USAGE)


def raising(exc: BaseException) -> Callable[[], int]:
    def work() -> int:
        raise exc

    return work


@pytest.mark.parametrize(
    ("exc", "status", "stream", "line"),
    [
        (RunAlreadyFinishedError("nothing to do"), EXIT_DONE, "out", "chexnet x: nothing to do\n"),
        (UsageError("--out exists"), EXIT_USAGE, "err", "chexnet x: --out exists\n"),
        (TrainConfigError("--epochs must be >= 1"), EXIT_USAGE, "err", "chexnet x: --epochs must be >= 1\n"),
        (LabelTableError("table t.csv:\n  no rows"), EXIT_FAILED, "err", "chexnet x: table t.csv: no rows\n"),
        (CheckpointError("not a checkpoint"), EXIT_FAILED, "err", "chexnet x: not a checkpoint\n"),
        (
            PermissionError(13, "Permission denied", "/secret/cache/.entry.tmp"),
            EXIT_FAILED,
            "err",
            "chexnet x: a file could not be read or written: Permission denied\n",
        ),
        (ValueError("--device cuda: no CUDA device"), EXIT_FAILED, "err", "chexnet x: --device cuda: no CUDA device\n"),
    ],
)
def test_each_exception_gets_its_status_and_one_line(
    exc: BaseException, status: int, stream: str, line: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_command("x", raising(exc)) == status
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ((line, "") if stream == "out" else ("", line))


def test_a_command_may_word_a_message_but_not_change_its_status(capsys: pytest.CaptureFixture[str]) -> None:
    hint = {LabelTableError: lambda exc: f"{exc} (see --labels)"}
    assert run_command("x", raising(LabelTableError("bad table")), hint) == EXIT_FAILED
    assert capsys.readouterr().err == "chexnet x: bad table (see --labels)\n"


def test_an_exception_the_table_lacks_keeps_its_traceback() -> None:
    with pytest.raises(KeyError):
        run_command("x", raising(KeyError("bug")))


def test_work_that_returns_keeps_its_status() -> None:
    assert run_command("x", lambda: 1) == 1


def test_import_refusals_are_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    existing = tmp_path / "out.pt"
    existing.write_bytes(b"kept")
    assert main(["import", "--from", "arnoweng", str(tmp_path / "src"), "--out", str(existing)]) == EXIT_USAGE
    assert capsys.readouterr().err == f"chexnet import: {existing} exists (pass --overwrite to replace it)\n"
    args = ["import", "--from", "arnoweng", str(tmp_path / "src"), "--out", str(tmp_path / "new.pt")]
    assert main([*args, "--xrv-weights", "nih"]) == EXIT_USAGE
    assert capsys.readouterr().err == "chexnet import: --xrv-weights goes with --from torchxrayvision\n"


def test_calibrate_refuses_a_bad_batch_size_as_usage(
    tmp_path: Path, tiny_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    images, labels = make_square_dataset(tmp_path / "data", 2, side=32)
    args = ["calibrate", "--checkpoint", str(tiny_checkpoint), "--images", str(images), "--labels", str(labels)]
    assert main([*args, "--out", str(tmp_path / "c.pt"), "--batch-size", "0"]) == EXIT_USAGE
    assert capsys.readouterr().err == "chexnet calibrate: --batch-size must be >= 1, got 0\n"
