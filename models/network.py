"""DenseNet-121 whose head returns logits, split into forward_features (norm5 map) and forward_head.

The state_dict keys are exactly torchvision's ``densenet121`` keys with ``classifier`` a single
``Linear(1024, num_classes)``, so torchvision and CheXNet-style weights load with ``strict=True``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torchvision.models import DenseNet

from models.errors import WeightsUnavailableError
from models.pretrained import DENSENET121_IMAGENET, load_pretrained_state

logger = logging.getLogger(__name__)

NUM_FEATURES = 1024
# Old torchvision / CheXNet checkpoints name layers "norm.1", "conv.2"; current ones "norm1", "conv2".
_LEGACY_LAYER_KEY = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var|num_batches_tracked))$"
)


class CheXNet(DenseNet):  # type: ignore[misc]  # torchvision ships no type information
    """DenseNet-121 with a ``Linear(1024, num_classes)`` head producing logits (no sigmoid inside).

    ``num_classes`` is K, the number of the model's labels (``len(labels)``; the checkpoint carries them).
    """

    def __init__(self, num_classes: int) -> None:
        if num_classes < 1:
            raise ValueError(f"a model needs at least one output, got {num_classes}")
        super().__init__(growth_rate=32, block_config=(6, 12, 24, 16), num_init_features=64, num_classes=num_classes)

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) normalised images -> (N, 1024, H/32, W/32) norm5 map, before the ReLU."""
        out: torch.Tensor = self.features(images)
        return out

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """(N, 1024, h, w) norm5 map -> (N, num_classes) logits: ReLU -> global average pool -> Linear."""
        # Not in place (unlike torchvision's forward): Grad-CAM reads the pre-ReLU map afterwards.
        pooled = F.adaptive_avg_pool2d(F.relu(features), 1).flatten(1)
        logits: torch.Tensor = self.classifier(pooled)
        return logits

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) -> (N, num_classes) logits."""
        return self.forward_head(self.forward_features(images))


def upgrade_legacy_keys(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename pre-0.3 torchvision DenseNet keys (``norm.1``) to current ones (``norm1``); others unchanged."""
    upgraded: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        match = _LEGACY_LAYER_KEY.match(key)
        upgraded[match.group(1) + match.group(2) if match else key] = value
    return upgraded


def imagenet_backbone_state() -> dict[str, torch.Tensor]:
    """torchvision's ImageNet DenseNet-121 weights without the classifier, hash-checked and ``weights_only``.

    Raises :class:`WeightsUnavailableError` when they are not cached and cannot be downloaded, or fail a check.
    """
    state = load_pretrained_state(DENSENET121_IMAGENET)  # its layer names are the legacy "norm.1" form
    return {k: v for k, v in upgrade_legacy_keys(state).items() if not k.startswith("classifier.")}


def build_network(init: str, num_classes: int) -> CheXNet:
    """A fresh CheXNet with ``num_classes`` outputs (K = len(labels)): ``init`` is ``"none"`` (random) or
    ``"imagenet"`` (pretrained backbone, new head)."""
    model = CheXNet(num_classes=num_classes)
    if init == "imagenet":
        missing, unexpected = model.load_state_dict(imagenet_backbone_state(), strict=False)
        if unexpected or set(missing) != {"classifier.weight", "classifier.bias"}:
            raise WeightsUnavailableError("ImageNet weights do not match DenseNet-121's layout.")
        logger.info("initialised the backbone from torchvision ImageNet weights")
    elif init != "none":
        raise ValueError(f"unknown initialisation {init!r}: use 'imagenet' or 'none' (or a checkpoint path)")
    return model
