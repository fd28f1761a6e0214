"""What marks a folder as holding a run, and what --overwrite deletes (the run's files, nothing else)."""

from __future__ import annotations

from pathlib import Path

from training.reports.run_files import clear_run, existing_run_markers


def test_markers_are_best_last_and_metrics_json(tmp_path: Path) -> None:
    assert existing_run_markers(tmp_path / "new") == []
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "metrics.json").write_text("{}")
    (tmp_path / "best.pt").write_bytes(b"")
    assert existing_run_markers(tmp_path) == ["best.pt", "metrics.json"]


def test_clear_run_deletes_only_what_a_run_writes(tmp_path: Path) -> None:
    run_files = [
        *("best.pt", "last.pt", "metrics.json", "metrics.csv", "curves.png", "train_list.txt", "val_list.txt"),
        *("unreadable.csv", ".last.pt.x1.tmp", "tensorboard/events.out.tfevents.1.host.0"),
    ]
    kept = ["notes.txt", "tensorboard/my-notes.txt", "eval/metrics.json", ".notes.txt.x2.tmp"]
    for name in run_files + kept:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    assert clear_run(tmp_path) == len(run_files)
    left = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert left == sorted(kept)
