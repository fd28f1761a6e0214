"""``chexnet import``: published weights of other projects -> a chexnet checkpoint the service serves as it is.

read (``weights_only``) -> map the source layout to CheXNet's keys (``import_arnoweng``, ``import_xrv``) -> load
strictly -> save with the source's labels (every output it was trained on), preprocessing, operating points and
provenance. Strictly means every key
of the network is filled from the file and every tensor of the file is used, shapes included; the one
exception is BatchNorm's ``num_batches_tracked``, which files written before torch 0.4.1 lack and which eval
never reads (it is filled with 0, as torch's own loader does for such files). A non-strict load that silently
dropped keys is how a sibling project served a model at AUROC 0.518.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from models.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from models.network import CheXNet
from models.operating_points import OperatingPoints
from training.importers.arnoweng import ARNOWENG_CLASS_NAMES, ARNOWENG_SPEC, arnoweng_label_map, arnoweng_state_dict
from training.importers.foreign_weights import ImportSourceError, SourceFile, read_source_file
from training.importers.xrv import XRV_SPEC, find_xrv_weights, xrv_import
from training.reports.provenance import command_line, git_commit

logger = logging.getLogger(__name__)

SOURCES = ("arnoweng", "torchxrayvision")


@dataclass(frozen=True)
class ImportRequest:
    """What ``chexnet import`` was asked: the source layout and file, the output, and how to name the model."""

    source: str  # one of SOURCES
    src: Path
    out: Path
    name: str | None = None
    model_version: str | None = None
    xrv_weights: str | None = None


def import_checkpoint(request: ImportRequest) -> Checkpoint:
    """Read and convert ``request.src``; raises ImportSourceError (unreadable, wrong layout, missing class)."""
    source = read_source_file(request.src)
    if request.source == "arnoweng":
        state, spec, points = arnoweng_state_dict(source.content), ARNOWENG_SPEC, None
        labels: tuple[str, ...] = ARNOWENG_CLASS_NAMES
        mapping = arnoweng_label_map()
        details: dict[str, Any] = {"format": "arnoweng/CheXNet model.pth.tar"}
        default_name = "chexnet-arnoweng"
    elif request.source == "torchxrayvision":
        weights = find_xrv_weights(request.xrv_weights, source.file_name)
        converted = xrv_import(source.content, weights)
        state, spec, points, labels = converted.state_dict, XRV_SPEC, converted.operating_points, converted.labels
        mapping = {name: f"{weights.labels[index]} (output {index})" for name, index in converted.output_index.items()}
        details = {"format": "torchxrayvision DenseNet-121 state dict", "weights": f"densenet121-res224-{weights.name}"}
        details["published"] = weights.url
        details["dropped_outputs"] = list(weights.dropped)  # outputs these weights were never trained on
        default_name = f"xrv-densenet121-res224-{weights.name}"
    else:
        raise ImportSourceError(f"unknown source {request.source!r}; use one of {', '.join(SOURCES)}")
    return Checkpoint(
        state_dict=strict_chexnet_state(state, len(labels)),
        spec=spec,
        labels=labels,
        operating_points=points,
        provenance=_provenance(request, source, details, mapping, points, default_name),
    )


def run_import(request: ImportRequest) -> Checkpoint:
    """Import, write ``request.out`` atomically, and read it back as the service does (strict, weights_only)."""
    path = save_checkpoint(import_checkpoint(request), request.out)
    written = load_checkpoint(path)
    written.build_model()
    logger.info("imported %s weights; the checkpoint loads strictly", request.source)
    return written


def strict_chexnet_state(state: dict[str, torch.Tensor], num_classes: int) -> dict[str, torch.Tensor]:
    """Mapped weights -> the complete state dict of CheXNet with ``num_classes`` outputs (K, the labels kept),
    loaded with ``strict=True``; raises ImportSourceError.

    Only ``num_batches_tracked`` may be absent (filled with 0); any other missing or extra key, or a shape that
    differs, is an error naming a few of them.
    """
    model = CheXNet(num_classes)
    expected = model.state_dict()
    filled = dict(state)
    for key in expected:
        if key.endswith(".num_batches_tracked") and key not in filled:
            filled[key] = torch.zeros((), dtype=torch.long)
    missing = sorted(set(expected) - set(filled))
    unexpected = sorted(set(filled) - set(expected))
    misshapen = sorted(k for k in set(expected) & set(filled) if tuple(filled[k].shape) != tuple(expected[k].shape))
    if missing or unexpected or misshapen:
        raise ImportSourceError(
            "the weights do not fit DenseNet-121 key for key: "
            + "; ".join(
                f"{len(keys)} {what} (e.g. {', '.join(keys[:3])})"
                for what, keys in (("missing", missing), ("unexpected", unexpected), ("misshapen", misshapen))
                if keys
            )
        )
    model.load_state_dict(filled, strict=True)
    return {key: value.detach().clone() for key, value in model.state_dict().items()}


def _provenance(
    request: ImportRequest,
    source: SourceFile,
    details: dict[str, Any],
    labels: dict[str, Any],
    points: OperatingPoints | None,
    default_name: str,
) -> dict[str, Any]:
    """What ``/model`` shows: the source (format, file name, SHA-256, labels mapping), the command, a note."""
    note = f"Imported from {details['format']}, not trained here. Probabilities are the sigmoid of each logit."
    if points is not None:
        note += " The source's own thresholds are the operating point 'xrv'."
    provenance: dict[str, Any] = {
        "model_name": request.name or default_name,
        "source": {**details, "file": source.file_name, "sha256": source.sha256, "labels": labels},
        "note": note,
        "command": command_line(),
        "git_commit": git_commit(),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if request.model_version:
        provenance["model_version"] = request.model_version
    return provenance
