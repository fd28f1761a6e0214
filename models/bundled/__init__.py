"""Files shipped inside the package: the demo model and a sample X-ray (NIH ChestX-ray14)."""

from pathlib import Path

BUNDLED_DIR = Path(__file__).resolve().parent
DEMO_CHECKPOINT = BUNDLED_DIR / "chexnet-demo.pt"
SAMPLE_XRAY = BUNDLED_DIR / "sample-xray.png"
