"""Temperature scaling and reliability bins: the fitted T recovers a known one; bins and ECE by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from training.scoring.temperature import binary_nll, fit_temperature, reliability_bins


def test_fit_recovers_the_temperature_that_made_the_scores_overconfident() -> None:
    rng = np.random.default_rng(0)
    true_logits = rng.normal(-1.0, 1.5, size=(4000, 14))
    targets = (rng.random(true_logits.shape) < 1 / (1 + np.exp(-true_logits))).astype(np.float64)
    overconfident = 1 / (1 + np.exp(-2.0 * true_logits))  # logits doubled: T = 2 undoes it
    temperature = fit_temperature(targets, overconfident)
    assert temperature == pytest.approx(2.0, abs=0.05)
    # it is the minimiser: a step either side costs likelihood
    best = binary_nll(targets, overconfident, temperature)
    assert best < binary_nll(targets, overconfident, temperature * 1.02)
    assert best < binary_nll(targets, overconfident, temperature / 1.02)
    assert best < binary_nll(targets, overconfident)  # and beats the raw scores


def test_binary_nll_by_hand() -> None:
    # -(log 0.8 + log(1 - 0.4)) / 2 = (0.2231 + 0.5108) / 2
    assert binary_nll(np.array([1.0, 0.0]), np.array([0.8, 0.4])) == pytest.approx(
        -(math.log(0.8) + math.log(0.6)) / 2, rel=1e-12
    )


def test_fit_refuses_mismatched_inputs() -> None:
    with pytest.raises(ValueError, match="same, non-empty shape"):
        fit_temperature(np.zeros((3, 14)), np.zeros((2, 14)))


def test_reliability_bins_and_ece_by_hand() -> None:
    targets = np.array([0, 0, 1, 1, 1])
    probs = np.array([0.05, 0.15, 0.1, 0.95, 1.0])  # 0.1 sits on an inner edge: the upper bin; 1.0: the last bin
    bins = reliability_bins(targets, probs, bins=10)
    assert bins.counts.tolist() == [1, 2, 0, 0, 0, 0, 0, 0, 0, 2]
    assert bins.mean_predicted[1] == pytest.approx(0.125) and bins.observed[1] == 0.5
    assert np.isnan(bins.observed[2])
    # ECE = 1/5 * |0 - 0.05| + 2/5 * |0.5 - 0.125| + 2/5 * |1 - 0.975|
    assert bins.expected_calibration_error == pytest.approx(0.05 / 5 + 2 / 5 * 0.375 + 2 / 5 * 0.025)
    # at T = 2: 0.05 -> 0.187, 0.15 -> 0.296, 0.1 -> 0.25, 0.95 -> 0.8134, 1.0 stays 1.0
    hotter = reliability_bins(targets, probs, temperature=2.0, bins=10)
    assert hotter.counts.tolist() == [0, 1, 2, 0, 0, 0, 0, 0, 1, 1]
    assert hotter.mean_predicted[8] == pytest.approx(1 / (1 + math.sqrt(0.05 / 0.95)), rel=1e-12)
