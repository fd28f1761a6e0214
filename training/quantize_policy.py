"""What ``chexnet quantize`` calibrates on and when it refuses, as plain constants: the command-line parser reads
them without importing the quantizer (OpenVINO, NNCF, the label readers), so that a serving install, which has none
of the training extras, can still build ``chexnet``'s parser and run ``chexnet serve``."""

from __future__ import annotations

from typing import Final

DEFAULT_MAX_IMAGES: Final = 300  # NNCF's default calibration subset size
DEFAULT_MAX_AUROC_DROP: Final = 0.005  # mean AUROC over classes, fp32 - int8, on the calibration images
