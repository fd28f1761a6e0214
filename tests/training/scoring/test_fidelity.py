"""training.scoring.fidelity: AUROC change on known rows only, largest |dp|, and flips at operating points."""

from __future__ import annotations

import numpy as np
import pytest

from models.labels import NIH_LABELS
from models.operating_points import ClassThreshold, OperatingPoint, OperatingPoints
from training.scoring.fidelity import known_auroc, measure_fidelity


def test_known_auroc_leaves_unknown_rows_out() -> None:
    targets = np.array([1, 0, np.nan, 1, 0])
    probs = np.array([0.9, 0.1, 0.0, 0.2, 0.3])  # known pairs: (0.9>0.1) (0.9>0.3) (0.2>0.1) (0.2<0.3) -> 3/4
    assert known_auroc(targets, probs) == pytest.approx(0.75)
    assert known_auroc(np.array([1.0, np.nan]), np.array([0.5, 0.5])) is None


def test_flips_and_differences_are_counted_exactly() -> None:
    labels = NIH_LABELS
    reference = np.full((3, 14), 0.4)
    other = reference.copy()
    other[0, 0] = 0.6  # crosses 0.5 for Atelectasis
    other[1, 1] = 0.45  # moves, crosses nothing
    point = OperatingPoint("test", {name: ClassThreshold(0.5) for name in labels})
    points = OperatingPoints(points={"half": point}, default="half")
    targets = np.full((3, 14), np.nan)
    targets[:, 0] = [1, 0, 0]
    fidelity = measure_fidelity(labels, reference, other, targets, points)
    assert fidelity.max_abs_dp == pytest.approx(0.2)
    assert fidelity.max_abs_dp_per_class["Cardiomegaly"] == pytest.approx(0.05)
    assert fidelity.flips["half"]["Atelectasis"] == 1
    assert sum(fidelity.flips["half"].values()) == 1
    assert fidelity.auroc_reference["Atelectasis"] == pytest.approx(0.5)  # all tied
    assert fidelity.auroc_other["Atelectasis"] == pytest.approx(1.0)
    assert fidelity.auroc_change["Cardiomegaly"] is None
    assert fidelity.mean_auroc_drop == pytest.approx(-0.5)


def test_shapes_must_fit_the_labels() -> None:
    with pytest.raises(ValueError, match="do not fit 14 labels"):
        measure_fidelity(NIH_LABELS, np.zeros((2, 3)), np.zeros((2, 3)), None, None)
