"""The network as an OpenVINO model (logits and the norm5 map), and its int8 form from NNCF post-training
quantization, stored as a folder that names what it was made from.

Both the service's CPU backend (``app.backends.openvino_backend``) and ``chexnet quantize`` use this module, so
the graph that was quantized is the graph that is served. The int8 folder holds ``model.xml`` / ``model.bin`` and
``manifest.json``: the checkpoint's SHA-256, the input size, the calibration images' count and digest, the NNCF
and OpenVINO versions, the measured fidelity, and each file's SHA-256 (checked on every load).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import openvino as ov
import torch
from torch import nn

from models.errors import ModelContractError
from models.files import file_sha256, write_bytes_atomically
from models.network import CheXNet

logger = logging.getLogger(__name__)

INT8_FORMAT: Final = 1
INT8_FILES: Final = ("model.xml", "model.bin")
MANIFEST: Final = "manifest.json"

_core: ov.Core | None = None
_core_lock = threading.Lock()


class QuantizedModelError(ModelContractError):
    """An int8 folder is missing, damaged, or made from another checkpoint or input size; the message says which."""


def shared_core() -> ov.Core:
    """The process's one ``ov.Core``, created on first use and never released.

    Not a cache but a safety rule. OpenVINO's CPU plugin (one per Core) gives the thread that first compiles with
    it an alternate signal stack of its own (mmap'd, for AMX-sized signal frames) and, when the plugin is
    destroyed, unmaps it and reinstates the stack it replaced -- even when that one belonged to another Core's
    plugin and is already unmapped. Two Cores whose plugins end in creation order leave the thread's signal stack
    on unmapped memory; the next signal with a Python handler (CPython installs them with SA_ONSTACK: torch's
    DataLoader SIGCHLD, uvicorn's SIGTERM) then kills the process with SIGSEGV before any handler can run,
    faulthandler's included, or writes its frame over whatever was mapped there since. One Core means one plugin
    and one signal stack for the life of the process (openvinotoolkit/openvino#11894).
    """
    global _core
    with _core_lock:
        if _core is None:
            _core = ov.Core()
            # Read the weights into memory rather than mapping the file: a cache file rewritten in place (a copy
            # over it, a test) would otherwise crash the process with SIGBUS/SIGSEGV when the mapping is touched.
            _core.set_property({"ENABLE_MMAP": False})
        return _core


class LogitsAndFeatures(nn.Module):
    """What is exported: both outputs, so closed-form Grad-CAM keeps working from the compiled graph."""

    def __init__(self, model: CheXNet) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.model.forward_features(images)
        return self.model.forward_head(features), features


def export_ir(model: CheXNet, image_size: int) -> ov.Model:
    """The fp32 network as an OpenVINO model with a dynamic batch: (N, 3, S, S) -> (logits (N, K), norm5 map).

    Through ``torch.export`` (an ExportedProgram), not a module handed to ``convert_model``, which traces it with
    the deprecated ``torch.jit.trace`` and warns at every first start. Both give bit-identical outputs here. The
    example batch is 2 because ``torch.export`` specialises a dimension whose example size is 1.
    """
    example = torch.zeros(2, 3, image_size, image_size)
    batch = torch.export.Dim("batch", max=4096)
    with torch.no_grad():
        program = torch.export.export(
            LogitsAndFeatures(model.float().eval()), (example,), dynamic_shapes=({0: batch},), strict=False
        )
        exported = ov.convert_model(program, input=[(-1, 3, image_size, image_size)])
    return exported


# INFERENCE_PRECISION_HINT per precision; int8's other operations stay fp32 (no bf16 on top of int8 unless asked).
PRECISION_HINTS: Final = {"fp32": "f32", "bf16": "bf16", "int8": "f32"}


def compile_cpu(ir: ov.Model, precision: str, threads: int) -> ov.CompiledModel:
    """``ir`` compiled for the CPU with one latency-oriented stream of ``threads`` threads.

    ``precision`` is ``fp32``, ``bf16`` (bf16 arithmetic where the CPU has it) or ``int8`` (an int8 ``ir``);
    raises KeyError for another name.
    """
    config = {
        "INFERENCE_NUM_THREADS": threads,
        "INFERENCE_PRECISION_HINT": PRECISION_HINTS[precision],
        "PERFORMANCE_HINT": "LATENCY",
    }
    return shared_core().compile_model(ir, "CPU", config)


def quantize_ir(ir: ov.Model, calibration: Iterable[np.ndarray], subset_size: int) -> ov.Model:
    """NNCF post-training quantization (8-bit weights and activations, min-max statistics on ``calibration``).

    ``calibration`` yields (1, 3, S, S) float32 model inputs, preprocessed exactly as at inference; the first
    ``subset_size`` are used. Raises ``ImportError`` when the ``nncf`` package is not installed.
    """
    import nncf  # the quantizer is needed only here, not by a service that serves an int8 folder

    items = list(calibration)
    if not items:
        raise ValueError("no calibration images: quantization needs at least one")
    return nncf.quantize(ir, nncf.Dataset(items), subset_size=min(subset_size, len(items)))


@dataclass(frozen=True)
class Int8Manifest:
    """What an int8 folder was made from, and how close it stays to fp32 on its calibration images."""

    checkpoint_sha256: str
    image_size: int
    calibration_images: int
    calibration_sha256: str
    fidelity: dict[str, Any]
    versions: dict[str, str]

    def to_dict(self, files: dict[str, str]) -> dict[str, Any]:
        return {
            "format": INT8_FORMAT,
            "checkpoint_sha256": self.checkpoint_sha256,
            "image_size": self.image_size,
            "calibration": {"images": self.calibration_images, "sha256": self.calibration_sha256},
            "fidelity": self.fidelity,
            "versions": self.versions,
            "files": files,
        }


def save_int8(folder: Path, quantized: ov.Model, manifest: Int8Manifest) -> Path:
    """Write ``model.xml``/``model.bin`` then ``manifest.json`` (last, so a folder with a manifest is whole)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MANIFEST).unlink(missing_ok=True)
    ov.save_model(quantized, str(folder / "model.xml"), compress_to_fp16=False)
    files = {name: file_sha256(folder / name) for name in INT8_FILES}
    text = json.dumps(manifest.to_dict(files), indent=2, sort_keys=True) + "\n"
    return write_bytes_atomically(folder / MANIFEST, text.encode())


def read_int8_manifest(folder: Path) -> dict[str, Any]:
    """The manifest of an int8 folder, its files' digests checked; raises :class:`QuantizedModelError`."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise QuantizedModelError(
            "the int8 model folder has no readable manifest.json (make it with chexnet quantize)"
        ) from exc
    if not isinstance(manifest, dict) or manifest.get("format") != INT8_FORMAT:
        raise QuantizedModelError(f"the int8 model folder's manifest is not format {INT8_FORMAT}")
    files = manifest.get("files", {})
    for name in INT8_FILES:
        try:
            digest = file_sha256(folder / name)
        except OSError as exc:
            raise QuantizedModelError(f"the int8 model folder has no readable {name}") from exc
        if files.get(name) != digest:
            raise QuantizedModelError(
                f"the int8 model folder's {name} does not match its manifest (damaged or replaced)"
            )
    return manifest


def load_int8(folder: Path, checkpoint_sha256: str, image_size: int) -> tuple[ov.Model, dict[str, Any]]:
    """The int8 model made from this very checkpoint at this input size, and its manifest.

    Raises :class:`QuantizedModelError` when the folder is damaged or was made from another checkpoint or size.
    """
    manifest = read_int8_manifest(folder)
    if manifest.get("checkpoint_sha256") != checkpoint_sha256:
        raise QuantizedModelError("the int8 model was quantized from another checkpoint; run chexnet quantize again")
    if manifest.get("image_size") != image_size:
        raise QuantizedModelError(
            f"the int8 model takes {manifest.get('image_size')} px inputs, the checkpoint's crop size is {image_size}"
        )
    return shared_core().read_model(str(folder / "model.xml")), manifest
