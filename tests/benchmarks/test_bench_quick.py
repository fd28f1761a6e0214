"""The benchmark suite end to end in --quick mode: every section present, with the right keys and counts.

No timing assertions: the figures depend on the machine; only their presence and sign are checked.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.loadgen import check_loopback, percentile
from benchmarks.processes import backend_environment

REPO = Path(__file__).resolve().parents[2]
LEVEL_KEYS = {
    "path", "clients", "requests", "errors", "elapsed_s", "req_per_s", "p50_ms", "p99_ms", "mean_ms",
    "server_cpu_ms_per_request", "other_cpu_share", "loadgen_cpu_share", "rounds_req_per_s",
}  # fmt: skip
SERVER_KEYS = {"startup_s", "idle_rss_mib", "idle_threads", "load_max_rss_mib", "load_max_threads", "peak_rss_mib"}
STAGES = ["read_png", "decode", "preprocess", "forward", "gradcam_maps", "overlay_render", "png_encode"]


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile([7.0], 99) == 7.0


def test_load_generator_refuses_other_hosts() -> None:
    check_loopback("http://127.0.0.1:8000")
    with pytest.raises(ValueError, match=r"127\.0\.0\.1 only"):
        check_loopback("http://example.com:8000")


def test_without_openvino_the_benchmark_serves_with_torch() -> None:
    for asked in ({}, {"CHEXNET_BACKEND": "auto"}, {"CHEXNET_BACKEND": "openvino"}):
        assert backend_environment({"PATH": "/bin", **asked}, openvino_present=False) == {
            "PATH": "/bin",
            "CHEXNET_BACKEND": "torch",
        }
        assert backend_environment(asked, openvino_present=True) == asked
    assert backend_environment({"CHEXNET_BACKEND": "torch"}, openvino_present=False) == {"CHEXNET_BACKEND": "torch"}


@pytest.mark.slow
def test_quick_run_writes_every_section(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "benchmarks.run_bench", "--quick", "--out", str(tmp_path)]
    # as make bench-quick runs it: with libgomp's spin-waiting, the seed's forward on a main thread crawls when
    # other work shares the CPUs (benchmarks/README.md), and the run outlives the timeout
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=420, check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    [path] = tmp_path.glob("bench-*.json")
    results = json.loads(path.read_text())

    meta = results["meta"]
    assert meta["mode"] == "quick"
    assert {"python", "torch", "numpy", "pillow"} <= set(meta["versions"])
    assert meta["machine"]["cpu_model"] and meta["machine"]["logical_cpus"] > 0
    assert "--quick" in meta["command"]
    assert meta["ours_served_with"]["device"] == "cpu" and meta["ours_served_with"]["precision"] == "fp32"
    assert meta["ours_served_with"]["backend"] in ("torch", "openvino")

    levels = [(row["route"], row["clients"]) for row in results["load"]]
    assert levels == [("/predict", 1), ("/predict", 4), ("/predict", 16), ("/gradcam", 2)]
    for row in results["load"]:
        assert set(row["ratio_ours_over_seed"]) == {"req_per_s", "p50_ms", "p99_ms", "server_cpu_ms_per_request"}
        for side in ("ours", "seed"):
            assert set(row[side]) >= LEVEL_KEYS
            assert row[side]["errors"] == 0
            assert row[side]["requests"] >= row["clients"]
            assert row[side]["req_per_s"] > 0 and row[side]["p99_ms"] >= row[side]["p50_ms"] > 0
            assert row[side]["server_cpu_ms_per_request"] > 0 and len(row[side]["rounds_req_per_s"]) == 1

    served = meta["variants_served_with"]
    assert {name: (row["backend"], row["precision"]) for name, row in served.items()} == {
        "ours": (meta["ours_served_with"]["backend"], "fp32"),
        "ours-bf16": ("openvino", "bf16"),
        "ours-int8": ("openvino", "int8"),
    }
    assert meta["int8_model"]["calibration_images"] == 4
    precisions = results["precisions"]
    assert [(row["route"], row["clients"]) for row in precisions] == levels
    for row, load in zip(precisions, results["load"], strict=True):
        assert list(row["servers"]) == ["ours", "ours-bf16", "ours-int8"]
        assert row["servers"]["ours"]["req_per_s"] == load["ours"]["req_per_s"]
        assert row["seed_req_per_s"] == load["seed"]["req_per_s"]
        for cell in row["servers"].values():
            assert cell["over_seed"] == pytest.approx(cell["req_per_s"] / row["seed_req_per_s"])
            assert cell["over_ours"] == pytest.approx(cell["req_per_s"] / load["ours"]["req_per_s"])
    for name in ("ours-bf16", "ours-int8"):
        assert 0 <= results["parity"][f"max_abs_prob_diff_{name}_vs_ours"] < 0.1

    for name in ("ours", "ours-bf16", "ours-int8", "seed"):
        server = results["servers"][name]
        assert set(server) >= SERVER_KEYS
        assert server["idle_rss_mib"] > 0 and server["load_max_rss_mib"] > 0 and server["load_max_threads"] >= 1
    assert 0 <= results["parity"]["max_abs_prob_diff_ours_vs_seed"] < 0.05

    model = results["model_forward"]
    assert model["peak_estimate"]["gflops"] > 0 and model["flops_per_image"] == 2 * model["macs_per_image"]
    rows = {(row["layout"], row["batch"]) for row in model["rows"]}
    assert rows == {(layout, b) for layout in ("contiguous", "channels_last") for b in (1, 8)}
    assert all(row["img_per_s"] > 0 and row["share_of_peak"] > 0 for row in model["rows"])

    for name in ("ours", "seed"):
        assert list(results["stages_ms"][name]) == STAGES
        assert all(ms > 0 for ms in results["stages_ms"][name].values())

    markdown = (tmp_path / "latest.md").read_text()
    for heading in ("## Precisions side by side", "## Load", "## Memory", "## Model-only forward", "## Stages"):
        assert heading in markdown
    assert path.name in markdown
