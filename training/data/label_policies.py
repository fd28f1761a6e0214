"""What uncertain (-1) and blank ("not mentioned") label cells become: 1, 0 or unknown (NaN).

Uncertainty policies are the CheXpert paper's (Irvin et al. 2019, arXiv:1901.07031, section 3): U-Ignore (the
entry is unknown: masked out of the loss and the metrics), U-Zeros (u -> 0) and U-Ones (u -> 1). Blank means the
report does not mention the finding; ``--blank zeros`` reads that as absent, ``--blank ignore`` as unknown. Each
format has its documented default (``BLANK_DEFAULTS``; why, in docs/datasets.md).

CheXpert's No Finding rule: where ``No Finding`` is 1, every other label but ``Support Devices`` is negative (the
labeler sets No Finding only when no pathology is mentioned; a device is not a pathology). Blank cells of such a
row become 0 before the blank policy, so they stay known negatives under ``--blank ignore`` too.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Final

import numpy as np

from models.labels import NO_FINDING, fold_label

logger = logging.getLogger(__name__)

UNCERTAIN_POLICIES: Final = ("ignore", "zeros", "ones")
BLANK_POLICIES: Final = ("ignore", "zeros")
# "not mentioned" per format: CheXpert's and MIMIC-CXR's labelers leave a finding the report does not mention blank;
# a report that does not mention a finding is read as its absence (zeros). A seed or generic table's blank cell is
# a value nobody gave (ignore). NIH's table has no blank cells (an unlisted finding is 0 by construction).
BLANK_DEFAULTS: Final = {"nih": "zeros", "onehot": "ignore", "chexpert": "zeros", "mimic": "zeros", "generic": "ignore"}
SUPPORT_DEVICES: Final = "Support Devices"


class PolicyError(ValueError):
    """An unknown uncertainty or blank policy."""


@dataclass(frozen=True)
class LabelPolicy:
    """``uncertain``: ignore | zeros | ones; ``blank``: ignore | zeros | None (the format's default)."""

    uncertain: str = "ignore"
    blank: str | None = None

    def __post_init__(self) -> None:
        if self.uncertain not in UNCERTAIN_POLICIES:
            raise PolicyError(f"--uncertain must be one of {', '.join(UNCERTAIN_POLICIES)}, got {self.uncertain!r}")
        if self.blank is not None and self.blank not in BLANK_POLICIES:
            raise PolicyError(f"--blank must be one of {', '.join(BLANK_POLICIES)}, got {self.blank!r}")

    def blank_for(self, kind: str) -> str:
        return self.blank if self.blank is not None else BLANK_DEFAULTS[kind]

    def describe(self, kind: str) -> dict[str, str]:
        """The policy as recorded in provenance: ``{"uncertain": ..., "blank": ...}`` with the default resolved."""
        return {"uncertain": self.uncertain, "blank": self.blank_for(kind)}


def apply_no_finding_rule(codes: np.ndarray, labels: tuple[str, ...]) -> int:
    """In place: where No Finding is 1, blank cells of every label but No Finding and Support Devices become 0.

    Returns how many rows say No Finding together with a positive or uncertain pathology (left as they are).
    """
    folded = [fold_label(name) for name in labels]
    if fold_label(NO_FINDING) not in folded:
        return 0
    no_finding = codes[:, folded.index(fold_label(NO_FINDING))] == 1.0
    exempt = {fold_label(NO_FINDING), fold_label(SUPPORT_DEVICES)}
    others = [k for k, name in enumerate(folded) if name not in exempt]
    block = codes[np.ix_(no_finding, others)]
    contradictions = int(((block == 1.0) | (block == -1.0)).any(axis=1).sum())
    codes[np.ix_(no_finding, others)] = np.where(np.isnan(block), 0.0, block)
    if contradictions:
        logger.warning("%d rows say No Finding with a positive or uncertain pathology; kept as given", contradictions)
    return contradictions


def apply_policy(codes: np.ndarray, policy: LabelPolicy, kind: str) -> np.ndarray:
    """(N, K) codes (1, 0, -1, NaN = blank) -> (N, K) float32 targets (1, 0, NaN = unknown) under ``policy``."""
    uncertain = {"ignore": np.nan, "zeros": 0.0, "ones": 1.0}[policy.uncertain]
    blank = {"ignore": np.nan, "zeros": 0.0}[policy.blank_for(kind)]
    targets = np.where(codes == -1.0, uncertain, codes)
    targets = np.where(np.isnan(codes), blank, targets)
    return targets.astype(np.float32)
