"""Study-level scoring, shared labels between a model and a table, and the CheXpert competition mean."""

from __future__ import annotations

import numpy as np
import pytest

from models.labels import CHEXPERT_COMPETITION, NIH_LABELS
from training.scoring.study_level import ScoringError, competition_mean, parse_per, per_study, shared_labels

NAN = np.nan


def test_per_study_combines_views_by_max_or_mean() -> None:
    studies = ("s2", "s1", "s2", "s1")
    patients = ("p2", "p1", "p2", "p1")
    targets = np.array([[1, NAN], [0, NAN], [NAN, NAN], [0, 1]])
    probs = np.array([[0.2, 0.4], [0.6, 0.1], [0.8, 0.3], [0.5, 0.9]])
    ids, who, y, p = per_study(studies, patients, targets, probs, "max")
    assert ids == ("s2", "s1") and who == ("p2", "p1")  # first-seen order
    np.testing.assert_array_equal(p, [[0.8, 0.4], [0.6, 0.9]])
    np.testing.assert_array_equal(y, [[1, NAN], [0, 1]])  # any known positive view; unknown where none is known
    _, _, _, mean = per_study(studies, patients, targets, probs, "mean")
    np.testing.assert_allclose(mean, [[0.5, 0.35], [0.55, 0.5]])
    assert parse_per("study:mean") == "mean" and parse_per("image") is None
    with pytest.raises(ScoringError, match="--per must be image, study:max or study:mean"):
        parse_per("patient:max")


def test_shared_labels_and_the_rest_of_each_side() -> None:
    shared = shared_labels(("Effusion", "Mass", "Lung Opacity"), ("Pleural Effusion", "Lung Opacity", "Fracture"))
    assert shared.labels == ("Effusion", "Lung Opacity")
    assert (shared.model_columns, shared.table_columns) == ((0, 2), (0, 1))
    assert (shared.model_only, shared.table_only) == (("Mass",), ("Fracture",))
    with pytest.raises(ScoringError, match="share none"):
        shared_labels(("Mass",), ("Fracture",))


def test_competition_mean_needs_all_five() -> None:
    aurocs: dict[str, float | None] = {name: 0.5 + 0.1 * i for i, name in enumerate(CHEXPERT_COMPETITION)}
    assert competition_mean({**aurocs, "Fracture": 0.0}) == pytest.approx(0.7)
    assert competition_mean({**aurocs, "Edema": None}) is None
    nih = {name: 0.8 for name in NIH_LABELS}  # NIH's Effusion is the competition's Pleural Effusion
    assert competition_mean(nih) == pytest.approx(0.8)
