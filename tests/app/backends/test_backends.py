"""Every backend against eager fp32: probabilities, the norm5 map and Grad-CAM; the export cache; settings."""

from __future__ import annotations

import ctypes
import gc
import hashlib
import importlib.util
import json
import logging
import shutil
import signal
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from app.backends import InferenceBackend, backend_name, build_backend
from app.backends import openvino_backend as ovb
from app.backends.cache import resolve_cache_dir
from app.inference.threads import decode_executor, model_executor
from app.runtime.server import StartupError, prepare_service
from app.settings import Settings
from models.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from models.gradcam import gradcam_maps, normalise_maps
from models.labels import NIH_LABELS
from models.network import CheXNet, build_network
from models.preprocessing import PreprocessSpec

SIZE = 64  # 2x2 norm5 maps, so Grad-CAM has something to compare (32 px gives 1x1 maps, all zero once normalised)
PROB_TOLERANCE = 1e-4
CAM_TOLERANCE = 1e-3  # normalised maps in [0, 1]; fp32 graphs that sum in another order differ by ~1e-5
BF16_PROB_TOLERANCE = 2e-2


def write_checkpoint(path: Path, seed: int) -> Path:
    torch.manual_seed(seed)
    spec = PreprocessSpec(image_size=SIZE, resize=73)
    return save_checkpoint(
        Checkpoint(state_dict=build_network("none", len(NIH_LABELS)).state_dict(), labels=NIH_LABELS, spec=spec), path
    )


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_checkpoint(tmp_path_factory.mktemp("backends") / "tiny64.pt", seed=1234)


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.randn(3, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(7))


def load(checkpoint: Path, **settings: object) -> tuple[InferenceBackend, CheXNet]:
    """A backend for ``settings`` (device cpu), and the eager fp32 model it must agree with."""
    loaded = load_checkpoint(checkpoint)
    config = Settings(checkpoint=checkpoint, device="cpu", intra_op_threads=1, **settings)  # type: ignore[arg-type]
    backend = build_backend(config, loaded.build_model(), torch.device("cpu"), loaded.sha256 or "", SIZE)
    return backend, loaded.build_model()


@pytest.fixture(scope="module", params=["torch", "openvino"])
def backend_and_reference(request: pytest.FixtureRequest, checkpoint: Path) -> tuple[InferenceBackend, CheXNet]:
    return load(checkpoint, backend=request.param)


def test_probabilities_and_gradcam_equal_eager_fp32(
    backend_and_reference: tuple[InferenceBackend, CheXNet], images: torch.Tensor, one_torch_thread: None
) -> None:
    backend, model = backend_and_reference
    logits, features = backend.run(images)
    with torch.inference_mode():
        expected_features = model.forward_features(images)
        expected_logits = model.forward_head(expected_features)
    assert logits.dtype == features.dtype == torch.float32
    assert logits.shape == (3, 14) and features.shape == (3, 1024, 2, 2)
    assert backend.precision == "fp32" and backend.device == torch.device("cpu")
    probs, expected_probs = torch.sigmoid(logits), torch.sigmoid(expected_logits)
    assert float((probs - expected_probs).abs().max()) <= PROB_TOLERANCE
    weight = model.classifier.weight.detach()
    cams = normalise_maps(gradcam_maps(features, weight))
    expected_cams = normalise_maps(gradcam_maps(expected_features, weight))
    assert float((cams - expected_cams).abs().max()) <= CAM_TOLERANCE
    assert float(expected_cams.amax()) == 1.0  # the maps are not trivially all zero


def test_bf16_only_when_asked(checkpoint: Path, images: torch.Tensor, one_torch_thread: None) -> None:
    assert Settings().precision == "fp32"
    backend, model = load(checkpoint, backend="openvino", precision="bf16")
    assert backend.precision == "bf16"
    with torch.inference_mode():
        expected = torch.sigmoid(model(images))
    assert float((torch.sigmoid(backend.run(images)[0]) - expected).abs().max()) <= BF16_PROB_TOLERANCE


class ExportCounter:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls, self._export = 0, ovb.export_ir
        monkeypatch.setattr(ovb, "export_ir", self)

    def __call__(self, model: CheXNet, image_size: int) -> object:
        self.calls += 1
        return self._export(model, image_size)


@pytest.fixture(scope="module")
def module_cache(checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache folder holding the module checkpoint's export, and nothing else."""
    folder = tmp_path_factory.mktemp("module-cache")
    load(checkpoint, backend="openvino", cache_dir=folder)
    return folder


@pytest.fixture
def warm_cache(module_cache: Path, tmp_path: Path) -> Path:
    """A copy of ``module_cache`` to spoil (exports take seconds; share the one already made)."""
    return Path(shutil.copytree(module_cache, tmp_path / "cache"))


def cache_entry(folder: Path) -> dict[str, Path]:
    return {p.name.rsplit(".", 1)[-1]: p for p in folder.iterdir() if not p.name.startswith(".")}


def test_the_cache_is_keyed_by_the_checkpoint_sha256(
    checkpoint: Path, warm_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, one_torch_thread: None
) -> None:
    first = Path(shutil.copy(checkpoint, tmp_path / "a.pt"))
    counter = ExportCounter(monkeypatch)
    load(first, backend="openvino", cache_dir=warm_cache)
    assert counter.calls == 0  # the same bytes under another name: the cache entry is found
    sha = load_checkpoint(first).sha256 or ""
    assert all(p.name.startswith(sha) for p in warm_cache.iterdir())
    write_checkpoint(first, seed=2)  # the same file name, other weights
    load(first, backend="openvino", cache_dir=warm_cache)
    assert counter.calls == 1
    assert len(list(warm_cache.glob("*.manifest.json"))) == 2


def test_a_corrupt_cache_entry_is_rebuilt_not_trusted(
    checkpoint: Path, images: torch.Tensor, warm_cache: Path, monkeypatch: pytest.MonkeyPatch, one_torch_thread: None
) -> None:
    folder = warm_cache
    counter = ExportCounter(monkeypatch)
    weights = cache_entry(folder)["bin"]
    weights.write_bytes(weights.read_bytes()[:-4096])  # truncated
    backend, model = load(checkpoint, backend="openvino", cache_dir=folder)
    assert counter.calls == 1
    assert ovb.cache_for(folder, load_checkpoint(checkpoint).sha256 or "", SIZE).verified()  # type: ignore[union-attr]
    # Altered weights with a manifest rewritten to match: the start-up probe against eager catches it.
    data = bytearray(weights.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 4096] = bytes(4096)
    weights.write_bytes(bytes(data))
    manifest = next(folder.glob("*.manifest.json"))
    recorded = json.loads(manifest.read_text())
    recorded["bin"] = hashlib.sha256(data).hexdigest()
    manifest.write_text(json.dumps(recorded))
    backend, model = load(checkpoint, backend="openvino", cache_dir=folder)
    assert counter.calls == 2
    with torch.inference_mode():
        expected = torch.sigmoid(model(images))
    assert float((torch.sigmoid(backend.run(images)[0]) - expected).abs().max()) <= PROB_TOLERANCE


def test_without_a_writable_cache_the_export_stays_in_memory(
    checkpoint: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture, one_torch_thread: None
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert resolve_cache_dir(blocker / "cache", checkpoint) is None
    with caplog.at_level(logging.WARNING):
        backend, _ = load(checkpoint, backend="openvino", cache_dir=blocker / "cache")
    assert backend.name == "openvino" and "in memory" in caplog.text
    assert str(checkpoint) not in caplog.text and checkpoint.name not in caplog.text


class SignalStack(ctypes.Structure):
    _fields_ = [("ss_sp", ctypes.c_void_p), ("ss_flags", ctypes.c_int), ("ss_size", ctypes.c_size_t)]


def signal_stack() -> tuple[int, int]:
    """This thread's alternate signal stack: (address, size), (0, 0) when there is none."""
    stack = SignalStack()
    assert ctypes.CDLL(None).sigaltstack(None, ctypes.byref(stack)) == 0
    return (stack.ss_sp, stack.ss_size) if stack.ss_sp else (0, 0)


def is_mapped(address: int) -> bool:
    with open("/proc/self/maps") as maps:
        spans = (line.split()[0].split("-") for line in maps)
        return any(int(low, 16) <= address < int(high, 16) for low, high in spans)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="sigaltstack and /proc/self/maps as on Linux")
def test_backends_dropped_in_creation_order_leave_a_mapped_signal_stack(
    checkpoint: Path, one_torch_thread: None
) -> None:
    # Each ov.Core's CPU plugin used to install a signal stack and, on release, reinstate the one it replaced:
    # backends released in creation order left an unmapped one, and the next signal handler crashed the process.
    first, _ = load(checkpoint, backend="openvino")
    during = signal_stack()
    second, _ = load(checkpoint, backend="openvino")
    assert signal_stack() == during  # one Core for the process, so no second plugin and no second stack
    del first, second
    gc.collect()
    assert signal_stack() == during and (during == (0, 0) or is_mapped(during[0]))
    handled: list[int] = []
    previous = signal.signal(signal.SIGUSR1, lambda number, _: handled.append(number))
    try:
        signal.raise_signal(signal.SIGUSR1)  # its frame goes on that stack (CPython handlers use SA_ONSTACK)
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert handled == [signal.SIGUSR1]


def test_the_default_cache_lies_beside_the_checkpoint(checkpoint: Path) -> None:
    assert resolve_cache_dir(None, checkpoint) == checkpoint.parent / ".chexnet-cache"


def test_auto_means_openvino_on_the_cpu(checkpoint: Path, one_torch_thread: None) -> None:
    assert Settings().backend == "auto"
    backend, _ = load(checkpoint)
    assert backend.name == "openvino" and backend.precision == "fp32"


def test_auto_means_torch_on_cuda_or_without_openvino(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert backend_name(Settings(), cuda) == "torch"
    assert backend_name(Settings(backend="torch"), cpu) == "torch"
    assert backend_name(Settings(backend="openvino"), cpu) == "openvino"
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with caplog.at_level(logging.WARNING):
        assert backend_name(Settings(), cpu) == "torch"
    assert "openvino package is not installed" in caplog.text


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("CHEXNET_BACKEND", "tensorrt"),
        ("CHEXNET_PRECISION", "fp8"),
        ("CHEXNET_INTRA_OP_THREADS", "0"),
        ("CHEXNET_INTRA_OP_THREADS", "two"),
    ],
)
def test_invalid_settings_name_the_variable(variable: str, value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(StartupError) as caught:
        prepare_service({})
    assert variable in str(caught.value) and caught.value.exit_code == 2


def test_openvino_with_cuda_is_refused_naming_the_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHEXNET_DEVICE", "cuda")
    monkeypatch.setenv("CHEXNET_BACKEND", "openvino")
    with pytest.raises(StartupError, match="CHEXNET_BACKEND"):
        prepare_service({})


def test_thread_policy_model_thread_gets_the_setting_decode_threads_one() -> None:
    model, decode = model_executor(3), decode_executor(2)
    try:
        assert model.submit(torch.get_num_threads).result() == 3
        assert all(n == 1 for n in decode.map(lambda _: torch.get_num_threads(), range(4)))
        assert model.submit(torch.get_num_threads).result() == 3  # decode threads did not change it
    finally:
        model.shutdown()
        decode.shutdown()
    assert Settings().intra_op_threads >= 1
    np.testing.assert_equal(Settings(intra_op_threads=5).intra_op_threads, 5)
