"""Shared fixtures: one tiny random-weight checkpoint (32 px), one export cache, paths to shared data."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from models.checkpoint import Checkpoint, save_checkpoint
from models.labels import NIH_LABELS
from models.network import build_network
from models.preprocessing import PreprocessSpec

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
SHARED_DATA = REPO.parent / "shared" / "data"
TINY_SPEC = PreprocessSpec(image_size=32, resize=36)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``cuda``-marked tests skip, saying why, where no CUDA device is available."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (benchmarks/gpu_check.sh runs these on a GPU machine)")
    for item in items:
        if item.get_closest_marker("cuda") is not None:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight DenseNet-121 checkpoint with a 32 px spec (seeded, so results are repeatable)."""
    torch.manual_seed(1234)
    model = build_network("none", len(NIH_LABELS))
    path = tmp_path_factory.mktemp("tiny") / "tiny.pt"
    save_checkpoint(
        Checkpoint(
            state_dict=model.state_dict(),
            spec=TINY_SPEC,
            labels=NIH_LABELS,
            metrics={"val_mean_auroc": 0.5},
            provenance={"data": {"images": "synthetic"}, "command": "tests/conftest.py"},
        ),
        path,
    )
    return path


@pytest.fixture(scope="session", autouse=True)
def export_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One OpenVINO export cache for the session, also for the servers tests start (they inherit the variable).

    Entries are keyed by the checkpoint's SHA-256, so each checkpoint is exported once per session; nothing is
    written beside the bundled model, and no run reads an export an earlier run left behind.
    """
    folder = tmp_path_factory.mktemp("export-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CHEXNET_CACHE_DIR", str(folder))
        yield folder


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """Tiny convolutions gain nothing from threads, and spinning OpenMP threads crawl on a shared 2-core box."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def shared_or_skip(*parts: str) -> Path:
    """A path under ../shared/data, or skip: a user's clone does not have it (CI does)."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path.relative_to(REPO.parent)} is not present (only CI and developers have ../shared/data)")
    return path


@pytest.fixture(autouse=True)
def root_log_level_restored() -> Iterator[None]:
    """``chexnet serve`` run in-process sets the root logger's level; later tests must not inherit it."""
    root = logging.getLogger()
    level = root.level
    yield
    root.setLevel(level)
