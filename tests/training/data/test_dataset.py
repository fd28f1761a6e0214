import numpy as np
import torch
from PIL import Image

from models.preprocessing import PreprocessSpec, eval_tensor, image_to_gray
from training.data.dataset import EpochSampler, XrayDataset

SPEC = PreprocessSpec(image_size=32, resize=36)


def test_eval_items_use_the_shared_preprocessing(tmp_path) -> None:  # type: ignore[no-untyped-def]
    pixels = np.random.default_rng(0).integers(0, 256, (70, 80), dtype=np.uint8)
    Image.fromarray(pixels, "L").save(tmp_path / "a.png")
    dataset = XrayDataset([tmp_path / "a.png"], np.ones((1, 14)), SPEC, train=False)
    tensor, target, index = dataset[0]
    assert torch.equal(tensor, eval_tensor(SPEC, image_to_gray(Image.fromarray(pixels, "L"))))
    assert target.shape == (14,) and target.dtype == torch.float32 and index == 0


def test_train_augmentation_depends_only_on_seed_epoch_and_index(tmp_path) -> None:  # type: ignore[no-untyped-def]
    pixels = np.random.default_rng(1).integers(0, 256, (64, 64), dtype=np.uint8)
    Image.fromarray(pixels, "L").save(tmp_path / "a.png")
    dataset = XrayDataset([tmp_path / "a.png"], np.zeros((1, 14)), SPEC, train=True, seed=3)
    first = dataset[0][0]
    assert torch.equal(first, dataset[0][0])
    views = set()
    for epoch in range(8):
        dataset.set_epoch(epoch)
        views.add(dataset[0][0].numpy().tobytes())
    assert len(views) > 1


def test_sampler_shards_cover_everything_once_in_validation() -> None:
    shards = [list(EpochSampler(11, shuffle=False, rank=r, world=3)) for r in range(3)]
    assert sorted(i for shard in shards for i in shard) == list(range(11))
    assert [len(EpochSampler(11, shuffle=False, rank=r, world=3)) for r in range(3)] == [4, 4, 3]


def test_shuffled_shards_are_equal_sized_and_disjoint_and_change_per_epoch() -> None:
    samplers = [EpochSampler(11, shuffle=True, seed=0, rank=r, world=2) for r in range(2)]
    first = [list(s) for s in samplers]
    assert [len(s) for s in first] == [5, 5]
    assert not set(first[0]) & set(first[1])
    for s in samplers:
        s.set_epoch(1)
    assert [list(s) for s in samplers] != first
    assert list(EpochSampler(11, shuffle=True, seed=0)) == list(EpochSampler(11, shuffle=True, seed=0))
