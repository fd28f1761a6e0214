"""Choosing operating points: Youden's J and the threshold for a specificity, against hand counts and a brute force."""

from __future__ import annotations

import numpy as np
import pytest

from models.labels import NIH_LABELS
from models.operating_points import ClassThreshold, apply_temperature
from training.scoring.thresholds import (
    choose_operating_points,
    specificity_threshold,
    statistics_at,
    stored_points_on,
    youden_threshold,
)

# Negatives score 0.1, 0.2, 0.35, 0.5; positives 0.4 and 0.8.
Y = np.array([0, 1, 0, 1, 0, 0])
P = np.array([0.1, 0.4, 0.35, 0.8, 0.2, 0.5])


def test_youden_by_hand() -> None:
    # cut 0.8: J = 1/2 - 0; cut 0.5: 1/2 - 1/4; cut 0.4: 1 - 1/4 = 3/4 (the best); cut 0.35: 1 - 2/4
    assert youden_threshold(Y, P) == 0.4
    assert statistics_at(Y, P, 0.4) == ClassThreshold(0.4, sensitivity=1.0, specificity=0.75, ppv=2 / 3, npv=1.0)


def test_youden_ties_go_to_the_highest_threshold() -> None:
    # cut 0.9: J = 1/2 - 0; cut 0.6: 1 - 1/2: the same J; the higher cut is chosen
    assert youden_threshold(np.array([1, 0, 1, 0]), np.array([0.9, 0.7, 0.6, 0.1])) == 0.9


def test_specificity_threshold_by_hand() -> None:
    assert specificity_threshold(Y, P, 0.9) == 0.8  # no false positive allowed among 4 negatives
    assert specificity_threshold(Y, P, 0.75) == 0.4  # one allowed: the lowest cut with one is 0.4
    assert specificity_threshold(Y, P, 0.5) == 0.35


def test_specificity_is_compared_in_counts_not_rounded_floats() -> None:
    # 10 negatives at s = 0.9 allow exactly one false positive, though 10 * (1 - 0.9) = 0.9999999999999998
    y = np.array([0] * 10 + [1])
    p = np.array([0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.9, 0.5])
    assert specificity_threshold(y, p, 0.9) == 0.5
    assert statistics_at(y, p, 0.5).specificity == 0.9


def test_a_specificity_no_seen_cut_keeps_puts_the_cut_above_every_score() -> None:
    y, p = np.array([0, 1, 0]), np.array([0.9, 0.3, 0.2])  # the highest score is a negative
    threshold = specificity_threshold(y, p, 0.9)
    assert threshold == np.nextafter(0.9, 1.0)
    assert statistics_at(y, p, threshold) == ClassThreshold(threshold, 0.0, 1.0, None, 2 / 3)


def test_single_valued_classes() -> None:
    scores = np.array([0.2, 0.6, 0.4])
    assert youden_threshold(np.zeros(3), scores) == np.nextafter(0.6, 1.0)  # no positives: nothing called
    assert specificity_threshold(np.zeros(3), scores, 0.6) == 0.6  # one of 3 negatives may be called
    assert youden_threshold(np.ones(3), scores) == 0.2  # no negatives: everything called
    assert specificity_threshold(np.ones(3), scores, 0.9) == 0.2


def _brute_force(y: np.ndarray, p: np.ndarray, specificity: float) -> tuple[float, float]:
    """Every seen score (and one above them all) as a cut, counted directly: the reference for both rules."""
    cuts = [*sorted(set(p.tolist()), reverse=True)]
    positives, negatives = int(y.sum()), int(len(y) - y.sum())
    best_j, youden = -2.0, cuts[0]
    spec_cut = float(np.nextafter(p.max(), 1.0))
    for cut in cuts:  # descending: strict > keeps the highest of equal J
        tp, fp = int(((p >= cut) & (y == 1)).sum()), int(((p >= cut) & (y == 0)).sum())
        j = tp / positives - fp / negatives
        if j > best_j + 1e-12:
            best_j, youden = j, cut
        if (negatives - fp) / negatives >= specificity - 1e-12:
            spec_cut = cut
    return youden, spec_cut


@pytest.mark.parametrize("seed", range(8))
def test_both_rules_match_a_brute_force_with_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(12, 60))
    y = (rng.random(n) < 0.3).astype(np.float64)
    y[:2] = [0, 1]  # both label values present
    p = np.round(rng.random(n) * 0.5 + 0.4 * y, 1 + seed % 2)  # rounded: many tied scores
    for specificity in (0.8, 0.9, 0.95):
        assert (youden_threshold(y, p), specificity_threshold(y, p, specificity)) == _brute_force(y, p, specificity)


def test_choose_operating_points_names_flags_and_describes() -> None:
    rng = np.random.default_rng(0)
    targets = np.zeros((40, 14))
    targets[:12, 0] = 1  # Atelectasis: 12 positives, reliable; the others 2 or none
    targets[:2, 1:13] = 1
    probs = np.clip(rng.random((40, 14)) * 0.6 + 0.3 * targets, 0, 1)
    points = choose_operating_points(
        targets, probs, 0.95, {"data": "synthetic"}, NIH_LABELS, temperature=1.5, default="spec95"
    )
    assert list(points.points) == ["youden", "spec95"]
    assert points.default == "spec95" and points.temperature == 1.5
    assert points.unreliable == NIH_LABELS[1:]
    assert points.source == {"data": "synthetic", "images": 40, "positives": {**dict.fromkeys(NIH_LABELS, 2),
                             "Atelectasis": 12, "Hernia": 0}, "known": dict.fromkeys(NIH_LABELS, 40)}  # fmt: skip
    for k, name in enumerate(NIH_LABELS):
        chosen = points.points["spec95"].thresholds[name]
        assert chosen == statistics_at(
            targets[:, k], probs[:, k], specificity_threshold(targets[:, k], probs[:, k], 0.95)
        )
        assert chosen.specificity is not None and chosen.specificity >= 0.95
    with pytest.raises(ValueError, match="specificity must lie strictly between 0 and 1"):
        choose_operating_points(targets, probs, 1.0, {}, NIH_LABELS)
    with pytest.raises(ValueError, match="default operating point 'spec90' is not one of"):
        choose_operating_points(targets, probs, 0.95, {}, NIH_LABELS, default="spec90")


def test_stored_points_on_other_data_apply_the_temperature_first() -> None:
    targets = np.zeros((4, 14))
    targets[:2] = 1
    raw = np.tile(np.array([[0.3], [0.2], [0.1], [0.05]]), (1, 14))
    points = choose_operating_points(targets, apply_temperature(raw, 2.0), 0.9, {}, NIH_LABELS, temperature=2.0)
    figures = stored_points_on(targets, raw, points, NIH_LABELS)
    cut = apply_temperature(raw, 2.0)[1, 0]  # the lowest positive, calibrated: both points keep every negative out
    assert figures["youden"]["Atelectasis"] == {"threshold": float(cut), "sensitivity": 1.0, "specificity": 1.0,
                                                "ppv": 1.0, "npv": 1.0}  # fmt: skip
    assert figures["spec90"] == figures["youden"]
