"""The bundled demo model and sample X-ray ship inside the package and describe themselves."""

from PIL import Image

from models.bundled import DEMO_CHECKPOINT, SAMPLE_XRAY
from models.checkpoint import load_checkpoint
from models.labels import PATHOLOGIES


def test_demo_checkpoint_loads_strictly_and_says_what_it_is() -> None:
    assert DEMO_CHECKPOINT.stat().st_size <= 30 * 1024 * 1024
    checkpoint = load_checkpoint(DEMO_CHECKPOINT)
    checkpoint.build_model()
    assert checkpoint.labels == PATHOLOGIES
    assert checkpoint.training_state is None
    assert "not a diagnostic model" in checkpoint.provenance["note"]
    assert checkpoint.provenance["model_name"] == "chexnet-demo"  # the name /model shows, whatever the file is called
    assert checkpoint.provenance["command"].startswith("chexnet train --images ")
    assert checkpoint.provenance["data"]["n_train"] == 400 and checkpoint.provenance["data"]["n_val"] == 100
    assert 0.5 < checkpoint.metrics["val_mean_auroc"] < 1.0
    assert set(checkpoint.metrics["val_auroc"]) == set(PATHOLOGIES)


def test_sample_xray_is_a_full_size_nih_image() -> None:
    with Image.open(SAMPLE_XRAY) as image:
        assert image.size == (1024, 1024)
        assert image.mode == "L"
