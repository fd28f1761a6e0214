"""How far each backend and precision moves the demo model's held-out predictions from eager fp32.

    .venv/bin/python -m benchmarks.bf16_deviation [--data ../shared/data] [--checkpoint C] [--limit N]

The held-out images are the checkpoint's validation split, rebuilt from its recorded config (its ``val_list``,
or the patient split with its ``val_fraction`` and ``seed``) over the NIH sample it was trained on: ``--data``
holds ``nih-sample/images`` and ``nih-sample/Data_Entry_sample.csv`` (default ``../shared/data``, beside the
repository). Each row is one backend as the service runs it, against the plain eager fp32 forward that
``chexnet evaluate`` runs on the same tensors: max and mean |Δ probability| over every image and class, the
largest change in one class's AUROC, and the mean AUROC.
"""

from __future__ import annotations

import argparse
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from app.backends import InferenceBackend
from app.backends.openvino_backend import compile_backend, export_ir, shared_core
from app.backends.torch_backend import TorchBackend
from app.inference.threads import available_cores
from models.bundled import DEMO_CHECKPOINT
from models.checkpoint import Checkpoint, load_checkpoint
from models.imaging.decoder import decode_image
from models.preprocessing import eval_tensor
from training.data.label_tables import LabelTable, read_label_table
from training.data.splits import indices_of, read_name_list, split_by_patient
from training.scoring.metrics import mean_auroc, per_class_auroc

REPO = Path(__file__).resolve().parents[1]
BATCH = 16  # the service's default largest batch
Logits = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Deviation:
    """One backend against eager fp32: |Δ prob| (max, mean) and AUROC (largest per-class change, mean)."""

    name: str
    max_abs: float
    mean_abs: float
    max_auroc_change: float
    mean_auroc: float


def held_out_table(checkpoint: Checkpoint, labels: Path) -> LabelTable:
    """The rows of ``labels`` that the checkpoint validated on (and was not trained on)."""
    recorded = checkpoint.provenance.get("data", {}).get("labels_sha256")
    if recorded and hashlib.sha256(labels.read_bytes()).hexdigest() != recorded:
        raise SystemExit(f"{labels} is not the label table this checkpoint was trained with (SHA-256 differs)")
    table, config = read_label_table(labels), checkpoint.config
    if config.get("val_list"):
        val_list = Path(config["val_list"])
        return table.subset(indices_of(table, read_name_list(val_list), val_list))
    _, val = split_by_patient(table, config["val_fraction"], config["seed"])
    return table.subset(val)


def batched_probs(logits: Logits, images: torch.Tensor) -> np.ndarray:
    """(N, 3, S, S) -> sigmoid probabilities (N, K) float64, ``BATCH`` images per call."""
    with torch.inference_mode():
        parts = [torch.sigmoid(logits(images[i : i + BATCH]).float()) for i in range(0, len(images), BATCH)]
    return torch.cat(parts).double().numpy()


def backends(checkpoint: Checkpoint, image_size: int) -> dict[str, InferenceBackend]:
    """Each backend and precision the service offers, each on its own copy of the model."""
    ir = export_ir(checkpoint.build_model(), image_size)
    found: dict[str, InferenceBackend] = {}
    for precision in ("fp32", "bf16"):
        found[f"torch {precision}"] = TorchBackend(checkpoint.build_model(), torch.device("cpu"), precision)
        found[f"openvino {precision}"] = compile_backend(ir, precision, available_cores())
    return found


def deviation(name: str, probs: np.ndarray, reference: np.ndarray, targets: np.ndarray) -> Deviation:
    columns = [str(k) for k in range(targets.shape[1])]  # only the values are compared
    auroc, reference_auroc = per_class_auroc(targets, probs, columns), per_class_auroc(targets, reference, columns)
    pairs = zip(auroc.values(), reference_auroc.values(), strict=True)
    changes = [abs(a - b) for a, b in pairs if a is not None and b is not None]
    delta = np.abs(probs - reference)
    return Deviation(name, float(delta.max()), float(delta.mean()), max(changes, default=0.0), mean_auroc(auroc) or 0)


def measure(checkpoint_path: Path, data: Path, limit: int | None = None) -> tuple[int, list[Deviation]]:
    """(held-out images, one row per backend after eager fp32's own) for the checkpoint's validation images."""
    sample = data / "nih-sample"
    checkpoint = load_checkpoint(checkpoint_path)
    table = held_out_table(checkpoint, sample / "Data_Entry_sample.csv")
    if limit is not None:
        table = table.subset(range(min(limit, len(table))))
    spec = checkpoint.spec
    images = torch.stack([eval_tensor(spec, decode_image(sample / "images" / name).gray) for name in table.image_names])
    reference = batched_probs(checkpoint.build_model(), images)
    rows = [deviation("eager fp32 (reference)", reference, reference, table.targets)]
    for name, backend in backends(checkpoint, spec.image_size).items():
        probs = batched_probs(lambda x: backend.run(x)[0], images)  # noqa: B023  (used before the next turn)
        rows.append(deviation(name, probs, reference, table.targets))
    return len(table), rows


def report(line: str) -> None:
    print(line, flush=True)  # noqa: T201  (the script's output)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"), help="relative to the repository")
    parser.add_argument("--checkpoint", type=Path, default=DEMO_CHECKPOINT)
    parser.add_argument("--limit", type=int, help="only the first N held-out images (a smoke run)")
    args = parser.parse_args()
    data = args.data if args.data.is_absolute() else REPO / args.data
    if not (data / "nih-sample" / "Data_Entry_sample.csv").exists():
        raise SystemExit(f"{data / 'nih-sample'} not found: pass --data, the folder that holds nih-sample/")
    capabilities = shared_core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    count, rows = measure(args.checkpoint, data, args.limit)
    report(f"{args.checkpoint.name}: {count} held-out images; OpenVINO CPU capabilities: {' '.join(capabilities)}")
    report("| backend | max \\|Δ prob\\| | mean \\|Δ prob\\| | max \\|Δ AUROC\\| (one class) | mean AUROC |")
    report("|---|---:|---:|---:|---:|")
    for row in rows:
        changes = f"{row.max_abs:.2g} | {row.mean_abs:.2g} | {row.max_auroc_change:.2g}"
        report(f"| {row.name} | {changes} | {row.mean_auroc:.4f} |")


if __name__ == "__main__":
    main()
