"""The machine and versions a run was made on, and the markdown table of its results."""

from __future__ import annotations

import os
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

PACKAGES = ("torch", "torchvision", "numpy", "pillow", "fastapi", "uvicorn", "httpx")
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "MKL_NUM_THREADS", "GOMP_SPINCOUNT")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info() -> dict[str, Any]:
    return {
        "cpu_model": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda_available": torch.cuda.is_available(),
        "thread_env": {name: os.environ.get(name) for name in THREAD_VARIABLES},
        "platform": platform.platform(),
    }


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def _f(value: float, digits: int = 1) -> str:
    return "n/a" if value != value else f"{value:.{digits}f}"  # NaN != NaN


def _load_table(results: dict[str, Any]) -> list[str]:
    lines = [
        "| route | clients | ours req/s | seed req/s | req/s ours/seed | ours p50 ms | seed p50 ms | ours p99 ms "
        "| seed p99 ms | p99 ours/seed | server CPU ms/req ours / seed | others' CPU share ours / seed "
        "| requests ours/seed | errors ours/seed |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in results["load"]:
        ours, seed, ratio = row["ours"], row["seed"], row["ratio_ours_over_seed"]
        lines.append(
            f"| {row['route']} | {row['clients']} | {_f(ours['req_per_s'], 2)} | {_f(seed['req_per_s'], 2)} "
            f"| **{_f(ratio['req_per_s'], 2)}** | {_f(ours['p50_ms'])} | {_f(seed['p50_ms'])} | {_f(ours['p99_ms'])} "
            f"| {_f(seed['p99_ms'])} | {_f(ratio['p99_ms'], 2)} "
            f"| {_f(ours['server_cpu_ms_per_request'], 0)} / {_f(seed['server_cpu_ms_per_request'], 0)} "
            f"| {ours['other_cpu_share']:.0%} / {seed['other_cpu_share']:.0%} "
            f"| {ours['requests']}/{seed['requests']} | {ours['errors']}/{seed['errors']} |"
        )
    return lines


def _memory_table(results: dict[str, Any]) -> list[str]:
    lines = [
        "| server | start-up s | idle RSS MiB | max RSS under load MiB | peak RSS (VmHWM) MiB | threads idle | "
        "max threads under load |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, server in results["servers"].items():
        lines.append(
            f"| {name} | {_f(server['startup_s'])} | {_f(server['idle_rss_mib'])} | {_f(server['load_max_rss_mib'])} "
            f"| {_f(server['peak_rss_mib'])} | {server['idle_threads']:.0f} | {server['load_max_threads']:.0f} |"
        )
    return lines


def _forward_table(model: dict[str, Any]) -> list[str]:
    lines = ["| layout | batch | ms per batch | img/s | GFLOP/s | share of peak |", "|---|---:|---:|---:|---:|---:|"]
    for row in model["rows"]:
        lines.append(
            f"| eager fp32 {row['layout']} | {row['batch']} | {_f(row['batch_ms'])} | {_f(row['img_per_s'], 2)} "
            f"| {_f(row['gflops'])} | {row['share_of_peak']:.0%} |"
        )
    return lines


def _stage_table(stages: dict[str, dict[str, float]]) -> list[str]:
    lines = ["| stage | ours ms | seed ms |", "|---|---:|---:|"]
    for name in stages["ours"]:
        lines.append(f"| {name} | {_f(stages['ours'][name])} | {_f(stages['seed'][name])} |")
    lines.append(f"| **sum** | {_f(sum(stages['ours'].values()))} | {_f(sum(stages['seed'].values()))} |")
    return lines


def _int8_line(int8: dict[str, Any] | None) -> str:
    if int8 is None:
        return "- int8 and bf16: not served (openvino or nncf is not installed here)"
    return (
        f"- int8 model: `chexnet quantize` of the same checkpoint, calibrated on {int8['calibration_images']} images "
        f"of `{int8['from']}` (random weights: the figures are speed, not fidelity; fidelity is "
        "`python -m benchmarks.precision_fidelity`)"
    )


def _precision_table(results: dict[str, Any]) -> list[str]:
    names = list(results["precisions"][0]["servers"])
    served = results["meta"]["variants_served_with"]
    header = " | ".join(f"{name} ({served[name]['backend']} {served[name]['precision']}) req/s" for name in names)
    ratios = " | ".join(f"{name} / seed" for name in names)
    lines = [
        f"| route | clients | seed req/s | {header} | {ratios} | {' | '.join(f'{n} / ours' for n in names[1:])} |",
        "|---|---:|---:|" + "---:|" * (3 * len(names) - 1),
    ]
    for row in results["precisions"]:
        cells = row["servers"]
        lines.append(
            f"| {row['route']} | {row['clients']} | {_f(row['seed_req_per_s'], 2)} | "
            + " | ".join(_f(cells[n]["req_per_s"], 2) for n in names)
            + " | "
            + " | ".join(f"**{_f(cells[n]['over_seed'], 2)}**" for n in names)
            + " | "
            + " | ".join(_f(cells[n]["over_ours"], 2) for n in names[1:])
            + " |"
        )
    return lines


def render_markdown(results: dict[str, Any], json_name: str) -> str:
    meta, model = results["meta"], results["model_forward"]
    machine, peak = meta["machine"], model["peak_estimate"]
    version_text = ", ".join(f"{k} {v}" for k, v in meta["versions"].items())
    lines = [
        f"# Benchmark results ({meta['mode']} run, {meta['created_utc']})",
        "",
        f"- Machine: {machine['cpu_model']}, {machine['usable_cpus']} usable of {machine['logical_cpus']} logical "
        f"CPUs, torch threads {machine['torch_threads']}, CUDA {'yes' if machine['cuda_available'] else 'no'}",
        f"- Thread environment (servers inherit it): "
        f"{', '.join(f'{k}={v}' for k, v in machine['thread_env'].items() if v) or 'defaults'}",
        f"- Versions: {version_text}",
        f"- Command: `{meta['command']}` ({_f(meta['duration_s'], 0)} s); figures: `{json_name}`",
        f"- Input: `{meta['image']['file']}` ({meta['image']['size'][0]}x{meta['image']['size'][1]} PNG, "
        f"{meta['image']['bytes']} bytes); model: DenseNet-121, {meta['checkpoint']['image_size']} px, "
        f"{meta['checkpoint']['weights']}",
        "- ours = `chexnet serve`; seed = `benchmarks/seed_server.py` (the tutorial's pipeline, forward on the event "
        "loop). Both on 127.0.0.1 in the same environment, one under load at a time; levels interleaved over "
        f"{meta['config']['rounds']} round(s), alternating which server goes first; each cell is the level's best "
        "round. The closed-loop client runs on the same CPUs.",
        f"- Parity: largest difference of the 14 probabilities, ours vs seed, on the sample: "
        f"{results['parity']['max_abs_prob_diff_ours_vs_seed']:.4f}; "
        + "; ".join(
            f"{key.removeprefix('max_abs_prob_diff_').replace('_vs_', ' vs ')}: {value:.4f}"
            for key, value in results["parity"].items()
            if key != "max_abs_prob_diff_ours_vs_seed"
        ),
        _int8_line(meta["int8_model"]),
        "",
        "## Precisions side by side (req/s, higher is better)",
        "",
        "Ours at each CPU precision in the same interleaved rounds; the first column of ratios is against the "
        "seed-style server, the last against ours at fp32.",
        "",
        *_precision_table(results),
        "",
        "## Load (closed loop, req/s higher is better, latency lower is better)",
        "",
        "Server CPU ms/req is the server process's user+system CPU time per answered request (robust to other "
        "load); others' CPU share is the part of all CPUs used by other processes during the level (contention).",
        "",
        *_load_table(results),
        "",
        "## Memory and threads of each server (/proc/PID/status)",
        "",
        *_memory_table(results),
        "",
        "## Model-only forward (this process, torch.inference_mode, best call)",
        "",
        f"Peak estimate: {_f(peak['gflops'])} GFLOP/s ({peak['method']}, 2 n³ flops). DenseNet-121 at 224 px: "
        f"{model['macs_per_image'] / 1e9:.2f} G multiply-accumulates counted over Conv2d and Linear "
        f"(torchvision publishes {model['torchvision_published_gmacs']:.2f}), i.e. "
        f"{model['flops_per_image'] / 1e9:.2f} GFLOP per image. torch threads: {model['torch_threads']}.",
        "",
        *_forward_table(model),
        "",
        "## Stages of one /gradcam request (best-of ms, batch of one, in this process)",
        "",
        "ours: `decode_image`, `eval_tensor`, `forward_features`+`forward_head`, `gradcam_maps` (14 maps, no "
        "backward), `overlay_base` + `blend_cam`, `encode_png`. seed: `seed_server` functions; its Grad-CAM row "
        "is a forward plus a backward with hooks.",
        "",
        *_stage_table(results["stages_ms"]),
        "",
    ]
    return "\n".join(lines)
