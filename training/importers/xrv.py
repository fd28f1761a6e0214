"""A torchxrayvision DenseNet-121 state dict -> CheXNet weights, spec and operating points, exactly.

torchxrayvision (https://github.com/mlmed/torchxrayvision, ``torchxrayvision/models.py`` and ``datasets.py``,
version 1.5.7) differs from our network in three ways, each mapped without approximation:

- **One input channel.** Its input is an image scaled to [-1024, 1024]: ``(2 * x / maxval - 1) * 1024``
  (``utils.normalize``), i.e. ``2048 * g - 1024`` for our grey image ``g`` in [0, 1]. Our input repeats ``g`` on
  3 channels and normalises each as ``(g - mean) / std``; mean 0.5 and std 1/2048 give exactly ``2048 g - 1024``
  (1/2048 is a power of two, so even the float32 rounding is the same). The first convolution's (64, 1, 7, 7)
  weight becomes (64, 3, 7, 7) with the weight divided by 3 on each channel: the same sum over equal channels.
- **Crop, then resize.** ``XRayCenterCrop`` takes the centred square of the original, then ``XRayResizer(224)``
  resizes it: ``PreprocessSpec.crop_first``. Our resize is torch's antialiased bilinear, the one xrv's model
  applies itself to a square input of another size (``utils.fix_resolution``); ``XRayResizer`` uses
  skimage's, which differs slightly (README, "Real models", gives the measured difference).
- **18 outputs in its own order**, some unused by a given set of weights (named ``''`` in ``model_urls``; xrv
  returns 0.5 for them once ``op_threshs`` are set). Every output a set of weights was trained on is kept, under
  xrv's name and in xrv's order, as the checkpoint's labels; the others are dropped and listed in the provenance
  (``XRV_WEIGHTS`` below is the table, ``docs/labels-serving.md`` prints it).

What is served is the sigmoid of the logit. xrv's model, when ``op_threshs`` are set, returns ``op_norm`` of it
instead, a piecewise-linear rescaling that puts each threshold at 0.5; it is monotone, so "above xrv's threshold"
is the same decision either way. The thresholds are carried as the operating point ``xrv``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from models.labels import validate_labels
from models.operating_points import ClassThreshold, OperatingPoint, OperatingPoints
from models.preprocessing import PreprocessSpec
from training.importers.foreign_weights import ImportSourceError, describe_content

# datasets.default_pathologies: the order of every xrv DenseNet's 18 outputs.
XRV_PATHOLOGIES = (
    "Atelectasis",
    "Consolidation",
    "Infiltration",
    "Pneumothorax",
    "Edema",
    "Emphysema",
    "Fibrosis",
    "Effusion",
    "Pneumonia",
    "Pleural_Thickening",
    "Cardiomegaly",
    "Nodule",
    "Mass",
    "Hernia",
    "Lung Lesion",
    "Fracture",
    "Lung Opacity",
    "Enlarged Cardiomediastinum",
)
XRV_SPEC = PreprocessSpec(
    image_size=224, resize=224, mean=(0.5, 0.5, 0.5), std=(1 / 2048, 1 / 2048, 1 / 2048), crop_first=True
)
_RELEASES = "https://github.com/mlmed/torchxrayvision/releases/download/v1/"
_SUFFIX = "densenet121-d121-tw-lr001-rot45-tr15-sc15-seed0-best.pt"


@dataclass(frozen=True)
class XrvWeights:
    """One published set of xrv DenseNet-121 weights: its release file, output names and ``op_threshs``."""

    name: str  # the short name; xrv also calls it densenet121-res224-<name>
    file_name: str
    labels: tuple[str, ...]  # 18, '' where these weights have no such output
    op_threshs: tuple[float | None, ...]  # 18, None where xrv has NaN

    @property
    def url(self) -> str:
        return _RELEASES + self.file_name

    @property
    def kept(self) -> tuple[str, ...]:
        """The outputs these weights were trained on, in xrv's order: the imported model's labels."""
        return tuple(label for label in self.labels if label)

    @property
    def kept_outputs(self) -> tuple[int, ...]:
        """The positions of ``kept`` among the 18 outputs."""
        return tuple(index for index, label in enumerate(self.labels) if label)

    @property
    def dropped(self) -> tuple[str, ...]:
        """The outputs they were not trained on, as ``"<default_pathologies name> (output <i>)"``."""
        return tuple(f"{XRV_PATHOLOGIES[i]} (output {i})" for i, label in enumerate(self.labels) if not label)


def _weights(name: str, file_stem: str, predicted: tuple[str, ...], thresholds: str) -> XrvWeights:
    by_label = dict(zip(predicted, (float(t) for t in thresholds.split()), strict=True))
    labels = tuple(label if label in by_label else "" for label in XRV_PATHOLOGIES)
    return XrvWeights(name, f"{file_stem}-{_SUFFIX}", labels, tuple(by_label.get(label) for label in labels))


# model_urls in torchxrayvision/models.py (1.5.7): which outputs each DenseNet-121 has, and their op_threshs.
_NIH = XRV_PATHOLOGIES[:14]
_CHEX: tuple[str, ...] = ("Atelectasis", "Consolidation", "Pneumothorax", "Edema", "Effusion", "Pneumonia")
_CHEX += ("Cardiomegaly", "Lung Lesion", "Fracture", "Lung Opacity", "Enlarged Cardiomediastinum")
XRV_WEIGHTS: dict[str, XrvWeights] = {
    w.name: w
    for w in (
        _weights(
            "all",
            "nih-pc-chex-mimic_ch-google-openi-kaggle",
            XRV_PATHOLOGIES,
            "0.07422872 0.038290843 0.09814756 0.0098118475 0.023601074 0.0022490358 0.010060724 0.103246614 "
            "0.056810737 0.026791653 0.050318155 0.023985857 0.01939503 0.042889766 0.053369623 0.035975814 "
            "0.20204692 0.05015312",
        ),
        _weights(
            "nih",
            "nih",
            _NIH,
            "0.039117552 0.0034529066 0.11396341 0.0057298196 0.00045666535 0.0018880932 0.012037827 0.038744126 "
            "0.0037213727 0.014730946 0.016149804 0.054241467 0.037198864 0.0004403434",
        ),
        _weights(
            "pc",
            "pc",
            (*_NIH, "Fracture"),
            "0.031012505 0.013347598 0.081435576 0.001262615 0.002587246 0.0035944257 0.0023071 0.055412333 "
            "0.044385884 0.042766232 0.043258056 0.037629247 0.005658899 0.0091741895 0.026507627",
        ),
        _weights(
            "chex",
            "chex",
            _CHEX,
            "0.1988969 0.05710573 0.0531293 0.1435217 0.27212676 0.07749717 0.19712369 0.09932402 0.09273402 "
            "0.3270967 0.10888247",
        ),
        _weights("rsna", "kaggle", ("Pneumonia", "Lung Opacity"), "0.13486601 0.13511065"),
        _weights(
            "mimic_nb",
            "mimic_nb",
            _CHEX,
            "0.08558747 0.011884617 0.0040595434 0.010733786 0.118761964 0.022924708 0.06358637 0.022143636 "
            "0.017476924 0.1258702 0.014020768",
        ),
        _weights(
            "mimic_ch",
            "mimic_ch",
            _CHEX,
            "0.09121389 0.010573786 0.005023008 0.003698257 0.08001232 0.037242252 0.05006329 0.019866971 "
            "0.03823637 0.11303808 0.0069147074",
        ),
    )
}


@dataclass(frozen=True)
class XrvImport:
    """What the import makes of a state dict: CheXNet-keyed weights (K outputs), the K labels kept with their xrv
    output index, thresholds."""

    state_dict: dict[str, torch.Tensor]
    output_index: dict[str, int]  # label -> xrv output, in the model's (xrv's) order
    operating_points: OperatingPoints | None

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self.output_index)


def find_xrv_weights(requested: str | None, file_name: str) -> XrvWeights:
    """``--xrv-weights`` (``all`` or ``densenet121-res224-all``), else the release file's own name; or raise."""
    if requested is not None:
        short = requested.removeprefix("densenet121-res224-")
        if short not in XRV_WEIGHTS:
            raise ImportSourceError(f"unknown torchxrayvision weights {requested!r}; known: {', '.join(XRV_WEIGHTS)}")
        return XRV_WEIGHTS[short]
    for weights in XRV_WEIGHTS.values():
        if file_name == weights.file_name:
            return weights
    raise ImportSourceError(
        "which torchxrayvision weights these are (their output names and thresholds are not in the file) cannot "
        f"be told from the file name; pass --xrv-weights, one of: {', '.join(XRV_WEIGHTS)}"
    )


def xrv_import(content: Any, weights: XrvWeights) -> XrvImport:
    """An xrv DenseNet state dict (plain keys, 1-channel stem, 18 outputs) -> our weights; raises ImportSourceError."""
    state = content if isinstance(content, dict) else None
    stem = state.get("features.conv0.weight") if state is not None else None
    head = state.get("classifier.weight") if state is not None else None
    if not (isinstance(stem, torch.Tensor) and isinstance(head, torch.Tensor)) or state is None:
        raise ImportSourceError(f"not a torchxrayvision DenseNet state dict: found {describe_content(content)}")
    if tuple(stem.shape) != (64, 1, 7, 7) or tuple(head.shape) != (len(XRV_PATHOLOGIES), 1024):
        raise ImportSourceError(
            "not a torchxrayvision DenseNet-121 (a 64x1x7x7 first convolution and an 18x1024 head): "
            f"found {describe_content(content)}"
        )
    output_index = xrv_output_index(weights)
    rows = torch.tensor(list(output_index.values()))
    converted = {str(k): v for k, v in state.items() if k != "op_threshs"}  # xrv's thresholds: a buffer, not weights
    converted["features.conv0.weight"] = (stem / 3).expand(-1, 3, -1, -1).contiguous()
    converted["classifier.weight"] = head.index_select(0, rows).contiguous()
    bias = state.get("classifier.bias")
    if isinstance(bias, torch.Tensor) and tuple(bias.shape) == (len(XRV_PATHOLOGIES),):
        converted["classifier.bias"] = bias.index_select(0, rows).contiguous()
    else:  # the strict load names it
        converted.pop("classifier.bias", None)
    return XrvImport(converted, output_index, xrv_operating_points(weights, output_index))


def xrv_output_index(weights: XrvWeights) -> dict[str, int]:
    """Each label the weights were trained on -> its position among the 18 outputs, in xrv's order (validated as a
    model's labels: ``models.labels.validate_labels``)."""
    validate_labels(weights.kept)
    return {label: index for index, label in enumerate(weights.labels) if label}


def xrv_operating_points(weights: XrvWeights, output_index: dict[str, int]) -> OperatingPoints | None:
    """xrv's ``op_threshs`` as the operating point ``xrv`` (None if one of the kept outputs has none)."""
    values = {name: weights.op_threshs[index] for name, index in output_index.items()}
    if any(value is None or not math.isfinite(value) for value in values.values()):
        return None
    point = OperatingPoint(
        description=f"torchxrayvision's op_threshs for densenet121-res224-{weights.name}, on the sigmoid output "
        "(xrv's op_norm puts each at 0.5); chosen by xrv's authors on their data, statistics not published with them",
        thresholds={
            name: ClassThreshold(threshold=float(value)) for name, value in values.items() if value is not None
        },
    )
    source = {"data": f"torchxrayvision densenet121-res224-{weights.name} (op_threshs in torchxrayvision/models.py)"}
    return OperatingPoints(points={"xrv": point}, default="xrv", source={**source, "weights": weights.file_name})
