"""The one offline inference step: probabilities equal the model's on the eval tensor, failures named, in order."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from models.checkpoint import load_checkpoint
from models.imaging.decoder import decode_image
from models.preprocessing import eval_tensor, tencrop_tensor
from tests.training.test_predict import png_bytes, xray_pixels
from training.data.dataset import UnreadableImageError
from training.scoring.inference import InferenceOptionsError, InferenceSettings, infer_probabilities

CPU = torch.device("cpu")


@pytest.fixture
def files(tmp_path: Path) -> list[Path]:
    paths = [tmp_path / name for name in ("a.png", "bad.png", "b.png", "missing.png", "c.png")]
    for seed, path in enumerate(paths):
        if path.name not in ("bad.png", "missing.png"):
            path.write_bytes(png_bytes(xray_pixels(seed)))
    paths[1].write_bytes(png_bytes(xray_pixels())[:100])
    return paths


@pytest.mark.parametrize("tencrop", [False, True])
def test_probabilities_are_the_models_and_failures_are_named_in_order(
    files: list[Path], tiny_checkpoint: Path, tencrop: bool
) -> None:
    checkpoint = load_checkpoint(tiny_checkpoint)
    result = infer_probabilities(checkpoint, files, InferenceSettings(CPU, batch_size=2, tencrop=tencrop))
    assert result.indices.tolist() == [0, 2, 4]
    assert [(f.index, f.path, f.code) for f in result.failures] == [
        (1, str(files[1]), "invalid_image"),
        (3, str(files[3]), "unreadable_file"),
    ]
    model = checkpoint.build_model()
    with torch.no_grad():
        for row, index in zip(result.probs, result.indices, strict=True):
            gray = decode_image(files[index]).gray
            if tencrop:
                expected = torch.sigmoid(model(tencrop_tensor(checkpoint.spec, gray))).mean(dim=0)
            else:
                expected = torch.sigmoid(model(eval_tensor(checkpoint.spec, gray)[None]))[0]
            np.testing.assert_allclose(row, expected.numpy(), atol=1e-6)
    assert result.probs.shape == (3, len(checkpoint.labels)) and result.probs.dtype == np.float32


def test_stop_at_failure_raises_naming_the_first_unreadable_file(files: list[Path], tiny_checkpoint: Path) -> None:
    checkpoint = load_checkpoint(tiny_checkpoint)
    with pytest.raises(UnreadableImageError) as raised:
        infer_probabilities(checkpoint, files, InferenceSettings(CPU, batch_size=1), stop_at_failure=True)
    assert raised.value.failure.path == str(files[1])


def test_the_precision_hook_runs_under_autocast(files: list[Path], tiny_checkpoint: Path) -> None:
    checkpoint = load_checkpoint(tiny_checkpoint)
    full = infer_probabilities(checkpoint, files, InferenceSettings(CPU))
    half = infer_probabilities(checkpoint, files, InferenceSettings(CPU, autocast=torch.bfloat16))
    assert half.probs.dtype == np.float32
    assert not np.array_equal(full.probs, half.probs)  # bfloat16 did run: 8 bits of mantissa move the results
    np.testing.assert_allclose(half.probs, full.probs, atol=0.05)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (InferenceSettings(CPU, batch_size=0), "--batch-size must be >= 1, got 0"),
        (InferenceSettings(CPU, workers=-1), "--workers must be >= 0, got -1"),
    ],
)
def test_unusable_settings_are_refused(
    tiny_checkpoint: Path, settings: InferenceSettings, message: str, tmp_path: Path
) -> None:
    with pytest.raises(InferenceOptionsError, match=f"^{message}$"):
        infer_probabilities(load_checkpoint(tiny_checkpoint), [tmp_path / "never-read.png"], settings)
