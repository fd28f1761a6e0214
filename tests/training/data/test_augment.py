"""--augment cxr: seeded draws within the documented ranges, never a vertical flip, exact with the image cache."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from models.preprocessing import PreprocessSpec, resized_gray, train_tensor
from training.data.augment import (
    CXR_RANGES,
    CxrDraw,
    apply_cxr,
    cxr_train_tensor,
    draw_cxr,
    normalised,
    train_transform,
)
from training.data.dataset import XrayDataset

SPEC = PreprocessSpec(image_size=32, resize=36)


def gradient_image(height: int = 48, width: int = 40) -> np.ndarray:
    """(H, W) in [0, 1]: bright at the top, dark at the bottom, a little texture across."""
    rows = np.linspace(1.0, 0.0, height, dtype=np.float32)[:, None]
    texture = np.random.default_rng(0).uniform(0.0, 0.05, (height, width)).astype(np.float32)
    return np.clip(rows * 0.9 + texture, 0.0, 1.0)


def test_draws_stay_within_the_documented_ranges() -> None:
    generator = torch.Generator().manual_seed(0)
    draws = [draw_cxr(SPEC, (41, 36), generator) for _ in range(300)]
    limit = CXR_RANGES.translate * SPEC.image_size
    assert all(abs(d.angle_deg) <= CXR_RANGES.rotation_deg for d in draws)
    assert all(CXR_RANGES.scale[0] <= d.scale <= CXR_RANGES.scale[1] for d in draws)
    assert all(abs(d.shift[0]) <= limit and abs(d.shift[1]) <= limit for d in draws)
    assert all(CXR_RANGES.brightness[0] <= d.brightness <= CXR_RANGES.brightness[1] for d in draws)
    assert all(CXR_RANGES.contrast[0] <= d.contrast <= CXR_RANGES.contrast[1] for d in draws)
    assert all(0 <= d.top <= 41 - 32 and 0 <= d.left <= 36 - 32 for d in draws)
    # the ranges are used, not a corner of them
    assert max(d.angle_deg for d in draws) > 0.9 * CXR_RANGES.rotation_deg
    assert min(d.angle_deg for d in draws) < -0.9 * CXR_RANGES.rotation_deg
    assert 100 < sum(d.flip for d in draws) < 200


def test_identity_draw_is_the_plain_crop() -> None:
    resized = torch.from_numpy(resized_gray(SPEC, gradient_image()))
    draw = CxrDraw(top=3, left=2, flip=False, angle_deg=0.0, scale=1.0, shift=(0.0, 0.0), brightness=1.0,
                   contrast=1.0)  # fmt: skip
    expected = normalised(SPEC, resized[3:35, 2:34])
    assert torch.allclose(apply_cxr(SPEC, resized, draw), expected, atol=1e-5)
    flipped = apply_cxr(SPEC, resized, replace(draw, flip=True))
    assert torch.allclose(flipped, expected.flip(-1), atol=1e-5)


def test_brightness_and_contrast_act_on_gray_levels() -> None:
    resized = torch.full((32, 32), 0.5)
    resized[:, :16] = 0.3  # the crop is the whole image: mean 0.4
    draw = CxrDraw(0, 0, False, 0.0, 1.0, (0.0, 0.0), brightness=1.1, contrast=0.9)
    gray = apply_cxr(SPEC, resized, draw)[0] * SPEC.std[0] + SPEC.mean[0]
    assert gray[10, 5].item() == pytest.approx(((0.3 - 0.4) * 0.9 + 0.4) * 1.1, abs=1e-5)
    assert gray[10, 30].item() == pytest.approx(((0.5 - 0.4) * 0.9 + 0.4) * 1.1, abs=1e-5)


def test_never_upside_down() -> None:
    gray = gradient_image()
    for seed in range(40):
        tensor = cxr_train_tensor(SPEC, gray, torch.Generator().manual_seed(seed))
        assert tensor[0, :12].mean() > tensor[0, -12:].mean() + 1.0, seed  # top stays brighter (normalised units)


def test_same_generator_same_tensor_and_a_cached_image_gives_the_same_tensor() -> None:
    gray = gradient_image()
    first = cxr_train_tensor(SPEC, gray, torch.Generator().manual_seed(5))
    assert torch.equal(first, cxr_train_tensor(SPEC, gray, torch.Generator().manual_seed(5)))
    assert torch.equal(first, cxr_train_tensor(SPEC, resized_gray(SPEC, gray), torch.Generator().manual_seed(5)))
    assert not torch.equal(first, cxr_train_tensor(SPEC, gray, torch.Generator().manual_seed(6)))


def test_the_dataset_uses_the_chosen_transform(tmp_path: Path) -> None:
    Image.fromarray((gradient_image(64, 64) * 255).astype(np.uint8), "L").save(tmp_path / "a.png")
    seed_items = XrayDataset([tmp_path / "a.png"], np.zeros((1, 14)), SPEC, train=True, seed=3)
    cxr_items = XrayDataset([tmp_path / "a.png"], np.zeros((1, 14)), SPEC, train=True, seed=3, augment="cxr")
    generator_seed = int(np.random.SeedSequence([3, 0, 0]).generate_state(1)[0])
    gray = np.asarray(Image.open(tmp_path / "a.png"), dtype=np.float32) / np.float32(255.0)
    assert torch.equal(seed_items[0][0], train_tensor(SPEC, gray, torch.Generator().manual_seed(generator_seed)))
    assert torch.equal(cxr_items[0][0], cxr_train_tensor(SPEC, gray, torch.Generator().manual_seed(generator_seed)))
    assert train_transform("seed") is train_tensor
    with pytest.raises(ValueError, match="unknown augmentation 'mixup'"):
        train_transform("mixup")
