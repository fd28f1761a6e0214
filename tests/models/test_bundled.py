"""The bundled demo model and sample X-ray ship inside the package and describe themselves."""

from PIL import Image

from models.bundled import DEMO_CHECKPOINT, SAMPLE_XRAY
from models.checkpoint import load_checkpoint
from models.labels import NIH_LABELS


def test_demo_checkpoint_loads_strictly_and_says_what_it_is() -> None:
    assert DEMO_CHECKPOINT.stat().st_size <= 30 * 1024 * 1024
    checkpoint = load_checkpoint(DEMO_CHECKPOINT)
    checkpoint.build_model()
    assert checkpoint.labels == NIH_LABELS
    assert checkpoint.training_state is None
    assert "not a diagnostic model" in checkpoint.provenance["note"]
    assert checkpoint.provenance["model_name"] == "chexnet-demo"  # the name /model shows, whatever the file is called
    assert checkpoint.provenance["command"].startswith("chexnet train --images ")
    assert checkpoint.provenance["data"]["n_train"] == 400 and checkpoint.provenance["data"]["n_val"] == 100
    assert 0.5 < checkpoint.metrics["val_mean_auroc"] < 1.0
    assert set(checkpoint.metrics["val_auroc"]) == set(NIH_LABELS)


def test_demo_checkpoint_carries_operating_points_from_its_own_validation_split() -> None:
    checkpoint = load_checkpoint(DEMO_CHECKPOINT)
    points = checkpoint.operating_points
    assert points is not None
    assert list(points.points) == ["youden", "spec90"] and points.default == "youden" and points.temperature is None
    assert points.source["data"].startswith("NIH ChestX-ray14 sample, validation split of the demo run: 100 images")
    assert points.source["images"] == checkpoint.provenance["data"]["n_val"] == 100
    assert points.source["command"].startswith("chexnet calibrate --checkpoint runs/demo-a/bundled.pt ")
    # the classes with fewer than 10 of the 100 validation images positive
    assert points.unreliable == ("Cardiomegaly", "Mass", "Pneumonia", "Pneumothorax", "Edema", "Emphysema",
                                 "Fibrosis", "Hernia")  # fmt: skip
    for entry in points.points["spec90"].thresholds.values():
        assert entry.specificity is not None and entry.specificity >= 0.9


def test_sample_xray_is_a_full_size_nih_image() -> None:
    with Image.open(SAMPLE_XRAY) as image:
        assert image.size == (1024, 1024)
        assert image.mode == "L"
