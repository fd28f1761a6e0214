"""--tensorboard: each epoch's figures as scalars, step = epoch; a resumed run purges the steps it repeats."""

from __future__ import annotations

from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.training.reports.test_run_history import record
from training.reports.tensorboard_log import TensorBoardLog


def scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    events = EventAccumulator(str(folder))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_epochs_are_scalars_and_a_resume_purges_repeated_steps(tmp_path: Path) -> None:
    board = TensorBoardLog(tmp_path, first_epoch=1)
    for epoch in (1, 2, 3):
        board.add_epoch(record(epoch, 0.5 + 0.1 * epoch))
    board.close()
    resumed = TensorBoardLog(tmp_path, first_epoch=3)  # epoch 3 was lost (killed before last.pt) and is redone
    resumed.add_epoch(record(3, 0.9))
    resumed.close()
    found = scalars(tmp_path / "tensorboard")
    assert found["auroc/mean"] == [(1, 0.6000000238418579), (2, 0.699999988079071), (3, 0.8999999761581421)]
    assert [step for step, _ in found["loss/train"]] == [1, 2, 3]
    assert found["loss/validation"][0] == (1, pytest.approx(0.6))
    assert found["lr"][0] == (1, pytest.approx(1e-3))
    assert found["seconds"][1] == (2, 6.5)
    assert "auroc/Hernia" not in found  # undefined in every epoch: left out, not drawn as 0
    assert found["auroc/Atelectasis"][0] == (1, 0.5)
