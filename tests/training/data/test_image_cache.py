"""--image-cache: the same tensors as without it, one decode per file and pipeline, damaged entries rebuilt."""

from __future__ import annotations

import logging
import shutil
import struct
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from models.imaging.decoder import decode_image
from models.preprocessing import PreprocessSpec, eval_tensor, resized_gray, train_tensor
from tests.conftest import FIXTURES
from training.data import image_cache
from training.data.dataset import DecodeFailure, XrayDataset, collate_or_failure
from training.data.image_cache import ResizedImageCache

SPEC = PreprocessSpec(image_size=32, resize=36)


@pytest.fixture
def images(tmp_path: Path) -> list[Path]:
    """Gray, RGBA, 16-bit, non-square in both directions, and a DICOM: every decoder path once."""
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (64, 107), dtype=np.uint8), "L").save(folder / "wide.png")
    Image.fromarray(rng.integers(0, 256, (150, 70), dtype=np.uint8), "L").save(folder / "tall.png")
    Image.fromarray(rng.integers(0, 65536, (64, 64), dtype=np.uint16)).save(folder / "deep.png")
    paths = [FIXTURES / "00000075_000.png", FIXTURES / "00002578_000_rgba.png", FIXTURES / "cxr-monochrome1.dcm"]
    return [*paths, folder / "wide.png", folder / "tall.png", folder / "deep.png"]


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """How many times each file name went through the decoder, cached or not."""
    counts: Counter[str] = Counter()

    def counting(source: Any, *args: Any) -> Any:
        counts["bytes" if isinstance(source, bytes) else Path(source).name] += 1
        return decode_image(source, *args)

    monkeypatch.setattr(image_cache, "decode_image", counting)
    return counts


def items(dataset: XrayDataset, epochs: range) -> list[torch.Tensor]:
    out = []
    for epoch in epochs:
        dataset.set_epoch(epoch)
        out += [dataset[i][0] for i in range(len(dataset))]  # type: ignore[index]
    return out


def entries(root: Path) -> list[Path]:
    return sorted(root.glob("*/*/*.f32"))


@pytest.mark.parametrize("train", [True, False])
def test_cached_items_equal_uncached_ones_cold_and_warm(tmp_path: Path, images: list[Path], train: bool) -> None:
    targets = np.zeros((len(images), 14))
    plain = XrayDataset(images, targets, SPEC, train=train, seed=7)
    cached = XrayDataset(images, targets, SPEC, train=train, seed=7, cache=ResizedImageCache(tmp_path / "c", SPEC))
    expected = items(plain, range(3))
    got = items(cached, range(3))  # epoch 0 decodes and stores, epochs 1 and 2 read the entries
    assert len(got) == len(expected) == 3 * len(images)
    assert all(torch.equal(a, b) for a, b in zip(got, expected, strict=True))
    assert len(entries(tmp_path / "c")) == len(images)


def test_train_items_equal_the_transform_of_the_full_resolution_image(tmp_path: Path, images: list[Path]) -> None:
    cache = ResizedImageCache(tmp_path / "c", SPEC)
    for path in images:
        gray = decode_image(path).gray
        for _ in range(2):  # cold, then warm
            assert torch.equal(eval_tensor(SPEC, cache.resized_gray(path)), eval_tensor(SPEC, gray))
            for seed in range(3):
                expected = train_tensor(SPEC, gray, torch.Generator().manual_seed(seed))
                assert torch.equal(
                    train_tensor(SPEC, cache.resized_gray(path), torch.Generator().manual_seed(seed)), expected
                )


def test_each_file_is_decoded_once(tmp_path: Path, images: list[Path], decodes: Counter[str]) -> None:
    dataset = XrayDataset(
        images, np.zeros((len(images), 14)), SPEC, train=True, cache=ResizedImageCache(tmp_path, SPEC)
    )
    items(dataset, range(1))
    assert decodes == {"bytes": len(images)}
    items(dataset, range(1, 4))
    assert decodes == {"bytes": len(images)}
    val = XrayDataset(images, np.zeros((len(images), 14)), SPEC, train=False, cache=ResizedImageCache(tmp_path, SPEC))
    items(val, range(1))  # validation reads the same entries: eval resizes exactly as train does
    assert decodes == {"bytes": len(images)}


def test_a_renamed_copy_hits_and_an_edited_file_is_decoded_again(
    tmp_path: Path, images: list[Path], decodes: Counter[str]
) -> None:
    cache = ResizedImageCache(tmp_path / "c", SPEC)
    path = tmp_path / "x.png"
    shutil.copyfile(images[0], path)
    before = cache.resized_gray(path)
    shutil.copyfile(images[0], tmp_path / "renamed.png")
    assert np.array_equal(cache.resized_gray(tmp_path / "renamed.png"), before)
    assert decodes["bytes"] == 1
    Image.fromarray(np.full((64, 64), 200, dtype=np.uint8), "L").save(path)
    after = cache.resized_gray(path)
    assert decodes["bytes"] == 2
    assert np.array_equal(after, resized_gray(SPEC, decode_image(path).gray))
    assert not np.array_equal(after, before)
    assert len(entries(tmp_path / "c")) == 2


def test_another_resize_uses_other_entries_and_another_crop_size_the_same(
    tmp_path: Path, images: list[Path], decodes: Counter[str]
) -> None:
    first = ResizedImageCache(tmp_path, SPEC)
    first.resized_gray(images[0])
    for spec in (
        PreprocessSpec(image_size=32, resize=40),
        PreprocessSpec(image_size=32, resize=36, interpolation="bicubic"),
    ):
        other = ResizedImageCache(tmp_path, spec)
        assert other.folder != first.folder
        assert np.array_equal(other.resized_gray(images[0]), resized_gray(spec, decode_image(images[0]).gray))
    assert decodes["bytes"] == 3
    smaller_crop = ResizedImageCache(tmp_path, PreprocessSpec(image_size=24, resize=36))
    assert smaller_crop.folder == first.folder
    smaller_crop.resized_gray(images[0])
    assert decodes["bytes"] == 3
    assert sorted(p.name for p in tmp_path.glob("*/pipeline.json")) == ["pipeline.json"] * 3


def test_an_upgraded_library_makes_a_new_pipeline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = ResizedImageCache(tmp_path, SPEC).folder
    monkeypatch.setattr(image_cache.metadata, "version", lambda name: "99.0")
    assert ResizedImageCache(tmp_path, SPEC).folder != before


def _truncate(data: bytes) -> bytes:
    return data[:-1]


def _flip_pixel_bit(data: bytes) -> bytes:
    return data[:-5] + bytes([data[-5] ^ 1]) + data[-4:]


def _flip_size(data: bytes) -> bytes:
    return data[:16] + bytes([data[16] ^ 1]) + data[17:]


def _huge_size(data: bytes) -> bytes:  # consistent sizes whose pixels would not fit in memory
    sizes = struct.pack("<IIII", 1, 2**26, 36, 36 * 2**26)  # original (1, 2^26) -> resized (36, 36 * 2^26)
    return data[:12] + sizes + data[28:]


@pytest.mark.parametrize(
    "damage",
    [_truncate, _flip_pixel_bit, _flip_size, _huge_size, lambda d: b"", lambda d: d[:10], lambda d: d + b"\0"],
    ids=["truncated", "pixel-bit", "size-bit", "huge-size", "empty", "short-header", "extra-byte"],
)
def test_a_damaged_entry_is_rebuilt(
    tmp_path: Path,
    images: list[Path],
    decodes: Counter[str],
    damage: Callable[[bytes], bytes],
    caplog: pytest.LogCaptureFixture,
) -> None:
    cache = ResizedImageCache(tmp_path, SPEC)
    expected = cache.resized_gray(images[0])
    (entry,) = entries(tmp_path)
    entry.write_bytes(damage(entry.read_bytes()))
    with caplog.at_level(logging.WARNING, logger="training.data.image_cache"):
        assert np.array_equal(cache.resized_gray(images[0]), expected)
    assert decodes["bytes"] == 2
    assert "failed its check" in caplog.text and images[0].name not in caplog.text
    assert np.array_equal(cache.resized_gray(images[0]), expected)  # the rebuilt entry is sound
    assert decodes["bytes"] == 2


def test_an_entry_of_another_image_is_not_trusted(tmp_path: Path, images: list[Path], decodes: Counter[str]) -> None:
    cache = ResizedImageCache(tmp_path, SPEC)
    cache.resized_gray(images[3])
    cache.resized_gray(images[4])
    first, second = entries(tmp_path)
    shutil.copyfile(second, first)
    for path in images[3:5]:
        assert np.array_equal(cache.resized_gray(path), resized_gray(SPEC, decode_image(path).gray))
    assert decodes["bytes"] == 3


def test_unreadable_files_are_failures_and_never_stored(tmp_path: Path) -> None:
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n broken")
    cache = ResizedImageCache(tmp_path / "c", SPEC)
    dataset = XrayDataset([bad, tmp_path / "missing.png"], np.zeros((2, 14)), SPEC, train=True, cache=cache)
    first, second = dataset[0], dataset[1]
    assert isinstance(first, DecodeFailure) and first.code == "invalid_image"
    assert isinstance(second, DecodeFailure) and second.code == "unreadable_file"
    assert entries(tmp_path / "c") == []


def test_a_cache_that_cannot_be_written_warns_once_and_training_goes_on(
    tmp_path: Path, images: list[Path], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    cache = ResizedImageCache(tmp_path, SPEC)

    def full_disk(path: Path, data: bytes, durable: bool = True) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(image_cache, "write_bytes_atomically", full_disk)
    with caplog.at_level(logging.WARNING, logger="training.data.image_cache"):
        for path in images[:3]:
            assert np.array_equal(cache.resized_gray(path), resized_gray(SPEC, decode_image(path).gray))
    assert [r.getMessage() for r in caplog.records] == [
        "image cache: cannot store entries (No space left on device); continuing without them"
    ]
    assert entries(tmp_path) == []


def test_an_interrupted_write_leaves_no_entry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(src: Any, dst: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(image_cache.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        image_cache.write_bytes_atomically(tmp_path / "entry.f32", b"data", durable=False)
    assert list(tmp_path.iterdir()) == []


def test_workers_sharing_a_cold_cache_give_the_uncached_batches(tmp_path: Path, images: list[Path]) -> None:
    paths = images[:2] * 8  # the same files in every batch: workers race to store the same entries
    targets = np.zeros((len(paths), 14))
    cache = ResizedImageCache(tmp_path / "c", SPEC)

    def batches(dataset: XrayDataset, workers: int) -> list[torch.Tensor]:
        loader = DataLoader(dataset, batch_size=4, num_workers=workers, collate_fn=collate_or_failure)
        return [batch[0] for batch in loader]

    expected = batches(XrayDataset(paths, targets, SPEC, train=True, seed=1), 0)
    got = batches(XrayDataset(paths, targets, SPEC, train=True, seed=1, cache=cache), 2)
    assert all(torch.equal(a, b) for a, b in zip(got, expected, strict=True))
    assert len(entries(tmp_path / "c")) == 2
    assert list((tmp_path / "c").rglob("*.tmp")) == []
