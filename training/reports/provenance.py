"""Where a checkpoint came from: data, command, code version — recorded in every checkpoint."""

from __future__ import annotations

import shlex
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from models.files import file_sha256
from training.data.run_data import RunData
from training.loop.config import TrainConfig


def command_line() -> str:
    """The command as typed, with the program shown as ``chexnet`` (paths as the user gave them)."""
    return shlex.join(["chexnet", *sys.argv[1:]])


def git_commit() -> str | None:
    """The source tree's commit, when run from a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def describe_validation(config: TrainConfig) -> str:
    """The validation data in words and file names only (what the run's operating points were chosen on)."""
    tables = ", ".join(source.labels.name for source in config.sources())
    if config.val_list is not None:
        return f"validation split of the training run: {tables}, the images in {config.val_list.name}"
    return (
        f"validation split of the training run: {tables}, patients split at random per table "
        f"(seed {config.seed}, validation fraction {config.val_fraction:g}) or the table's published split"
    )


def describe_run(config: TrainConfig, data: RunData, head: dict[str, Any] | None) -> dict[str, Any]:
    """The checkpoint's ``provenance``; ``model_name`` and ``model_version`` (``--name``, ``--version``) only when
    given: the service reads exactly those keys (``app.model_card.model_identity``). ``datasets`` lists each table
    (format, policy, patient source, labels, rows per split); ``head`` which head rows a fine-tuning copied."""
    identity = {"model_name": config.model_name, "model_version": config.model_version}
    first = data.tables[0].source
    return {
        **{key: value for key, value in identity.items() if value is not None},
        "data": {
            "images": first.images.name,
            "labels": first.labels.name,
            "labels_sha256": file_sha256(first.labels),
            "n_train": data.count("train"),
            "n_val": data.count("val"),
            "n_test": data.count("test"),
        },
        "datasets": data.describe(),
        **({"head": head} if head is not None else {}),
        "command": command_line(),
        "git_commit": git_commit(),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
