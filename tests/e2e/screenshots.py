"""The README's screenshots: the upload page after scoring the bundled sample X-ray, and /docs, in headless Chromium.

    make screenshots          # .venv/bin/python -m tests.e2e.screenshots --out docs

It starts ``chexnet serve`` with the bundled demo model on a free loopback port, drives the page as a person
would (choose the file, wait for the bars and the overlay), and writes ``upload-page.png`` and ``docs-page.png``,
reduced to 256 colours so that they stay small in the repository.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from PIL import Image

from models.bundled import SAMPLE_XRAY
from tests.e2e.browser import find_browser, headless_chromium
from tests.server_process import running_server

WAIT_S = 120.0


def _wait_for(chrome: Any, script: str) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(chrome, WAIT_S, poll_frequency=0.2).until(lambda driver: driver.execute_script(script))


def _save(chrome: Any, path: Path, width: int) -> None:
    """A screenshot of the whole page (the window grown to its height), as a 256-colour PNG."""
    chrome.set_window_size(width, 900)
    frame = int(chrome.execute_script("return window.outerHeight - window.innerHeight"))
    height = int(chrome.execute_script("return document.documentElement.scrollHeight"))
    chrome.set_window_size(width, height + frame)
    chrome.save_screenshot(str(path))
    with Image.open(path) as shot:
        reduced = shot.convert("RGB").quantize(colors=256)
    reduced.save(path, optimize=True)


def take_screenshots(out: Path, width: int) -> list[Path]:
    """Write the two screenshots into ``out``; returns their paths."""
    found = find_browser()
    if found is None:
        raise SystemExit("screenshots: chromium and chromedriver are needed (apt-get install chromium chromium-driver)")
    out.mkdir(parents=True, exist_ok=True)
    page, docs = out / "upload-page.png", out / "docs-page.png"
    with running_server(None) as server, headless_chromium(*found, width=width, height=900) as chrome:
        chrome.get(f"{server.url}/")
        chrome.find_element("id", "file").send_keys(str(SAMPLE_XRAY))
        _wait_for(chrome, "const i = document.getElementById('overlay'); return i.naturalWidth > 0;")
        _wait_for(chrome, "return document.querySelectorAll('#model-card dd').length > 0;")
        _save(chrome, page, width)
        chrome.get(f"{server.url}/docs")
        _wait_for(chrome, "return document.getElementById('operations-model-predict_image_predict_post') !== null;")
        _save(chrome, docs, width)
    return [page, docs]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=Path("docs"), help="folder for the PNGs (default: docs)")
    parser.add_argument("--width", type=int, default=1100, help="window width in CSS pixels (default: 1100)")
    args = parser.parse_args(argv)
    for path in take_screenshots(args.out, args.width):
        print(f"wrote {path} ({path.stat().st_size // 1024} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
