"""benchmarks/bf16_deviation.py on the demo model's first held-out images: every backend near eager fp32."""

from __future__ import annotations

import pytest

from app.backends.openvino_backend import PROBE_TOLERANCE
from benchmarks.bf16_deviation import measure
from models.bundled import DEMO_CHECKPOINT
from tests.conftest import shared_or_skip

FP32_TOLERANCE = 1e-4  # every backend's fp32 probabilities against eager fp32


@pytest.mark.slow
def test_every_backend_stays_near_eager_fp32_on_held_out_images(one_torch_thread: None) -> None:
    data = shared_or_skip("nih-sample", "Data_Entry_sample.csv").parents[1]
    count, rows = measure(DEMO_CHECKPOINT, data, limit=16)
    assert count == 16
    found = {row.name: row for row in rows}
    assert list(found) == ["eager fp32 (reference)", "torch fp32", "openvino fp32", "torch bf16", "openvino bf16"]
    reference = found["eager fp32 (reference)"]
    assert (reference.max_abs, reference.mean_abs, reference.max_auroc_change) == (0.0, 0.0, 0.0)
    assert found["torch fp32"].max_abs <= FP32_TOLERANCE and found["openvino fp32"].max_abs <= FP32_TOLERANCE
    assert found["torch bf16"].max_abs <= PROBE_TOLERANCE["bf16"]
    assert found["openvino bf16"].max_abs <= PROBE_TOLERANCE["bf16"]
    assert all(0.0 <= row.mean_abs <= row.max_abs for row in rows)
