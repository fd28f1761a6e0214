"""``chexnet quantize``: a checkpoint -> an int8 OpenVINO model (NNCF post-training quantization) calibrated on
the user's X-rays, measured against fp32 on those images and refused when it loses more AUROC than allowed.

Options are checked before any image is read. Calibration images: the rows of ``--labels`` (optionally only those
in ``--split-list``, such as a run's ``val_list.txt`` -- the checkpoint records file names, never paths, so the
images are named here), else every PNG, JPEG or DICOM in ``--images``; at most ``--max-images`` of them, drawn with
a fixed seed. The result is a folder (see :mod:`models.openvino_ir`) that ``chexnet serve --precision int8
--int8-model OUT`` serves.
"""

from __future__ import annotations

import hashlib
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Final

import numpy as np
import openvino as ov
import torch

from models.checkpoint import Checkpoint, load_checkpoint
from models.files import file_sha256
from models.imaging.errors import InputError
from models.openvino_ir import Int8Manifest, compile_cpu, export_ir, quantize_ir, save_int8
from models.preprocessing import eval_tensor
from training.data.dataset import load_gray
from training.data.sources import aligned_targets
from training.exit_status import UsageError
from training.quantize_policy import DEFAULT_MAX_AUROC_DROP, DEFAULT_MAX_IMAGES
from training.reports.fidelity import format_fidelity
from training.scoring.fidelity import Fidelity, measure_fidelity

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES: Final = (".png", ".jpg", ".jpeg", ".dcm", ".dicom")
EXIT_REFUSED: Final = 3  # quantized, measured, and refused: it loses more AUROC than --max-auroc-drop allows


class QuantizeOptionsError(UsageError):
    """An option that cannot work (exit status 2); the message names the flag."""


@dataclass(frozen=True)
class QuantizeOptions:
    checkpoint: Path
    images: Path
    out: Path
    labels: Path | None = None
    split_list: Path | None = None
    max_images: int = DEFAULT_MAX_IMAGES
    max_auroc_drop: float = DEFAULT_MAX_AUROC_DROP
    batch_size: int = 16
    seed: int = 0
    overwrite: bool = False


@dataclass(frozen=True)
class Calibration:
    """The images used: (N, 3, S, S) model inputs, their names, and (N, K) targets in {0, 1, NaN} or None."""

    inputs: torch.Tensor
    names: tuple[str, ...]
    targets: np.ndarray | None
    sha256: str
    unreadable: int


def validate_options(options: QuantizeOptions) -> None:
    """Raises :class:`QuantizeOptionsError` naming the flag; reads no image."""
    if not options.checkpoint.is_file():
        raise QuantizeOptionsError(f"--checkpoint: no such file: {options.checkpoint}")
    if not options.images.is_dir():
        raise QuantizeOptionsError(f"--images: no such folder: {options.images}")
    for flag, path in (("--labels", options.labels), ("--split-list", options.split_list)):
        if path is not None and not path.is_file():
            raise QuantizeOptionsError(f"{flag}: no such file: {path}")
    if options.split_list is not None and options.labels is None:
        raise QuantizeOptionsError("--split-list names rows of --labels: give --labels too")
    if options.max_images < 1:
        raise QuantizeOptionsError("--max-images must be at least 1")
    if not 0.0 <= options.max_auroc_drop <= 1.0:
        raise QuantizeOptionsError("--max-auroc-drop must lie in [0, 1]")
    if options.batch_size < 1:
        raise QuantizeOptionsError("--batch-size must be at least 1")
    if options.out.exists() and not options.overwrite:
        raise QuantizeOptionsError(f"--out: {options.out} exists (pass --overwrite to replace it)")


def _labelled_rows(options: QuantizeOptions, model_labels: tuple[str, ...]) -> tuple[list[str], np.ndarray]:
    """Image names and (N, K) targets in the model's label order (NaN where the table lacks a label)."""
    from training.scoring.labelled_images import load_labelled_table

    assert options.labels is not None
    table, _ = load_labelled_table(options.labels, options.split_list)
    return list(table.image_names), aligned_targets(table, model_labels).astype(np.float32)


def _folder_images(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def read_calibration(options: QuantizeOptions, checkpoint: Checkpoint) -> Calibration:
    """The calibration images decoded and preprocessed exactly as the service does (unreadable ones counted)."""
    if options.labels is not None:
        names, targets = _labelled_rows(options, checkpoint.labels)
    else:
        names, targets = _folder_images(options.images), None
    order = np.random.default_rng(options.seed).permutation(len(names))[: options.max_images]
    order.sort()
    inputs: list[torch.Tensor] = []
    kept: list[int] = []
    digest = hashlib.sha256()
    for index in order:
        path = options.images / names[index]
        try:
            inputs.append(eval_tensor(checkpoint.spec, load_gray(path)))
        except (InputError, OSError):
            continue
        kept.append(int(index))
        digest.update(names[index].encode() + b"\0" + file_sha256(path).encode() + b"\n")
    if not inputs:
        raise QuantizeOptionsError("no readable calibration image was found (--images, --labels, --split-list)")
    return Calibration(
        inputs=torch.stack(inputs),
        names=tuple(names[i] for i in kept),
        targets=None if targets is None else targets[kept],
        sha256=digest.hexdigest(),
        unreadable=len(order) - len(kept),
    )


def _batched(run: Callable[[torch.Tensor], np.ndarray], inputs: torch.Tensor, batch_size: int) -> np.ndarray:
    return np.concatenate([run(inputs[i : i + batch_size]) for i in range(0, len(inputs), batch_size)])


def quantize_and_measure(
    checkpoint: Checkpoint, calibration: Calibration, batch_size: int
) -> tuple[ov.Model, Fidelity]:
    """The int8 OpenVINO model and its fidelity against eager fp32 on the calibration images."""
    model = checkpoint.build_model().eval()
    size = checkpoint.spec.image_size
    quantized = quantize_ir(
        export_ir(model, size), (x[None].numpy() for x in calibration.inputs), subset_size=len(calibration.inputs)
    )
    compiled = compile_cpu(quantized, "int8", torch.get_num_threads())

    def reference(images: torch.Tensor) -> np.ndarray:
        with torch.inference_mode():
            return np.asarray(torch.sigmoid(model(images)).numpy())

    def int8(images: torch.Tensor) -> np.ndarray:
        logits = np.asarray(compiled(np.ascontiguousarray(images.numpy()))[0], dtype=np.float32)
        return np.asarray(torch.sigmoid(torch.from_numpy(logits)).numpy())

    fidelity = measure_fidelity(
        checkpoint.labels,
        _batched(reference, calibration.inputs, batch_size),
        _batched(int8, calibration.inputs, batch_size),
        calibration.targets,
        checkpoint.operating_points,
    )
    return quantized, fidelity


def versions() -> dict[str, str]:
    found: dict[str, str] = {}
    for name in ("nncf", "openvino", "torch"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def run_quantize(options: QuantizeOptions) -> int:
    """The command: 0 written, 3 refused (the table says why). Raises QuantizeOptionsError / ModelContractError."""
    validate_options(options)
    checkpoint = load_checkpoint(options.checkpoint)
    calibration = read_calibration(options, checkpoint)
    if calibration.unreadable:
        print(f"chexnet quantize: passed over {calibration.unreadable} unreadable images", file=sys.stderr)
    quantized, fidelity = quantize_and_measure(checkpoint, calibration, options.batch_size)
    print(format_fidelity(fidelity))
    drop = fidelity.mean_auroc_drop
    if drop is not None and drop > options.max_auroc_drop:
        print(
            f"chexnet quantize: refused: int8 loses {drop:.4f} mean AUROC on the calibration images, more than "
            f"--max-auroc-drop {options.max_auroc_drop:g}; nothing was written",
            file=sys.stderr,
        )
        return EXIT_REFUSED
    if drop is None:
        print("chexnet quantize: no labels, so the AUROC change was not measured (pass --labels)", file=sys.stderr)
    manifest = Int8Manifest(
        checkpoint_sha256=checkpoint.sha256 or file_sha256(options.checkpoint),
        image_size=checkpoint.spec.image_size,
        calibration_images=len(calibration.names),
        calibration_sha256=calibration.sha256,
        fidelity={**fidelity.to_dict(), "max_auroc_drop_allowed": options.max_auroc_drop},
        versions=versions(),
    )
    save_int8(options.out, quantized, manifest)
    print(
        f"wrote {options.out}: serve it with chexnet serve --checkpoint {options.checkpoint} --precision int8 "
        f"--int8-model {options.out}"
    )
    return 0
