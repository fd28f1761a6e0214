"""Localization metrics on planted boxes and maps whose IoU, IoBB, pointing and mask IoU are known exactly."""

from __future__ import annotations

import numpy as np
import pytest

from training.scoring.localization import (
    Case,
    boxes_mask,
    hits_and_false_positives,
    iobb,
    iou,
    mask_iou,
    point_in_boxes,
    score_cases,
)
from training.scoring.map_similarity import spearman, ssim

A = (0.0, 0.0, 10.0, 10.0)


def test_iou_and_iobb_of_planted_boxes() -> None:
    half_over = (5.0, 0.0, 15.0, 10.0)
    assert iou(A, half_over) == pytest.approx(50 / 150)
    assert iobb(A, half_over) == 0.5
    inside = (2.0, 2.0, 4.0, 7.0)  # area 10, all of it inside A
    assert iou(A, inside) == 0.1
    assert iobb(A, inside) == 1.0
    touching = (10.0, 0.0, 20.0, 10.0)
    assert iou(A, touching) == 0.0 and iobb(A, touching) == 0.0
    assert iobb(A, (3.0, 3.0, 3.0, 8.0)) == 0.0  # an empty detected box


def test_hits_and_false_positives_use_a_strict_threshold() -> None:
    truths = [A, (20.0, 20.0, 30.0, 30.0)]
    detected = [(5.0, 0.0, 15.0, 10.0), (40.0, 40.0, 50.0, 50.0)]
    assert hits_and_false_positives(truths, detected, iobb, 0.25) == (1, 1)
    assert hits_and_false_positives(truths, detected, iobb, 0.5) == (0, 2)  # IoBB exactly 0.5 is not > 0.5
    assert hits_and_false_positives(truths, detected, iou, 0.3) == (1, 1)
    assert hits_and_false_positives(truths, [], iou, 0.1) == (0, 0)


def test_one_detected_box_can_hit_several_truths() -> None:
    truths = [(0.0, 0.0, 10.0, 10.0), (10.0, 0.0, 20.0, 10.0)]
    assert hits_and_false_positives(truths, [(5.0, 0.0, 15.0, 10.0)], iobb, 0.4) == (2, 0)


def test_pointing_edges() -> None:
    assert point_in_boxes((0.0, 0.0), [A])
    assert not point_in_boxes((10.0, 5.0), [A])  # right edge is outside
    assert point_in_boxes((25.0, 25.0), [A, (20.0, 20.0, 30.0, 30.0)])
    assert not point_in_boxes(None, [A])


def test_box_masks_take_pixel_centres_and_clip_at_the_border() -> None:
    mask = boxes_mask([(0.5, 0.5, 2.5, 1.5)], 4, 4)
    assert mask.nonzero()[0].tolist() == [0, 0] and mask.nonzero()[1].tolist() == [0, 1]
    assert boxes_mask([(2.0, 2.0, 10.0, 10.0)], 4, 4).sum() == 4


def test_mask_iou_of_a_planted_map() -> None:
    cam = np.zeros((4, 4), dtype=np.float32)
    cam[0:2, 0:2] = 1.0
    assert mask_iou(cam, [(0.0, 0.0, 2.0, 4.0)]) == 0.5
    assert mask_iou(np.zeros((4, 4), dtype=np.float32), [A]) == 0.0  # an empty (or flat) map overlaps nothing


def _cases() -> list[Case]:
    # patient 1: a hit at IoBB 0.5 (IoU 1/3), peak inside; patient 2 (two images): a miss with one false positive,
    # and a flat map (no boxes, no peak)
    return [
        Case("00000001_000.png", "1", "Mass", (A,), ((5.0, 0.0, 15.0, 10.0),), (7.0, 5.0), 0.5),
        Case("00000002_000.png", "2", "Mass", (A,), ((40.0, 40.0, 50.0, 50.0),), (45.0, 45.0), 0.0),
        Case("00000002_001.png", "2", "Mass", (A, (20.0, 20.0, 30.0, 30.0)), (), None, 0.0, flat=True),
    ]


def test_score_cases_by_hand() -> None:
    scores = score_cases(_cases(), n_boot=0)
    metrics = {name: entry["value"] for name, entry in scores["metrics"].items()}
    assert (scores["boxes"], scores["cases"], scores["patients"], scores["flat_maps"]) == (4, 3, 2, 1)
    assert metrics["accuracy_iobb@0.1"] == 0.25  # one of four boxes
    assert metrics["accuracy_iobb@0.5"] == 0.0
    assert metrics["afp_iobb@0.1"] == pytest.approx(1 / 3)  # one false positive over three cases
    assert metrics["afp_iobb@0.5"] == pytest.approx(2 / 3)
    assert metrics["accuracy_iou@0.3"] == 0.25 and metrics["accuracy_iou@0.4"] == 0.0
    assert metrics["pointing"] == pytest.approx(1 / 3)
    assert metrics["mean_iou"] == pytest.approx(0.5 / 3)
    assert all(entry["ci"] is None for entry in scores["metrics"].values())


def test_bootstrap_resamples_patients() -> None:
    scores = score_cases(_cases(), n_boot=400, seed=3)
    # patient 1 alone: accuracy 1; patient 2 alone: 0 -> every resample lies in [0, 1], both ends reached
    assert scores["metrics"]["accuracy_iobb@0.1"]["ci"] == [0.0, 1.0]
    # one patient: every resample is the sample itself
    alone = score_cases(_cases()[:1], n_boot=50)
    assert alone["metrics"]["pointing"]["ci"] == [1.0, 1.0]


def test_no_cases_scores_nothing() -> None:
    scores = score_cases([], n_boot=10)
    assert scores["boxes"] == 0 and scores["metrics"]["pointing"] == {"value": None, "ci": None}


def test_similarity_measures() -> None:
    rng = np.random.default_rng(0)
    a = rng.random((32, 32))
    assert spearman(a, a**3) == pytest.approx(1.0)
    assert spearman(a, -a) == pytest.approx(-1.0)
    assert spearman(a, np.zeros_like(a)) is None
    assert ssim(a, a) == pytest.approx(1.0)
    assert ssim(a, rng.random((32, 32))) < 0.2


def test_ssim_agrees_with_scikit_image() -> None:
    metrics = pytest.importorskip("skimage.metrics", reason="scikit-image is not installed (only a cross-check)")
    rng = np.random.default_rng(1)
    a = rng.random((40, 48))
    b = np.clip(a + rng.normal(0, 0.2, a.shape), 0, 1)
    expected = metrics.structural_similarity(
        a, b, data_range=1.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
    )
    assert ssim(a, b) == pytest.approx(expected, abs=1e-6)
