"""Load levels against both servers, interleaved, so that a noisy neighbour hits ours and the seed alike.

Both servers are started (one after the other) and stay up; only one is under load at any moment. Each round
runs every level on both, alternating which goes first; a level's reported figures are its best round (highest
req/s), all rounds are kept in the JSON. Per level we also record the server's CPU ms per request and the share
of the CPUs that other processes used meanwhile (a contention indicator, from /proc).

Besides ``ours`` (the default settings) and ``seed``, any number of variants of ours can be served side by side in
the same rounds (``variants``: name -> extra ``CHEXNET_*`` environment, e.g. ``ours-int8`` with
``CHEXNET_PRECISION=int8``): :func:`precision_levels` tabulates them against the seed and against ``ours``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from contextlib import ExitStack
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import httpx

from benchmarks.loadgen import LoadSpec, run_load
from benchmarks.processes import CpuWindow, RunningServer, StatusSampler, proc_status, running_server

logger = logging.getLogger("benchmarks")
RATIO_KEYS = ("req_per_s", "p50_ms", "p99_ms", "server_cpu_ms_per_request")


async def _run_level(server: RunningServer, spec: LoadSpec, image: bytes, round_index: int) -> dict[str, Any]:
    if round_index == 0 and spec.warmup_requests:  # untimed: first-call caches, connection set-up
        await run_load(server.url, LoadSpec(spec.path, spec.clients, spec.warmup_requests, spec.warmup_seconds), image)
    window = CpuWindow(server.process.pid)
    result = await run_load(server.url, replace(spec, warmup_requests=0), image)
    cpu = window.close(result.elapsed_s, result.requests)
    logger.info(
        "  round %d %s %s x%d: %.2f req/s, p50 %.0f ms, %.0f server CPU ms/req, others used %.0f%% of the CPUs",
        round_index, server.name, spec.path, spec.clients, result.req_per_s, result.p50_ms,
        cpu["server_cpu_ms_per_request"], 100 * cpu["other_cpu_share"],
    )  # fmt: skip
    return {**asdict(result), **cpu, "round": round_index}


async def _measure(
    servers: dict[str, RunningServer], levels: list[LoadSpec], rounds: int, image: bytes
) -> dict[str, Any]:
    names = tuple(servers)
    samplers = {kind: StatusSampler(server.process.pid) for kind, server in servers.items()}
    for sampler in samplers.values():
        sampler.start()
    runs: dict[str, list[list[dict[str, Any]]]] = {kind: [[] for _ in levels] for kind in servers}
    try:
        for round_index in range(rounds):
            order = names if round_index % 2 == 0 else names[::-1]
            for level_index, spec in enumerate(levels):
                for kind in order:
                    runs[kind][level_index].append(await _run_level(servers[kind], spec, image, round_index))
    finally:
        for sampler in samplers.values():
            await sampler.stop()
    memory = {kind: {"max_rss_mib": s.max_rss_mib, "max_threads": s.max_threads} for kind, s in samplers.items()}
    return {"runs": runs, "memory": memory}


def _best(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    best = dict(max(rounds, key=lambda run: run["req_per_s"]))
    best["rounds_req_per_s"] = [run["req_per_s"] for run in rounds]
    return best


def bench_servers(
    checkpoint: Path,
    levels: list[LoadSpec],
    rounds: int,
    image: bytes,
    log_dir: Path,
    variants: dict[str, dict[str, str]] | None = None,
) -> dict[str, Any]:
    """Start every server (ours, its ``variants``, the seed), read idle memory and one answer each, run the
    interleaved rounds; always stop them all."""
    extra = {"ours": {}, **(variants or {}), "seed": {}}
    servers: dict[str, RunningServer] = {}
    idle: dict[str, dict[str, float]] = {}
    answers: dict[str, dict[str, float]] = {}
    with ExitStack() as stack:
        for name, env in extra.items():
            logger.info("server %s: starting", name)
            kind = "seed" if name == "seed" else "ours"
            log = log_dir / f"{name}-server.log"
            started = stack.enter_context(running_server(kind, checkpoint, log, extra_env=env))
            servers[name] = replace(started, name=name)
            time.sleep(1.0)  # let start-up allocations settle before reading the idle figure
            idle[name] = proc_status(servers[name].process.pid)
        for name, server in servers.items():
            files = {"file": ("sample-xray.png", image, "image/png")}
            answer = httpx.post(f"{server.url}/predict", files=files, timeout=120, trust_env=False)
            answer.raise_for_status()
            answers[name] = answer.json()["probabilities"]
        cards = {
            name: httpx.get(f"{server.url}/model", timeout=30, trust_env=False).json()
            for name, server in servers.items()
            if name != "seed"
        }
        measured = asyncio.run(_measure(servers, levels, rounds, image))
        final = {name: proc_status(server.process.pid) for name, server in servers.items()}
    summary = {
        name: {
            "startup_s": servers[name].startup_s,
            "idle_rss_mib": idle[name]["rss_mib"],
            "idle_threads": idle[name]["threads"],
            "load_max_rss_mib": measured["memory"][name]["max_rss_mib"],
            "load_max_threads": measured["memory"][name]["max_threads"],
            "peak_rss_mib": final[name]["hwm_mib"],
            "levels": [_best(rounds_) for rounds_ in measured["runs"][name]],
        }
        for name in servers
    }
    parity = {"max_abs_prob_diff_ours_vs_seed": _largest_difference(answers["ours"], answers["seed"])}
    for name in variants or {}:
        parity[f"max_abs_prob_diff_{name}_vs_ours"] = _largest_difference(answers[name], answers["ours"])
    # what actually ran, fallbacks included
    served = {name: {key: card[key] for key in ("backend", "precision", "device")} for name, card in cards.items()}
    return {"servers": summary, "parity": parity, "ours_model": served["ours"], "served": served}


def _largest_difference(a: dict[str, float], b: dict[str, float]) -> float:
    return max(abs(a[name] - b[name]) for name in a)


def _ratio(a: float, b: float) -> float:
    return a / b if b and not math.isnan(a) and not math.isnan(b) else math.nan


def compare_levels(servers: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per load level: both servers' best rounds, and ours/seed for req/s, p50, p99 and CPU per request."""
    rows = []
    for ours, seed in zip(servers["ours"]["levels"], servers["seed"]["levels"], strict=True):
        rows.append(
            {
                "route": ours["path"],
                "clients": ours["clients"],
                "ours": ours,
                "seed": seed,
                "ratio_ours_over_seed": {k: _ratio(ours[k], seed[k]) for k in RATIO_KEYS},
            }
        )
    return rows


def precision_levels(servers: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per load level: req/s and p50 of every server but the seed, each over the seed's and over ours'
    (the default settings) req/s."""
    rows = []
    for index, seed in enumerate(servers["seed"]["levels"]):
        ours = servers["ours"]["levels"][index]
        rows.append(
            {
                "route": seed["path"],
                "clients": seed["clients"],
                "seed_req_per_s": seed["req_per_s"],
                "servers": {
                    name: {
                        "req_per_s": server["levels"][index]["req_per_s"],
                        "p50_ms": server["levels"][index]["p50_ms"],
                        "over_seed": _ratio(server["levels"][index]["req_per_s"], seed["req_per_s"]),
                        "over_ours": _ratio(server["levels"][index]["req_per_s"], ours["req_per_s"]),
                    }
                    for name, server in servers.items()
                    if name != "seed"
                },
            }
        )
    return rows
