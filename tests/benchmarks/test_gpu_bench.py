"""benchmarks/gpu_check.sh and benchmarks.gpu_bench: the pieces with exact answers, and a dry run end to end.

The dry run (``--quick``) runs on whatever device there is; it checks the results file's sections, keys and
counts, never timings.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from app.inference.threads import available_cores
from benchmarks.gpu_bench import precisions_for, reading
from benchmarks.gpu_serve import combine, split_clients
from benchmarks.loadgen import LoadRecord

REPO = Path(__file__).resolve().parents[2]
SECTIONS = ["meta", "model_forward", "deviation", "decode", "predict", "train_cli", "train_step", "reading"]


def test_clients_are_spread_evenly_over_load_processes() -> None:
    assert split_clients(64, 4) == [16, 16, 16, 16]
    assert split_clients(5, 4) == [2, 1, 1, 1]
    assert split_clients(2, 4) == [1, 1]
    assert split_clients(3, 1) == [3]


def test_load_records_combine_over_the_window_all_processes_measured() -> None:
    early = LoadRecord(100.0, 110.0, [0.1, 0.2, 0.3], [101.0, 103.0, 109.5], {"503": 1}, 2.0)
    late = LoadRecord(102.0, 112.0, [0.4, 0.5], [104.0, 111.0], {"503": 2, "ReadTimeout": 1}, 3.0)
    combined = combine([early, late])
    assert combined["window_s"] == 8.0  # 102 .. 110
    assert combined["requests_in_window"] == 3  # answered at 103, 104 and 109.5
    assert combined["req_per_s"] == 3 / 8.0
    assert combined["p50_ms"] == 300.0 and combined["p99_ms"] == 400.0
    assert combined["requests"] == 5 and combined["loadgen_cpu_s"] == 5.0
    assert combined["errors"] == 4 and combined["error_kinds"] == {"503": 3, "ReadTimeout": 1}


def test_precisions_by_device() -> None:
    assert precisions_for(torch.device("cpu")) == ("fp32", "bf16")
    assert precisions_for(torch.device("cuda")) == ("fp32", "tf32", "bf16", "fp16")


def _results(**predict: Any) -> dict[str, Any]:
    return {
        "meta": {"device": "cuda"},
        "model_forward": [
            {"precision": "fp32", "batch": 256, "img_per_s": 3000.0},
            {"precision": "bf16", "batch": 128, "img_per_s": 6000.0},
            {"precision": "bf16", "batch": 256, "error": "out of GPU memory"},
        ],
        "decode": [{"threads": 1, "img_per_s": 100.0}, {"threads": 16, "img_per_s": 1200.0}],
        "predict": {
            "req_per_s": 900.0,
            "server_cpu_ms_per_request": 12.0,
            "model_busy_share": 0.25,
            "mean_batch": 14.0,
            "server_cores_busy": 10.8,
            "loadgen_cores_busy": 4.0,
            **predict,
        },
    }


def test_the_reading_puts_the_figures_against_the_targets() -> None:
    read = reading(_results())
    assert read["model_bf16_best_img_per_s"] == 6000.0 and read["model_target_met"] is True
    assert read["predict_img_per_s"] == 900.0 and read["predict_target_met"] is False
    assert read["cores_to_decode_target"] == 15.0  # 1500 img/s at 100 img/s per core
    assert read["server_cores_at_target"] == 18.0  # 1500 x 12 ms
    assert "needs 15.0 cores for decoding alone" in read["text"]
    assert "the model thread was busy 25% of the window, mean batch 14.0" in read["text"]


def test_no_reading_when_a_section_failed() -> None:
    results = _results()
    results["predict"] = {"error": "RuntimeError: server exited during start-up"}
    assert reading(results) == {"text": "no reading: predict failed (see their errors)"}


@pytest.mark.slow
def test_gpu_check_dry_run_writes_a_well_formed_results_file(tmp_path: Path) -> None:
    env = {**os.environ, "OUT": str(tmp_path), "PYTHON": sys.executable}
    command = ["bash", "benchmarks/gpu_check.sh", "--quick"]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=420, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    [path] = tmp_path.glob("gpu-20*.json")
    results = json.loads(path.read_text())
    assert list(results) == SECTIONS

    meta = results["meta"]
    assert meta["mode"] == "quick" and meta["complete"] is True and meta["failed_sections"] == []
    assert "--quick" in meta["command"] and {"python", "torch", "openvino"} <= set(meta["versions"])
    assert meta["cuda_tests"]["exit_code"] == 0 and (tmp_path / meta["cuda_tests"]["log"]).is_file()
    assert set(meta["stage_seconds"]) == set(SECTIONS[1:-1])
    device = torch.device(meta["device"])
    precisions = precisions_for(device)
    assert meta["precisions"] == list(precisions) and meta["gpu"]["device"] == str(device)

    assert [(r["precision"], r["batch"]) for r in results["model_forward"]] == [
        (p, b) for p in precisions for b in (1, 2)
    ]
    assert all(row["img_per_s"] > 0 and row["calls"] >= 1 for row in results["model_forward"])
    deviation = results["deviation"]
    assert list(deviation) == list(precisions) and deviation["fp32"]["max_abs_vs_fp32_same_device"] == 0.0
    assert 0 < deviation["bf16"]["max_abs_vs_fp32_same_device"] < 0.05
    assert [row["threads"] for row in results["decode"]] == sorted({1, available_cores()})

    predict = results["predict"]
    assert predict["errors"] == 0 and predict["requests"] >= 1 and predict["clients"] == 4
    served = predict["served_with"]
    assert served["precision"] == ("bf16" if device.type == "cuda" else "fp32")
    assert served["device"].startswith(device.type) and served["backend"] in ("torch", "openvino")
    assert predict["batches"] >= 1 and predict["mean_batch"] >= 1
    train = results["train_cli"]
    assert [e["epoch"] for e in train["epochs"]] == [1] and train["images_per_s_last_epoch"] > 0
    assert [row["batch"] for row in results["train_step"]] == [2]
    assert "/predict" in results["reading"]["text"]
