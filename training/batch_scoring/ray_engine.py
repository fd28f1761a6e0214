"""``chexnet predict --engine ray``: the same table, scored on a Ray cluster with Ray Data (``chexnet[ray]``).

inputs not yet in the table -> Ray Dataset of (key, path, name) -> decode + the checkpoint's eval preprocessing on
CPU tasks (the project's own decoder; an unreadable file becomes a row with its reason, never a failed task) ->
the model in ``--actors`` actors (one GPU each when the cluster has GPUs, torch on the CPU otherwise), batches of
``--batch-size`` -> back to the driver, which writes each batch whole into the Parquet table (so a resume works as
for one process) and drops a key it has already written (a retried task after a lost node cannot double a row).

Workers do not inherit the driver's environment: the ``CHEXNET_*`` variables and the thread settings set on the
driver are passed to them explicitly (``runtime_env`` ``env_vars``, :func:`worker_env`). The images and the
checkpoint must be readable at the same paths on every node (a shared file system); each actor checks that the
checkpoint it loads has the driver's SHA-256.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from training.batch_scoring.inputs import ScoringInput
from training.batch_scoring.results_table import ScoreRow, TableRecord
from training.batch_scoring.scoring_job import TableWriter
from training.exit_status import UsageError

logger = logging.getLogger(__name__)

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY")


@dataclass(frozen=True)
class RayJob:
    """``checkpoint`` (a path every node reads), ``address`` (None: a local cluster), ``batch_size`` images per
    model call, ``actors`` model actors, ``operating_point`` (findings columns) or None."""

    checkpoint: Path
    address: str | None
    batch_size: int
    actors: int
    operating_point: str | None


def worker_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The variables given to every Ray worker: the driver's ``CHEXNET_*`` and thread settings."""
    source = dict(os.environ if environ is None else environ)
    return {k: v for k, v in source.items() if k.startswith("CHEXNET_") or k in THREAD_VARIABLES}


def decode_batch(batch: dict[str, np.ndarray], preprocessing: dict[str, Any]) -> dict[str, np.ndarray]:
    """Ray Data CPU stage: paths -> ``pixels`` (B, 3, S, S) float32 (zeros where unreadable) and ``error``."""
    from models.imaging.errors import InputError
    from models.preprocessing import PreprocessSpec, eval_tensor
    from training.data.dataset import load_gray

    spec = PreprocessSpec.from_dict(preprocessing)
    size = spec.image_size
    pixels = np.zeros((len(batch["path"]), 3, size, size), dtype=np.float32)
    errors = []
    for i, path in enumerate(batch["path"]):
        try:
            pixels[i] = eval_tensor(spec, load_gray(Path(str(path)))).numpy()
            errors.append("")
        except InputError as error:
            errors.append(error.message)
    return {"key": batch["key"], "name": batch["name"], "pixels": pixels, "error": np.array(errors, dtype=object)}


class ModelActor:
    """Ray Data actor stage: ``pixels`` -> ``probs`` (B, K) (NaN where unreadable) and ``findings`` (B, K)."""

    def __init__(self, checkpoint: str, sha256: str, operating_point: str | None) -> None:
        import torch

        from models.checkpoint import load_checkpoint
        from training.batch_scoring.scoring_job import findings_function

        loaded = load_checkpoint(checkpoint)
        if loaded.sha256 != sha256:
            raise RuntimeError("the checkpoint this worker reads is not the driver's (sha256 differs)")
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.model = loaded.build_model().to(self.device).eval()
        self.labels = len(loaded.labels)
        self.findings = findings_function(loaded.operating_points, operating_point)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        readable = np.array([not e for e in batch["error"]], dtype=bool)
        probs = np.full((len(readable), self.labels), np.nan, dtype=np.float32)
        if readable.any():
            with torch.inference_mode():
                x = torch.from_numpy(np.ascontiguousarray(batch["pixels"][readable])).to(self.device)
                probs[readable] = torch.sigmoid(self.model(x).float()).cpu().numpy()
        findings = np.zeros_like(probs, dtype=np.int64)
        if self.findings is not None and readable.any():
            findings[readable] = self.findings(probs[readable])
        return {
            "key": batch["key"],
            "name": batch["name"],
            "probs": probs,
            "findings": findings,
            "error": batch["error"],
        }


def _rows(batch: dict[str, np.ndarray], with_findings: bool) -> list[ScoreRow]:
    rows = []
    for i, key in enumerate(batch["key"]):
        error = str(batch["error"][i])
        probs = None if error else tuple(float(p) for p in batch["probs"][i])
        findings = tuple(int(v) for v in batch["findings"][i]) if with_findings and not error else None
        rows.append(ScoreRow(str(key), str(batch["name"][i]), probs, findings, error))
    return rows


def score_on_ray(
    job: RayJob, record: TableRecord, items: Sequence[ScoringInput], writer: TableWriter
) -> list[ScoreRow]:
    """Score ``items`` on the cluster, writing each batch the driver receives; the rows written."""
    try:
        ray: Any = importlib.import_module("ray")  # typed Any: its API is the same with or without its stubs
        importlib.import_module("ray.data")
    except ImportError:
        raise UsageError("--engine ray needs Ray: pip install 'chexnet[ray]'") from None
    if not items:
        return []
    ray.init(address=job.address, runtime_env={"env_vars": worker_env()}, logging_level=logging.WARNING)
    try:
        gpus = ray.cluster_resources().get("GPU", 0)
        logger.info("ray: %d files, %d actors (%s)", len(items), job.actors, "GPU" if gpus else "CPU")
        dataset = ray.data.from_items(
            [{"key": item.key, "path": str(item.path.resolve()), "name": item.path.name} for item in items]
        )
        decoded = dataset.map_batches(
            decode_batch, fn_kwargs={"preprocessing": record.preprocessing}, batch_size=job.batch_size, num_cpus=1
        )
        scored = decoded.map_batches(
            ModelActor,
            fn_constructor_kwargs={
                "checkpoint": str(job.checkpoint.resolve()),
                "sha256": record.model_sha256,
                "operating_point": job.operating_point,
            },
            batch_size=job.batch_size,
            compute=ray.data.ActorPoolStrategy(min_size=1, max_size=job.actors),  # one left after a node is lost
            num_gpus=1 if gpus else 0,
            num_cpus=0 if gpus else 1,
        )
        written: list[ScoreRow] = []
        seen: set[str] = set()
        for batch in scored.iter_batches(batch_size=None, batch_format="numpy"):
            rows = [row for row in _rows(batch, job.operating_point is not None) if row.key not in seen]
            if rows:
                writer.append(rows)
                written.extend(rows)
                seen.update(row.key for row in rows)
        return written
    finally:
        ray.shutdown()
