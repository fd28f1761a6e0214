"""Training options, validated before any data is read."""

from __future__ import annotations

import importlib.util
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from models.files import resolve_device
from models.operating_points import DEFAULT_SPECIFICITY, specificity_point_name
from training.data.chexpert_tables import VIEWS
from training.data.label_policies import LabelPolicy, PolicyError
from training.data.label_tables import FORMATS, TableOptions
from training.data.sources import DataOptionError, DataSource, parse_data_option
from training.loop.recipe import recipe_problem
from training.reports.run_files import existing_run_markers

# The service shows the name (CHEXNET_MODEL_NAME has the same bound) and version in every /predict answer.
MAX_MODEL_LABEL = 128


class TrainConfigError(ValueError):
    """An option is invalid; the message says which and what to do."""


@dataclass(frozen=True)
class TrainConfig:
    out: Path
    images: Path | None = None  # with labels: one table; or data: several
    labels: Path | None = None
    data: tuple[str, ...] = ()  # --data KIND:LABELS:IMAGES, repeated
    table_format: str | None = None  # --format (None: detected from the header)
    views: str = "frontal"
    uncertain: str = "ignore"
    blank: str | None = None  # None: each format's documented default
    image_column: str | None = None
    patient_column: str | None = None
    patient_pattern: str | None = None
    label_set: str | None = None  # --label-set NAME|FILE (None: the union of the tables' labels)
    test_fraction: float = 0.0
    test_list: Path | None = None
    epochs: int = 10
    batch_size: int = 16
    image_size: int = 224
    lr: float = 1e-4
    weights: str = "imagenet"
    val_fraction: float = 0.2
    train_list: Path | None = None
    val_list: Path | None = None
    pos_weight: bool = False
    scheduler: str = "plateau"
    device: str = "auto"
    workers: int = 2
    seed: int = 0
    resume: bool = False
    # --resume auto over a run killed between best.pt and last.pt of its first epoch: start it again over best.pt
    replace_first_epoch: bool = False
    skip_unreadable: bool = False
    image_cache: Path | None = None
    specificity: float = DEFAULT_SPECIFICITY  # for best.pt's second operating point (specNN)
    overwrite: bool = False
    model_name: str | None = None  # provenance["model_name"]: what /model and /predict call the model
    model_version: str | None = None  # provenance["model_version"]
    tensorboard: bool = False
    # the recipe's options (training/loop/recipe.py, docs/recipe.md); the defaults are the seed's recipe
    optimizer: str = "adam"
    weight_decay: float = 0.0
    warmup_epochs: int = 0
    ema: float | None = None  # the EMA decay; None: no weight average
    augment: str = "seed"
    precision: str = "auto"
    channels_last: bool = False

    def validate(self) -> None:
        """Raise ``TrainConfigError`` for the first problem found; touches only paths, never the data."""
        self._check_resume_point()  # first: a resume without last.pt lacks the data options too
        self._check_sources()
        for name, value, low in (("--epochs", self.epochs, 1), ("--batch-size", self.batch_size, 1)):
            if value < low:
                raise TrainConfigError(f"{name} must be at least {low}, got {value}")
        if self.image_size < 32:
            raise TrainConfigError(
                f"--image-size must be at least 32 (DenseNet downsamples 32x), got {self.image_size}"
            )
        if not self.lr > 0:
            raise TrainConfigError(f"--lr must be positive, got {self.lr}")
        # a resumed run starts from last.pt, so the checkpoint it was first started from may be gone
        if not self.resume and self.weights not in ("imagenet", "none") and not Path(self.weights).is_file():
            raise TrainConfigError(
                f"--weights must be 'imagenet', 'none' or an existing checkpoint, got {self.weights}"
            )
        if (self.train_list is None) != (self.val_list is None):
            raise TrainConfigError("--train-list and --val-list go together")
        for name, lst in (("--train-list", self.train_list), ("--val-list", self.val_list)):
            if lst is not None and not lst.is_file():
                raise TrainConfigError(f"{name} {lst} is not a file")
        if self.train_list is None and not 0.0 < self.val_fraction < 1.0:
            raise TrainConfigError(f"--val-fraction must be between 0 and 1, got {self.val_fraction}")
        if self.scheduler not in ("plateau", "cosine"):
            raise TrainConfigError(f"--scheduler must be 'plateau' or 'cosine', got {self.scheduler!r}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise TrainConfigError(f"--device must be auto, cpu or cuda, got {self.device!r}")
        try:
            resolve_device(self.device)
        except ValueError as exc:
            raise TrainConfigError(f"--device: {exc}") from None
        if self.workers < 0:
            raise TrainConfigError(f"--workers must be >= 0, got {self.workers}")
        if (problem := recipe_problem(self, self.resolved_device())) is not None:
            raise TrainConfigError(problem)
        self._check_run_folder()
        for flag, label in (("--name", self.model_name), ("--version", self.model_version)):
            if label is not None and not (0 < len(label) <= MAX_MODEL_LABEL and label.isprintable()):
                raise TrainConfigError(f"{flag} must be 1 to {MAX_MODEL_LABEL} printable characters")
        if self.tensorboard and importlib.util.find_spec("tensorboard") is None:
            raise TrainConfigError(
                "--tensorboard needs the tensorboard package, which is not installed: pip install tensorboard "
                "(or leave out --tensorboard: metrics.csv and curves.png are written either way)"
            )
        if self.image_cache is not None:
            _check_writable_folder("--image-cache", self.image_cache)

    def sources(self) -> list[DataSource]:
        """The label tables to read: ``--labels``/``--images`` (with ``--format``), or each ``--data``."""
        if self.data:
            return [parse_data_option(text) for text in self.data]
        if self.labels is None or self.images is None:
            raise TrainConfigError("--labels and --images are needed (or --data KIND:LABELS:IMAGES, repeated)")
        return [DataSource(self.table_format, self.labels, self.images)]

    def table_options(self, kind: str | None) -> TableOptions:
        return TableOptions(
            format=kind,
            views=self.views,
            policy=LabelPolicy(self.uncertain, self.blank),
            image_column=self.image_column,
            patient_column=self.patient_column,
            patient_pattern=self.patient_pattern,
        )

    def _check_sources(self) -> None:
        if self.data and (self.labels is not None or self.images is not None):
            raise TrainConfigError("give --data (repeated) or --labels with --images, not both")
        if not self.data and (self.labels is None or self.images is None):
            raise TrainConfigError("--labels and --images are needed (or --data KIND:LABELS:IMAGES, repeated)")
        if self.table_format is not None and self.table_format not in FORMATS:
            raise TrainConfigError(f"--format must be one of {', '.join(FORMATS)}, got {self.table_format!r}")
        try:
            sources = self.sources()
            LabelPolicy(self.uncertain, self.blank)
        except (DataOptionError, PolicyError) as exc:
            raise TrainConfigError(str(exc)) from None
        for source in sources:
            if not source.images.is_dir():
                raise TrainConfigError(f"--images {source.images} is not a folder")
            if not source.labels.is_file():
                raise TrainConfigError(f"--labels {source.labels} is not a file")
        if self.views not in VIEWS:
            raise TrainConfigError(f"--views must be one of {', '.join(VIEWS)}, got {self.views!r}")
        if not 0.0 <= self.test_fraction < 1.0:
            raise TrainConfigError(f"--test-fraction must be in [0, 1), got {self.test_fraction}")
        if self.test_list is not None and (self.train_list is None or not self.test_list.is_file()):
            raise TrainConfigError("--test-list must be an existing file and goes with --train-list and --val-list")
        if len(sources) > 1 and self.train_list is not None:
            raise TrainConfigError("--train-list/--val-list name one table's images: use them without --data")

    def _check_resume_point(self) -> None:
        """--resume needs a run in --out to continue."""
        if self.resume and self.overwrite:
            raise TrainConfigError("--resume continues the run in --out and --overwrite replaces it: give one")
        if self.resume and not (self.out / "last.pt").is_file():
            if existing_run_markers(self.out) == ["best.pt"]:  # killed between best.pt and last.pt of epoch 1
                raise TrainConfigError(
                    f"--resume needs {self.out / 'last.pt'}, which does not exist: the run stopped during its first "
                    "epoch, after best.pt. Run the same command with --resume auto: it starts the run again over "
                    "best.pt when best.pt's options are the command's"
                )
            raise TrainConfigError(
                f"--resume needs {self.out / 'last.pt'}, which does not exist (no epoch has finished there: "
                "run the command again without --resume, or with --resume auto)"
            )

    def _check_run_folder(self) -> None:
        """A new run needs a folder without one, unless --overwrite replaces it (--resume: _check_resume_point)."""
        if self.image_cache is not None:
            _check_writable_folder("--image-cache", self.image_cache)
        try:
            specificity_point_name(self.specificity)
        except ValueError as exc:
            raise TrainConfigError(f"--specificity: {exc}") from None
        blocker = next((p for p in (self.out, *self.out.parents) if p.exists() and not p.is_dir()), None)
        if blocker is not None:
            raise TrainConfigError(f"--out {self.out}: {blocker} is a file, not a folder")
        held = existing_run_markers(self.out)
        if held and not (self.resume or self.overwrite or (self.replace_first_epoch and held == ["best.pt"])):
            how = "--resume auto (it starts again over a first epoch cut short)" if held == ["best.pt"] else "--resume"
            raise TrainConfigError(
                f"--out {self.out} already holds a run ({', '.join(held)}): continue it with {how}, replace it "
                "with --overwrite, or choose another --out"
            )

    def resolved_device(self) -> torch.device:
        return resolve_device(self.device)

    def to_dict(self) -> dict[str, Any]:
        """Plain types for the checkpoint (paths as given, never resolved to absolute machine paths)."""
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self).items()}


def _check_writable_folder(flag: str, folder: Path) -> None:
    """A folder that exists and can be written, or can be created where its nearest existing parent is."""
    existing = next(p for p in (folder, *folder.absolute().parents) if p.exists())
    if existing == folder and not folder.is_dir():
        raise TrainConfigError(f"{flag} {folder} is not a folder")
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise TrainConfigError(f"{flag} {folder} cannot be written (check {existing})")
