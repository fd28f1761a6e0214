"""OpenVINO on the CPU: the network exported once per checkpoint (logits and the norm5 map), compiled at start-up.

Chosen over ONNX Runtime by measurement (docs/backends.md): equal at fp32 within the noise of
a shared 2-core machine, and bf16 on CPUs that have it, which ONNX Runtime's CPU provider does not offer. The
export goes straight from PyTorch to OpenVINO's IR (an XML graph and a binary of weights; no onnx package).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import openvino as ov
import torch

from app.backends.cache import ExportCache
from models.network import CheXNet
from models.openvino_ir import compile_cpu, export_ir, load_int8, shared_core

logger = logging.getLogger(__name__)

# int8's probe only proves the folder is this model (its fidelity on X-rays is measured by chexnet quantize).
PROBE_TOLERANCE = {"fp32": 1e-4, "bf16": 5e-2, "int8": 0.25}


def cached_ir(core: ov.Core, model: CheXNet, image_size: int, cache: ExportCache | None) -> ov.Model:
    """The IR from the cache when its digests check out, else a fresh export (stored when there is a cache)."""
    if cache is not None and cache.verified():
        try:
            return core.read_model(str(cache.path("xml")))
        except RuntimeError:
            logger.warning("the cached OpenVINO model could not be read; exporting again")
    elif cache is not None and cache.manifest.exists():
        logger.warning("the cached OpenVINO model does not match its manifest; exporting again")
    exported = export_ir(model, image_size)
    if cache is not None:
        cache.store(lambda stem: ov.save_model(exported, str(stem) + ".xml", compress_to_fp16=False))
        logger.info("exported the model to OpenVINO IR (cached)")
    return exported


class OpenVINOBackend:
    """One compiled model and one infer request, used only from the model thread."""

    name = "openvino"
    device = torch.device("cpu")

    def __init__(self, compiled: ov.CompiledModel, precision: str) -> None:
        self.precision = precision
        self._request = compiled.create_infer_request()
        self._logits, self._features = compiled.output(0), compiled.output(1)

    def run(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, 3, S, S) -> logits (N, K) float32 and the norm5 map (N, 1024, S/32, S/32) float32, on the CPU."""
        array = np.ascontiguousarray(images.detach().cpu().numpy(), dtype=np.float32)
        result = self._request.infer({0: array}, share_inputs=False, share_outputs=False)
        logits = torch.from_numpy(np.asarray(result[self._logits], dtype=np.float32))
        return logits, torch.from_numpy(np.asarray(result[self._features], dtype=np.float32))


def compile_backend(ir: ov.Model, precision: str, threads: int) -> OpenVINOBackend:
    return OpenVINOBackend(compile_cpu(ir, precision, threads), precision)


def probe_difference(backend: OpenVINOBackend, model: CheXNet, image_size: int) -> float:
    """Largest |probability difference| from the eager fp32 model on a fixed random batch of two."""
    images = torch.randn(2, 3, image_size, image_size, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        expected = torch.sigmoid(model(images))
    return float((torch.sigmoid(backend.run(images)[0]) - expected).abs().max())


def load_openvino_backend(
    model: CheXNet, image_size: int, precision: str, threads: int, cache: ExportCache | None
) -> OpenVINOBackend:
    """Export (or read the cached export), compile, and check it against eager on a probe batch.

    A cached export that disagrees with the checkpoint's eager model is exported again; a fresh export that
    disagrees raises RuntimeError (the service does not start on a model it cannot vouch for).
    """
    core = shared_core()
    backend = compile_backend(cached_ir(core, model, image_size, cache), precision, threads)
    difference = probe_difference(backend, model, image_size)
    if difference > PROBE_TOLERANCE[precision] and cache is not None:
        logger.warning("the cached OpenVINO model disagrees with the checkpoint (%.2g); exporting again", difference)
        cache.manifest.unlink(missing_ok=True)
        backend = compile_backend(cached_ir(core, model, image_size, cache), precision, threads)
        difference = probe_difference(backend, model, image_size)
    if difference > PROBE_TOLERANCE[precision]:
        raise RuntimeError(f"the OpenVINO export disagrees with the eager model by {difference:.2g} in probability")
    return backend


def load_int8_backend(model: CheXNet, image_size: int, folder: Path, sha256: str, threads: int) -> OpenVINOBackend:
    """The int8 folder made by ``chexnet quantize`` from this checkpoint, compiled and probed against eager fp32.

    Raises :class:`~models.openvino_ir.QuantizedModelError` for a folder of another checkpoint or size, and
    RuntimeError when the compiled model is not this network at all (probe beyond ``PROBE_TOLERANCE["int8"]``).
    """
    ir, _manifest = load_int8(folder, sha256, image_size)
    backend = compile_backend(ir, "int8", threads)
    difference = probe_difference(backend, model, image_size)
    if difference > PROBE_TOLERANCE["int8"]:
        raise RuntimeError(f"the int8 model disagrees with the checkpoint by {difference:.2g} in probability")
    return backend


def cache_key(sha256: str, image_size: int) -> str:
    """The checkpoint's digest, the input size and the OpenVINO version (an IR is read by the version it came from)."""
    return f"{sha256}-{image_size}px-openvino-{ov.get_version().split('-')[0]}"


def cache_for(folder: Path | None, sha256: str, image_size: int) -> ExportCache | None:
    return None if folder is None or not sha256 else ExportCache(folder, cache_key(sha256, image_size), ("xml", "bin"))
