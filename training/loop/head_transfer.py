"""Fine-tuning across label sets: keep a network's backbone, give it one head row per new label.

A row whose label matches one of the old labels by ``models.labels.label_key`` (``Effusion`` = ``Pleural
Effusion``) is copied with its bias; the others keep a fresh ``nn.Linear``'s initialisation (seeded by the run).
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from models.labels import align_labels
from models.network import CheXNet

logger = logging.getLogger(__name__)


def refit_head(
    model: CheXNet, old_labels: tuple[str, ...], new_labels: tuple[str, ...]
) -> tuple[CheXNet, dict[str, Any] | None]:
    """``model`` (outputs ``old_labels``) -> a network with outputs ``new_labels`` and the same backbone, and what
    was done, for provenance: ``{"copied": {new: old}, "initialised": [new...]}`` (None when the labels are equal).
    """
    if tuple(old_labels) == tuple(new_labels):
        return model, None
    mapping = align_labels(old_labels, new_labels)  # {new index: old index}
    fresh = CheXNet(num_classes=len(new_labels))
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("classifier.")}
    missing, unexpected = fresh.load_state_dict(state, strict=False)
    if unexpected or set(missing) != {"classifier.weight", "classifier.bias"}:
        raise ValueError("the checkpoint's backbone does not fit DenseNet-121")
    with torch.no_grad():
        for new, old in mapping.items():
            fresh.classifier.weight[new] = model.classifier.weight[old]
            fresh.classifier.bias[new] = model.classifier.bias[old]
    copied = {new_labels[new]: old_labels[old] for new, old in sorted(mapping.items())}
    initialised = [name for index, name in enumerate(new_labels) if index not in mapping]
    logger.info(
        "fine-tuning across label sets: backbone kept, %d head rows copied, %d initialised (%s)",
        len(copied),
        len(initialised),
        ", ".join(initialised) or "none",
    )
    return fresh.train(), {"copied": copied, "initialised": initialised}
