"""arnoweng/CheXNet's ``model.pth.tar`` -> CheXNet weights, key by key (nothing dropped, nothing guessed).

The file (https://github.com/arnoweng/CheXNet, ``model.pth.tar`` beside ``model.py``) is a dict whose
``state_dict`` holds a ``DenseNet121`` wrapper saved through ``nn.DataParallel`` by torch 0.3:

- keys ``module.densenet121.<torchvision densenet121 key>``;
- dense layers in torchvision's pre-0.3 names (``norm.1``, ``relu.1``, ``conv.1``, ``norm.2``, ``conv.2``);
- no ``num_batches_tracked`` (BatchNorm gained it in torch 0.4.1);
- a head ``classifier = Sequential(Linear(1024, 14), Sigmoid())``, hence ``classifier.0.weight`` / ``.bias``.

Its class order is ``CLASS_NAMES`` in arnoweng's ``model.py``, the ChestX-ray14 order of ``models.labels``.
Preprocessing is the seed's: shorter side 256, centre crop 224, ImageNet mean/std (arnoweng's own evaluation
averages ten crops of the same resize; ``chexnet evaluate --tta tencrop`` does that).
"""

from __future__ import annotations

from typing import Any

import torch

from models.network import upgrade_legacy_keys
from models.preprocessing import PreprocessSpec
from training.importers.foreign_weights import ImportSourceError, describe_content

# arnoweng/CheXNet model.py, CLASS_NAMES (spelling included: Pleural_Thickening).
ARNOWENG_CLASS_NAMES = (
    "Atelectasis",
    "Cardiomegaly",
    "Effusion",
    "Infiltration",
    "Mass",
    "Nodule",
    "Pneumonia",
    "Pneumothorax",
    "Consolidation",
    "Edema",
    "Emphysema",
    "Fibrosis",
    "Pleural_Thickening",
    "Hernia",
)
ARNOWENG_SPEC = PreprocessSpec(image_size=224, resize=256)
_PREFIXES = ("module.", "densenet121.")
_HEAD = {"classifier.0.weight": "classifier.weight", "classifier.0.bias": "classifier.bias"}


def arnoweng_state_dict(content: Any) -> dict[str, torch.Tensor]:
    """The file's content -> weights keyed as ``models.network.CheXNet`` keys them (not yet checked strictly).

    Raises ImportSourceError, naming what was found, when the content is not that layout.
    """
    state = content.get("state_dict") if isinstance(content, dict) else None
    if not isinstance(state, dict) or not state:
        raise ImportSourceError(
            f"not arnoweng/CheXNet's layout (a dict with a 'state_dict'): {describe_content(content)}"
        )
    stripped: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        short = str(key)
        for prefix in _PREFIXES:
            short = short.removeprefix(prefix)
        stripped[short] = value
    if not set(_HEAD) <= set(stripped) or "classifier.weight" in stripped:
        raise ImportSourceError(
            "not arnoweng/CheXNet's layout: no Linear + Sigmoid head at (module.)densenet121.classifier.0; "
            f"found {describe_content(content)}"
        )
    renamed = {_HEAD.get(key, key): value for key, value in stripped.items()}
    outputs = renamed["classifier.weight"].shape[0]
    if outputs != len(ARNOWENG_CLASS_NAMES):
        raise ImportSourceError(f"arnoweng/CheXNet's head has 14 outputs, this file's has {outputs}")
    return upgrade_legacy_keys(renamed)


def arnoweng_label_map() -> dict[str, str]:
    """The imported model's label -> the source's output name: arnoweng's 14 ``CLASS_NAMES``, kept as they are."""
    return {name: name for name in ARNOWENG_CLASS_NAMES}
