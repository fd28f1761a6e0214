"""``chexnet train --resume [auto]``: the options a run trains with, from what it recorded and what was given again.

A run records every option in its checkpoints (``TrainConfig.to_dict()`` in ``config``), so continuing it needs
only the folder: ``chexnet train --out RUN --resume``. Options given again must agree with the recorded ones,
except those in ``RESUME_MAY_CHANGE`` (more ``--epochs``, another device or loader worker count), which replace
them, and data paths that name the recorded files by another path or say where data that moved lies now (the
recorded path no longer exists from here); anything else is refused with the conflicting options named.

``--resume auto`` is what an elastic launcher needs (``torchrun --max-restarts`` reruns the same arguments): it
continues from ``OUT/last.pt`` when there is one and otherwise starts the run, never deleting anything. The one
crash window that leaves a run marker but no ``last.pt`` (killed between best.pt and last.pt of the first epoch)
starts the run again over it, when the options best.pt recorded agree.
"""

from __future__ import annotations

import os
from dataclasses import fields
from pathlib import Path
from typing import Any

from models.checkpoint import load_checkpoint
from training.loop.config import TrainConfig, TrainConfigError
from training.reports.run_files import existing_run_markers

RESUME_AUTO = "auto"
# What a resumed run may change: none of them changes what an epoch computes on the same device.
RESUME_MAY_CHANGE = ("epochs", "workers", "device", "image_cache", "tensorboard")
_NOT_OPTIONS = ("out", "resume", "overwrite", "replace_first_epoch")  # how to run, not what the run is
_PATH_OPTIONS = ("images", "labels", "test_list", "train_list", "val_list", "image_cache")
_FLAGS = {"table_format": "--format", "model_name": "--name", "model_version": "--version"}


def flag_of(option: str) -> str:
    """The command-line flag of a ``TrainConfig`` field (``batch_size`` -> ``--batch-size``)."""
    return _FLAGS.get(option, "--" + option.replace("_", "-"))


def train_config_from_options(given: dict[str, Any]) -> TrainConfig:
    """The run's ``TrainConfig`` from the options given on the command line (absent ones not in ``given``).

    ``given["resume"]``: absent or False (a new run), True (``--resume``: continue OUT/last.pt) or ``"auto"``.
    Reads at most the run's checkpoints' options (never the data). Raises ``TrainConfigError`` naming the
    options that conflict with the recorded run, or a recorded path that cannot be found from here.
    """
    options = dict(given)
    mode = options.pop("resume", False)
    if "data" in options:
        options["data"] = tuple(options["data"] or ())
    out = Path(options["out"])
    if mode == RESUME_AUTO:
        if (out / "last.pt").is_file():
            return _resumed_config(options, out)
        return _new_config(options, out, auto=True)
    if mode:
        return _resumed_config(options, out)
    return TrainConfig(**options)


def recorded_options(config: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint's recorded ``config`` as ``TrainConfig`` keyword arguments (paths as ``Path``, ``data`` a
    tuple); options an older run did not record take today's defaults, which were theirs."""
    known = {f.name for f in fields(TrainConfig)}
    options = {k: v for k, v in config.items() if k in known and k not in _NOT_OPTIONS}
    for name in _PATH_OPTIONS:
        if options.get(name) is not None:
            options[name] = Path(options[name])
    options["data"] = tuple(options.get("data") or ())
    return options


def conflicting_options(given: dict[str, Any], recorded: dict[str, Any]) -> list[str]:
    """``--flag VALUE (the run has RECORDED)`` for each given option that differs from the recorded run's."""
    defaults = TrainConfig(out=Path(".")).to_dict()
    conflicts = []
    for name, value in given.items():
        if name in _NOT_OPTIONS or name in RESUME_MAY_CHANGE:
            continue
        saved = recorded.get(name, defaults.get(name))
        if name in _PATH_OPTIONS and _same_or_moved(value, saved):
            continue
        if _comparable(name, value) != _comparable(name, saved):
            conflicts.append(f"{flag_of(name)} {_shown(value)} (the run has {_shown(saved)})")
    return conflicts


def _resumed_config(given: dict[str, Any], out: Path) -> TrainConfig:
    last = out / "last.pt"
    if not last.is_file():  # --resume on a folder without a finished epoch: TrainConfig says what to do
        return TrainConfig(**{**given, "resume": True})
    recorded = recorded_options(load_checkpoint(last).config)
    conflicts = conflicting_options(given, recorded)
    if conflicts:
        raise TrainConfigError(
            f"--resume: the run in {out} was started with other options; conflicting: {', '.join(conflicts)}. "
            "Leave them out to continue with the run's own, or start a new run in another --out"
        )
    # what may change, and paths given again: the same files by another name, or where data that moved lies now
    changed = {k: v for k, v in given.items() if k in RESUME_MAY_CHANGE or (k in _PATH_OPTIONS and v is not None)}
    _check_recorded_paths({**recorded, **changed}, last)  # where the data is read from now
    return TrainConfig(**{**recorded, **changed, "out": out, "resume": True, "overwrite": False})


def _new_config(given: dict[str, Any], out: Path, auto: bool) -> TrainConfig:
    config = TrainConfig(**given)
    if auto and existing_run_markers(out) == ["best.pt"]:
        # Killed between best.pt and last.pt of epoch 1: nothing to resume from, and a run with these options
        # writes the same best.pt again. A best.pt recorded with other options is someone else's: refused below.
        recorded = recorded_options(load_checkpoint(out / "best.pt").config)
        if not conflicting_options(config.to_dict(), recorded):
            return TrainConfig(**{**given, "replace_first_epoch": True})
    return config


def _check_recorded_paths(recorded: dict[str, Any], last: Path) -> None:
    """Recorded paths are as first given (often relative): say so when one is not found from here."""
    for name in _PATH_OPTIONS:
        path = recorded.get(name)
        if name != "image_cache" and path is not None and not path.exists():
            raise TrainConfigError(
                f"{flag_of(name)} {path}, as recorded in {last}, does not exist from here: run the command in the "
                "folder the run was started in"
            )


def _same_or_moved(given: Any, recorded: Any) -> bool:
    """Whether a path given again names the recorded one's file (``/data/x`` for a recorded ``x``, a link), or
    replaces a recorded path that no longer exists from here (the data moved: the given one must exist)."""
    if given is None or recorded is None or not Path(given).exists():
        return False
    if not Path(recorded).exists():
        return True
    return os.path.samefile(given, recorded)


def _comparable(name: str, value: Any) -> Any:
    if value is None:
        return None
    if name in _PATH_OPTIONS:
        return os.path.abspath(value)  # relative paths: from the folder the run is resumed in
    if name == "data":
        return tuple(value)
    return value


def _shown(value: Any) -> str:
    if isinstance(value, list | tuple):
        return " ".join(str(v) for v in value) or "(none)"
    return "(not set)" if value is None else str(value)
