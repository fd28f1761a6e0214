"""AUROC per class, the mean over defined classes, and the patient-level bootstrap."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

import training.scoring.metrics
from models.labels import NIH_LABELS
from training.scoring.metrics import (
    _weighted_auroc,
    auroc_report,
    bootstrap_ci,
    mean_auroc,
    per_class_auroc,
)


def dataset(n: int = 300, seed: int = 0, signal: float = 1.0) -> tuple[np.ndarray, np.ndarray, list[str]]:
    rng = np.random.default_rng(seed)
    targets = (rng.random((n, 14)) < 0.2).astype(np.float32)
    logits = signal * targets + rng.normal(size=(n, 14))
    probs = 1.0 / (1.0 + np.exp(-logits))
    patients = [f"p{i // 2}" for i in range(n)]  # two images per patient
    return targets, probs, patients


def test_per_class_auroc_equals_sklearn() -> None:
    targets, probs, _ = dataset(seed=3)
    probs = np.round(probs, 2)  # with ties
    result = per_class_auroc(targets, probs, NIH_LABELS)
    assert list(result) == list(NIH_LABELS)
    for k, name in enumerate(NIH_LABELS):
        assert result[name] == pytest.approx(roc_auc_score(targets[:, k], probs[:, k]), abs=1e-12)


def test_per_class_auroc_none_for_one_class_column() -> None:
    targets, probs, _ = dataset()
    targets[:, 3] = 0.0
    targets[:, 5] = 1.0
    result = per_class_auroc(targets, probs, NIH_LABELS)
    assert result[NIH_LABELS[3]] is None
    assert result[NIH_LABELS[5]] is None
    assert sum(v is None for v in result.values()) == 2


def test_per_class_auroc_rejects_bad_input() -> None:
    targets, probs, _ = dataset(n=10)
    with pytest.raises(ValueError, match="must both be"):
        per_class_auroc(targets[:, :13], probs[:, :13], NIH_LABELS)
    probs[0, 0] = np.nan
    with pytest.raises(ValueError, match="finite"):
        per_class_auroc(targets, probs, NIH_LABELS)


def test_mean_ignores_none() -> None:
    assert mean_auroc({"a": 0.6, "b": None, "c": 0.8}) == pytest.approx(0.7)
    assert mean_auroc({"a": None}) is None
    assert mean_auroc({}) is None


def test_weighted_auroc_equals_sklearn_on_resampled_data() -> None:
    rng = np.random.default_rng(5)
    scores = np.round(rng.random(60), 1)
    labels = (rng.random(60) < 0.4).astype(np.float64)
    weights = rng.integers(0, 3, size=(8, 60)).astype(np.float64)
    got = _weighted_auroc(scores, labels, weights)
    for b in range(8):
        idx = np.repeat(np.arange(60), weights[b].astype(int))
        assert got[b] == pytest.approx(roc_auc_score(labels[idx], scores[idx]), abs=1e-12)


def test_bootstrap_ci_contains_point_and_is_deterministic() -> None:
    targets, probs, patients = dataset(n=400, seed=1)
    point = per_class_auroc(targets, probs, NIH_LABELS)
    ci = bootstrap_ci(targets, probs, patients, n_boot=300, seed=11, labels=NIH_LABELS)
    for name in NIH_LABELS:
        interval = ci[name]
        assert interval is not None
        low, high = interval
        assert low < point[name] < high  # type: ignore[operator]
        assert high - low < 0.3
    assert bootstrap_ci(targets, probs, patients, n_boot=300, seed=11, labels=NIH_LABELS) == ci
    assert bootstrap_ci(targets, probs, patients, n_boot=300, seed=12, labels=NIH_LABELS) != ci


def test_bootstrap_resamples_patients_not_images() -> None:
    # Every patient's images share one label and one score: a cluster bootstrap's resamples keep that structure,
    # so the weighted positives of a resample always come in pairs.
    targets, probs, _ = dataset(n=200, seed=2)
    targets[1::2] = targets[0::2]
    probs[1::2] = probs[0::2]
    patients = [f"p{i // 2}" for i in range(200)]
    per_patient = bootstrap_ci(targets[0::2], probs[0::2], patients[0::2], n_boot=200, seed=4, labels=NIH_LABELS)
    per_image_pairs = bootstrap_ci(targets, probs, patients, n_boot=200, seed=4, labels=NIH_LABELS)
    for name in NIH_LABELS:  # duplicating every image within its patient changes no resample's AUROC
        assert per_image_pairs[name] == pytest.approx(per_patient[name])


def test_bootstrap_none_when_too_few_valid_resamples() -> None:
    targets, probs, patients = dataset(n=60)
    targets[:, 0] = 0.0
    targets[0, 0] = 1.0  # one positive: most resamples miss it
    ci = bootstrap_ci(targets, probs, patients, n_boot=12, seed=0, labels=NIH_LABELS)
    assert ci[NIH_LABELS[0]] is None
    assert bootstrap_ci(targets, probs, patients, n_boot=0, seed=0, labels=NIH_LABELS) == dict.fromkeys(NIH_LABELS)


def test_bootstrap_scores_all_resamples_of_a_class_in_one_vectorised_call(monkeypatch: pytest.MonkeyPatch) -> None:
    # What keeps 1000 resamples fast is that no Python loop runs per resample (the rate itself is measured by
    # benchmarks/bootstrap_rate.py, not asserted here: a shared machine makes any time limit flaky).
    targets, probs, patients = dataset(n=500, seed=9)
    scored: list[tuple[int, ...]] = []

    def counted(scores: np.ndarray, labels: np.ndarray, weights: np.ndarray) -> np.ndarray:
        scored.append(weights.shape)
        return _weighted_auroc(scores, labels, weights)

    def per_resample(*args: object) -> None:
        raise AssertionError("sklearn called inside the bootstrap")

    monkeypatch.setattr(training.scoring.metrics, "_weighted_auroc", counted)
    monkeypatch.setattr(training.scoring.metrics, "roc_auc_score", per_resample)
    bootstrap_ci(targets, probs, patients, n_boot=1000, seed=0, labels=NIH_LABELS)
    assert scored == [(1000, 500)] * 14  # one call per class, every resample (rows) of every image (columns)

    scored.clear()
    monkeypatch.setattr(training.scoring.metrics, "_CHUNK_ELEMENTS", 400 * 500)  # memory bound: 400 resamples at a time
    bootstrap_ci(targets, probs, patients, n_boot=1000, seed=0, labels=NIH_LABELS)
    assert scored == [(400, 500)] * 14 + [(400, 500)] * 14 + [(200, 500)] * 14


def test_auroc_report() -> None:
    targets, probs, patients = dataset(n=100)
    targets[:, 13] = 0.0
    report = auroc_report(targets, probs, patients, n_boot=50, seed=0, labels=NIH_LABELS)
    assert [r.name for r in report] == list(NIH_LABELS)
    hernia = report[13]
    assert hernia.auroc is None
    assert hernia.ci95 is None
    assert hernia.reason == "only one label value among the known rows (0 positives of 100)"
    assert hernia.positives == 0
    assert hernia.n == 100
    first = report[0]
    assert first.reason is None
    assert first.positives == int(targets[:, 0].sum())
    assert first.auroc == pytest.approx(roc_auc_score(targets[:, 0], probs[:, 0]))
    assert first.ci95 is not None


def test_every_metric_uses_each_class_known_rows_only() -> None:
    targets, probs, patients = dataset(n=120)
    labels = NIH_LABELS
    unknown = targets.copy()
    unknown[::3, 2] = np.nan  # a third of Effusion unknown
    unknown[:, 13] = np.nan  # Hernia: nothing known
    known = ~np.isnan(unknown[:, 2])
    aurocs = per_class_auroc(unknown, probs, labels)
    assert aurocs["Effusion"] == roc_auc_score(targets[known, 2], probs[known, 2])
    assert aurocs["Atelectasis"] == roc_auc_score(targets[:, 0], probs[:, 0])
    assert aurocs["Hernia"] is None
    report = auroc_report(unknown, probs, patients, n_boot=40, seed=1, labels=labels)
    assert (report[2].n, report[2].positives) == (int(known.sum()), int(targets[known, 2].sum()))
    assert report[13].reason == "no known label (every entry unknown)"
    assert report[13].ci95 is None
    # resampled on the known rows: finite, and around the known-row AUROC
    ci_masked = bootstrap_ci(unknown, probs, patients, n_boot=40, seed=1, labels=labels)["Effusion"]
    assert ci_masked is not None and ci_masked[0] <= aurocs["Effusion"] <= ci_masked[1]
