"""The pages in a real browser: headless Chromium against a real ``chexnet serve`` (tiny model, API key set).

The docs render from the service alone, the upload page scores an X-ray and draws its Grad-CAM map, shows the
API's own error messages, and works with the key typed into it. Every page may reach the loopback only: the
browser's other traffic meets a dead proxy, and each test checks the performance log for what was asked.
Without ``chromium`` and ``chromedriver`` on PATH these tests skip; ``.ci/run`` installs them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from app.settings import DISCLAIMER
from models.checkpoint import load_checkpoint, save_checkpoint
from models.labels import NIH_LABELS
from models.operating_points import ClassThreshold, OperatingPoint, OperatingPoints
from tests.conftest import FIXTURES
from tests.e2e.browser import Request, console_errors, find_browser, headless_chromium, is_local, page_requests
from tests.server_process import Server, running_server

pytestmark = pytest.mark.slow

KEY = "browser-test-key"
XRAY = FIXTURES / "00000075_000.png"  # 64 x 64 PNG
DICOM = FIXTURES / "siim-cxr-monochrome2.dcm"  # 1024 x 1024, JPEG baseline
# ReDoc's sidebar credit ("API docs by Redocly") shows a logo from Redocly's CDN, unconditionally. The page's CSP
# refuses it before any request leaves, and ReDoc then hides the image.
REDOCLY_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"
WAIT_S = 30.0


@pytest.fixture(scope="module")
def chrome() -> Iterator[Any]:
    found = find_browser()
    if found is None:
        pytest.skip("no headless browser: chromium and chromedriver are not on PATH (apt-get install chromium "
                    "chromium-driver; .ci/run installs them)")  # fmt: skip
    pytest.importorskip("selenium", reason="selenium is not installed (pip install -e '.[dev]')")
    with headless_chromium(*found) as driver:
        yield driver


@pytest.fixture(scope="module")
def server(chrome: Any, tiny_checkpoint: Path) -> Iterator[Server]:
    with running_server(tiny_checkpoint, CHEXNET_API_KEY=KEY) as running:
        yield running


class Seen:
    """What the browser requested and logged as errors since ``open``: the logs are read (and so cleared) as
    the test waits, and kept here."""

    def __init__(self, chrome: Any) -> None:
        self.chrome = chrome
        self.requests: list[Request] = []
        self.errors: list[str] = []

    def open(self, url: str) -> None:
        self.collect()
        self.requests.clear()
        self.errors.clear()
        self.chrome.get(url)

    def collect(self) -> None:
        self.requests += page_requests(self.chrome)
        self.errors += console_errors(self.chrome)

    def wait_until(self, condition: Callable[[Any], Any], what: str) -> Any:
        from selenium.webdriver.support.ui import WebDriverWait

        def check(driver: Any) -> Any:
            self.collect()
            return condition(driver)

        return WebDriverWait(self.chrome, WAIT_S, poll_frequency=0.1).until(check, f"timed out waiting for {what}")

    def outside(self) -> list[Request]:
        self.collect()
        return [request for request in self.requests if not is_local(request.url)]

    def paths(self) -> set[str]:
        return {urlsplit(request.url).path for request in self.requests if is_local(request.url)}


def by_css(chrome: Any, selector: str) -> Any:
    from selenium.webdriver.common.by import By

    return chrome.find_element(By.CSS_SELECTOR, selector)


def all_by_css(chrome: Any, selector: str) -> list[Any]:
    from selenium.webdriver.common.by import By

    return list(chrome.find_elements(By.CSS_SELECTOR, selector))


def texts(chrome: Any, selector: str) -> list[str]:
    return [str(element.text) for element in all_by_css(chrome, selector)]


def text_of(chrome: Any, selector: str) -> str:
    return str(by_css(chrome, selector).text)


def api(server: Server, path: str, file: Path | None = None, key: str | None = KEY) -> httpx.Response:
    """The API's own answer, to compare the page with."""
    headers = {"X-API-Key": key} if key else {}
    if file is None:
        return httpx.get(server.url + path, headers=headers, timeout=30)
    files = {"file": (file.name, file.read_bytes(), "application/octet-stream")}
    return httpx.post(server.url + path, files=files, headers=headers, timeout=30)


def type_key(chrome: Any, key: str) -> None:
    from selenium.webdriver.common.keys import Keys

    by_css(chrome, "#api-key").send_keys(key + Keys.TAB)  # leaving the field fires "change": the card reloads


def upload(chrome: Any, path: Path) -> None:
    chrome.execute_script("document.getElementById('file').value = '';")  # so choosing a file again is a change
    by_css(chrome, "#file").send_keys(str(path))


def overlay_shown_for(name: str) -> Callable[[Any], bool]:
    def shown(chrome: Any) -> bool:
        return bool(
            by_css(chrome, "#explanation").is_displayed()
            and text_of(chrome, "#overlay-caption").startswith(f"{name}, p = ")
            and chrome.execute_script("const i = document.getElementById('overlay'); return i.naturalWidth > 0;")
        )

    return shown


def test_swagger_ui_renders_from_the_service_alone(chrome: Any, server: Server) -> None:
    seen = Seen(chrome)
    seen.open(f"{server.url}/docs")
    block = seen.wait_until(lambda c: by_css(c, "#operations-model-predict_image_predict_post"), "the /predict block")
    assert "/predict" in block.text
    assert text_of(chrome, ".info .title").startswith("CheXNet inference service (research use only)")
    assert DISCLAIMER in text_of(chrome, ".info .description")
    assert seen.outside() == []
    assert {
        "/docs",
        "/docs/assets/swagger-ui-bundle.js",
        "/docs/assets/swagger-ui.css",
        "/openapi.json",
    } <= seen.paths()
    assert seen.errors == []


def test_redoc_renders_from_the_service_alone(chrome: Any, server: Server) -> None:
    seen = Seen(chrome)
    seen.open(f"{server.url}/redoc")
    operation = seen.wait_until(
        lambda c: by_css(c, '[id="tag/model/operation/predict_image_predict_post"]'), "the /predict operation"
    )
    assert "Predict the probability of each of the model's labels" in operation.text
    seen.wait_until(lambda c: seen.outside() and seen.errors, "ReDoc's logo request and its refusal")
    assert seen.outside() == [Request(REDOCLY_LOGO, "csp")]  # refused by the browser: it never left
    assert {"/redoc", "/docs/assets/redoc.standalone.js", "/openapi.json"} <= seen.paths()
    assert len(seen.errors) == 1
    assert REDOCLY_LOGO in seen.errors[0]
    assert "Content Security Policy" in seen.errors[0]


def test_an_upload_shows_14_sorted_bars_the_overlay_and_the_model_card(chrome: Any, server: Server) -> None:
    from selenium.webdriver.common.keys import Keys

    probabilities = api(server, "/predict", XRAY).json()["probabilities"]
    ranked = sorted(probabilities.items(), key=lambda item: -item[1])
    card = api(server, "/model").json()
    seen = Seen(chrome)
    seen.open(f"{server.url}/")
    assert text_of(chrome, "#disclaimer") == DISCLAIMER
    assert by_css(chrome, "#disclaimer").is_displayed()
    type_key(chrome, KEY)
    upload(chrome, XRAY)

    top = ranked[0][0]
    seen.wait_until(overlay_shown_for(top), f"the overlay for {top}")
    rows = all_by_css(chrome, "#bars .bar-row")
    assert [(row.get_attribute("data-pathology"), text_of(row, ".value")) for row in rows] == [
        (name, f"{p:.3f}") for name, p in ranked
    ]
    widths = [float(chrome.execute_script("return arguments[0].style.width", by_css(r, ".fill"))[:-1]) for r in rows]
    assert widths == pytest.approx([100 * p for _, p in ranked], abs=0.005)
    assert [by_css(row, "button").get_attribute("aria-pressed") for row in rows] == ["true"] + ["false"] * 13
    assert text_of(chrome, "#overlay-caption").startswith(f"{top}, p = {probabilities[top]:.3f}")
    assert chrome.execute_script("return document.getElementById('overlay').naturalWidth") == 64  # the upload's size
    assert text_of(chrome, "#status") == f"Grad-CAM map shown for {top}."
    assert text_of(chrome, "#input-info") == "Read as PNG, 64 × 64 px."
    note = api(server, "/predict", XRAY).json()["note"]  # this model has no operating points: the service says so
    assert note and text_of(chrome, "#point-info") == note
    assert all_by_css(chrome, "#bars .mark") == []

    last = ranked[-1][0]
    by_css(rows[-1], "button").send_keys(Keys.ENTER)  # keyboard operable
    seen.wait_until(overlay_shown_for(last), f"the overlay for {last}")
    assert by_css(rows[-1], "button").get_attribute("aria-pressed") == "true"
    assert by_css(rows[0], "button").get_attribute("aria-pressed") == "false"

    seen.wait_until(lambda c: all_by_css(c, "#model-card dd"), "the model card")
    terms = dict(zip(texts(chrome, "#model-card dt"), texts(chrome, "#model-card dd"), strict=True))
    assert terms["Name"] == f"{card['name']} {card['version']}"
    assert terms["Training data"] == "image folder: synthetic"
    assert terms["Validation mean AUROC"] == "0.500"
    assert terms["Checkpoint SHA-256"] == card["sha256"]
    assert chrome.execute_script("return [localStorage.length, sessionStorage.length, document.cookie]") == [0, 0, ""]
    assert seen.outside() == []
    # the one failed load: the model card asked for before the key was typed
    assert len(seen.errors) == 1
    assert seen.errors[0].startswith(f"{server.url}/model - ")
    assert "status of 401" in seen.errors[0]


def test_a_file_that_is_not_an_xray_shows_the_apis_own_message(chrome: Any, server: Server, tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not an X-ray\n")
    answer = api(server, "/predict", notes).json()
    assert answer["code"] == "unsupported_format"
    seen = Seen(chrome)
    seen.open(f"{server.url}/")
    type_key(chrome, KEY)
    upload(chrome, notes)
    seen.wait_until(lambda c: text_of(c, "#error"), "the error message")
    assert text_of(chrome, "#error") == answer["detail"]
    assert not by_css(chrome, "#scores").is_displayed()
    assert not by_css(chrome, "#explanation").is_displayed()
    assert seen.outside() == []


def test_the_key_field_is_what_unlocks_the_model_routes(chrome: Any, server: Server) -> None:
    refused = api(server, "/predict", XRAY, key=None)
    assert refused.status_code == 401
    message = refused.json()["detail"]
    seen = Seen(chrome)
    seen.open(f"{server.url}/")
    seen.wait_until(lambda c: text_of(c, "#model-error") == message, "the model card's 401 message")
    upload(chrome, XRAY)
    seen.wait_until(lambda c: text_of(c, "#error") == message, "the upload's 401 message")
    assert not by_css(chrome, "#scores").is_displayed()

    type_key(chrome, KEY)
    seen.wait_until(lambda c: all_by_css(c, "#model-card dd"), "the model card")
    assert text_of(chrome, "#model-error") == ""
    upload(chrome, DICOM)
    top = max(api(server, "/predict", DICOM).json()["probabilities"].items(), key=lambda item: item[1])[0]
    seen.wait_until(overlay_shown_for(top), f"the DICOM's overlay for {top}")
    assert text_of(chrome, "#input-info") == "Read as DICOM, 1024 × 1024 px."
    assert len(all_by_css(chrome, "#bars .bar-row")) == 14
    assert text_of(chrome, "#error") == ""

    chrome.refresh()
    assert by_css(chrome, "#api-key").get_attribute("value") == ""  # the key was in the page's memory only
    assert chrome.execute_script("return [localStorage.length, sessionStorage.length, document.cookie]") == [0, 0, ""]
    assert seen.outside() == []


@pytest.fixture(scope="module")
def checkpoint_with_points(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model with one operating point: thresholds spread over [0.2, 0.8], one class unreliable."""
    checkpoint = load_checkpoint(tiny_checkpoint)
    thresholds = {name: ClassThreshold(0.2 + 0.6 * i / 13) for i, name in enumerate(NIH_LABELS)}
    checkpoint.operating_points = OperatingPoints(
        points={"youden": OperatingPoint("maximises Youden's J", thresholds)},
        default="youden",
        source={"data": "synthetic squares"},
        unreliable=("Hernia",),
    )
    return save_checkpoint(checkpoint, tmp_path_factory.mktemp("points") / "points.pt")


def test_operating_point_thresholds_are_ticks_on_the_bars(chrome: Any, checkpoint_with_points: Path) -> None:
    with running_server(checkpoint_with_points) as server:
        body = api(server, "/predict", XRAY, key=None).json()
        seen = Seen(chrome)
        seen.open(f"{server.url}/")
        upload(chrome, XRAY)
        seen.wait_until(lambda c: len(all_by_css(c, "#bars .mark")) == 14, "14 threshold ticks")
        for row in all_by_css(chrome, "#bars .bar-row"):
            finding = body["findings"][row.get_attribute("data-pathology")]
            left = chrome.execute_script("return arguments[0].style.left", by_css(row, ".mark"))
            assert float(left[:-1]) == pytest.approx(100 * finding["threshold"], abs=0.005)
            assert ("above" in (row.get_attribute("class") or "").split()) == finding["above"]
            side = "at or above" if finding["above"] else "below"
            expected = f"{side} the threshold {finding['threshold']:.3f}"
            if finding["unreliable"]:
                expected += " (unreliable: fewer than 10 positives where it was chosen)"
            assert text_of(row, ".decision") == expected
        info = text_of(chrome, "#point-info")
        assert info.startswith('Thresholds: operating point "youden" (maximises Youden\'s J, chosen on ')


@pytest.fixture(scope="module")
def five_label_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random 5-label model (CheXpert's competition tasks) with two operating points, 0.3 and 0.7 everywhere."""
    import torch

    from models.checkpoint import Checkpoint
    from models.labels import CHEXPERT_COMPETITION
    from models.network import build_network
    from tests.conftest import TINY_SPEC

    torch.manual_seed(5)
    model = build_network("none", len(CHEXPERT_COMPETITION))
    with torch.no_grad():  # probabilities spread over (0.1, 0.9)
        model.classifier.bias.copy_(torch.linspace(-2, 2, len(CHEXPERT_COMPETITION)))
    points = OperatingPoints(
        points={
            name: OperatingPoint(f"all at {value}", {label: ClassThreshold(value) for label in CHEXPERT_COMPETITION})
            for name, value in (("low", 0.3), ("high", 0.7))
        },
        default="low",
        source={"data": "synthetic"},
    )
    checkpoint = Checkpoint(model.state_dict(), TINY_SPEC, CHEXPERT_COMPETITION, operating_points=points)
    return save_checkpoint(checkpoint, tmp_path_factory.mktemp("five") / "five.pt")


def test_a_5_label_model_gets_5_bars_a_point_choice_and_an_all_labels_view(
    chrome: Any, five_label_checkpoint: Path
) -> None:
    from selenium.webdriver.support.ui import Select

    with running_server(five_label_checkpoint) as server:
        body = api(server, "/predict", XRAY, key=None).json()
        seen = Seen(chrome)
        seen.open(f"{server.url}/")
        seen.wait_until(lambda c: by_css(c, "#point-field").is_displayed(), "the operating-point choice")
        choice = Select(by_css(chrome, "#operating-point"))
        assert [o.get_attribute("value") for o in choice.options] == ["low", "high"]
        assert choice.first_selected_option.get_attribute("value") == "low"
        upload(chrome, XRAY)
        seen.wait_until(lambda c: len(all_by_css(c, "#bars .mark")) == 5, "5 threshold ticks")
        rows = all_by_css(chrome, "#bars .bar-row")
        assert sorted(row.get_attribute("data-pathology") for row in rows) == sorted(body["probabilities"])
        assert text_of(chrome, "#labels-info").startswith("The model's 5 labels, most probable first.")
        assert {text_of(row, ".decision") for row in rows} <= {
            "at or above the threshold 0.300",
            "below the threshold 0.300",
        }
        choice.select_by_value("high")
        seen.wait_until(lambda c: "threshold 0.700" in text_of(c, "#bars .bar-row .decision"), "the high point")
        assert text_of(chrome, "#point-info").startswith('Thresholds: operating point "high" (all at 0.7')
        by_css(chrome, "#show-all").click()
        seen.wait_until(lambda c: text_of(c, "#overlay-caption").startswith("All 5 labels"), "the panel sheet")
        script = "const o = document.getElementById('overlay'); return [o.naturalWidth, o.naturalHeight]"
        sheet = [3 * 320, 2 * (320 + 18)]  # 3 columns, 2 rows of a square upload's panels
        seen.wait_until(lambda c: c.execute_script(script) == sheet, "a 3 x 2 panel sheet")
        assert seen.outside() == []
        assert seen.errors == []
