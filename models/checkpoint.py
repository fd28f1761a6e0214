"""A self-describing checkpoint: weights + labels + preprocessing spec + config + metrics + provenance
(+ optional operating points, a section with its own version: checkpoints without it load as before).

Loadable with ``torch.load(..., weights_only=True)`` (plain containers, numbers, strings and tensors only),
written atomically (temporary file in the same folder, fsync, rename), and loaded strictly: a missing,
corrupt or incompatible file raises ``CheckpointError`` with a message a person can act on.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from models import __version__
from models.errors import CheckpointError
from models.files import write_atomically
from models.labels import LabelSetError, validate_labels
from models.network import NUM_FEATURES, CheXNet, build_network
from models.operating_points import OperatingPoints
from models.preprocessing import PreprocessSpec

logger = logging.getLogger(__name__)

FORMAT = "chexnet-checkpoint"
# Version 2 adds one thing a version-1 reader would silently get wrong: a preprocessing spec with crop_first (an
# older reader drops the unknown field and crops the seed's way). So only such files are written as version 2;
# every other checkpoint is still written as version 1 and reads everywhere as before.
FORMAT_VERSION = 2
ARCH = "densenet121"


@dataclass
class Checkpoint:
    """Everything needed to rebuild, describe and (optionally) resume a model.

    ``labels`` are the model's K outputs in order (any tuple that passes ``models.labels.validate_labels``; NIH's
    14 for NIH runs and the bundled model); the head is ``Linear(1024, K)``; operating points, when present, have
    a threshold for exactly these labels.
    """

    state_dict: dict[str, torch.Tensor]
    spec: PreprocessSpec
    labels: tuple[str, ...]
    config: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    training_state: dict[str, Any] | None = None
    operating_points: OperatingPoints | None = None  # per-class thresholds (models/operating_points.py)
    sha256: str | None = None  # of the file it was loaded from (not stored in the file)

    def build_model(self) -> CheXNet:
        """The network with these weights, strictly loaded, in eval mode, on the CPU."""
        model = CheXNet(num_classes=len(self.labels))
        try:
            model.load_state_dict(self.state_dict, strict=True)
        except RuntimeError as exc:
            expected = set(model.state_dict())
            missing, unexpected = expected - set(self.state_dict), set(self.state_dict) - expected
            raise CheckpointError(
                f"checkpoint weights do not fit DenseNet-121 with {len(self.labels)} outputs "
                f"({len(missing)} missing keys, {len(unexpected)} unexpected keys, or mismatched shapes)"
            ) from exc
        model.eval()
        return model

    def to_payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "format": FORMAT,
            "format_version": 2 if self.spec.crop_first else 1,
            "arch": ARCH,
            "labels": list(self.labels),
            "preprocess": self.spec.to_dict(),
            "state_dict": self.state_dict,
            "config": self.config,
            "metrics": self.metrics,
            "provenance": {"chexnet_version": __version__, "torch_version": str(torch.__version__), **self.provenance},
        }
        if self.training_state is not None:
            payload["training_state"] = self.training_state
        if self.operating_points is not None:
            payload["operating_points"] = self.operating_points.to_dict()
        return payload


def save_checkpoint(checkpoint: Checkpoint, path: str | os.PathLike[str]) -> Path:
    """Write atomically: a crash leaves either the old file or the new one, never half of one."""
    payload = checkpoint.to_payload()
    return write_atomically(path, lambda handle: torch.save(payload, handle))


def _read_payload(path: Path, map_location: str | torch.device) -> tuple[dict[str, Any], str]:
    """The payload and the SHA-256 of the very bytes it was read from (the file may be replaced meanwhile)."""
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        data = path.read_bytes()
    except OSError as exc:  # e.g. mode 0600 owned by another user, as a container's mount can be
        reason = "permission denied" if isinstance(exc, PermissionError) else exc.strerror or type(exc).__name__
        raise CheckpointError(f"cannot read checkpoint {path}: {reason}") from exc
    try:
        payload = torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)
    except Exception as exc:  # pickle, zip and EOF errors all mean the file is unusable
        raise CheckpointError(
            f"checkpoint {path} is corrupt, truncated, or holds objects other than tensors and plain data "
            f"({type(exc).__name__}); only weights_only checkpoints are accepted"
        ) from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a chexnet checkpoint (no '{FORMAT}' format marker)")
    return payload, hashlib.sha256(data).hexdigest()


def load_checkpoint(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> Checkpoint:
    """Read and validate a checkpoint; raises ``CheckpointError`` saying what is wrong."""
    path = Path(path)
    payload, digest = _read_payload(path, map_location)
    version = payload.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format version {version!r}; this code reads up to {FORMAT_VERSION}"
        )
    if payload.get("arch") != ARCH:
        raise CheckpointError(f"{path} holds architecture {payload.get('arch')!r}, expected {ARCH!r}")
    labels = _read_labels(path, payload.get("labels"))
    state_dict = payload.get("state_dict")
    if not isinstance(state_dict, dict) or not state_dict:
        raise CheckpointError(f"{path} has no weights")
    _check_head(path, state_dict, labels)
    if not isinstance(payload.get("preprocess"), dict):
        raise CheckpointError(
            f"{path} has no preprocessing spec; the size and normalisation it was trained with are unknown"
        )
    try:
        spec = PreprocessSpec.from_dict(payload["preprocess"])
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path} has an invalid preprocessing spec: {exc}") from exc
    return Checkpoint(
        state_dict=state_dict,
        spec=spec,
        labels=labels,
        config=payload.get("config", {}),
        metrics=payload.get("metrics", {}),
        provenance=payload.get("provenance", {}),
        training_state=payload.get("training_state"),
        operating_points=(
            OperatingPoints.from_dict(payload["operating_points"], labels) if "operating_points" in payload else None
        ),
        sha256=digest,
    )


def _read_labels(path: Path, stored: Any) -> tuple[str, ...]:
    """The payload's ``labels``, validated once (``models.labels.validate_labels``)."""
    if not isinstance(stored, list | tuple):
        raise CheckpointError(f"{path} has no label list")
    try:
        return validate_labels(tuple(stored))
    except LabelSetError as exc:
        raise CheckpointError(f"{path} has an invalid label list: {exc}") from exc


def _check_head(path: Path, state_dict: dict[str, Any], labels: tuple[str, ...]) -> None:
    """The classifier must have one row per label: weight (K, 1024), bias (K,)."""
    weight, bias = state_dict.get("classifier.weight"), state_dict.get("classifier.bias")
    k = len(labels)
    if not (isinstance(weight, torch.Tensor) and isinstance(bias, torch.Tensor)):
        raise CheckpointError(f"{path} has no classifier weights")
    if tuple(weight.shape) != (k, NUM_FEATURES) or tuple(bias.shape) != (k,):
        raise CheckpointError(
            f"{path} has {k} labels but a classifier of shape {tuple(weight.shape)}; expected ({k}, {NUM_FEATURES})"
        )


def initial_network(init: str, num_classes: int) -> tuple[CheXNet, PreprocessSpec | None]:
    """``imagenet`` | ``none`` | a checkpoint path -> the starting network (and that checkpoint's spec, if any).

    ``num_classes`` is K for a fresh network; a checkpoint brings its own labels and head.
    """
    if init in ("imagenet", "none"):
        return build_network(init, num_classes), None
    checkpoint = load_checkpoint(init)
    logger.info("initialised from a checkpoint (fine-tuning)")
    return checkpoint.build_model().train(), checkpoint.spec
