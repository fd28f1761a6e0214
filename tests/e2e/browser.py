"""Headless Chromium for the browser tests and the README screenshots: the system's browser, no downloads.

The browser is Debian's ``chromium`` with its ``chromedriver`` (``apt-get install chromium chromium-driver``),
driven through selenium with both paths given, so Selenium Manager never fetches a driver or a browser. Every
request to a host other than the loopback goes to a dead proxy and fails, and the performance log records what
the page asked for, so a test can assert that nothing left the machine.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

BROWSER_NAMES = ("chromium", "chromium-browser", "google-chrome")
DRIVER_NAME = "chromedriver"
LOCAL_SCHEMES = frozenset({"data", "blob", "about"})
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "[::1]", "::1"})


def find_browser() -> tuple[str, str] | None:
    """(browser, chromedriver) executables on PATH, or None when either is missing."""
    browser = next((path for name in BROWSER_NAMES if (path := shutil.which(name))), None)
    driver = shutil.which(DRIVER_NAME)
    return (browser, driver) if browser and driver else None


@contextmanager
def headless_chromium(browser: str, driver: str, width: int = 1280, height: int = 1000) -> Iterator[Any]:
    """A selenium Chrome driver on the system browser, loopback only, logging network and console."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in (
        "--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", f"--window-size={width},{height}",
        "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-default-apps", "--disable-extensions", "--force-device-scale-factor=1",
        # Loopback is never proxied (Chromium's implicit bypass rule); everything else meets a closed port.
        "--proxy-server=http://127.0.0.1:9",
    ):  # fmt: skip
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    chrome = webdriver.Chrome(service=Service(executable_path=driver), options=options)
    try:
        yield chrome
    finally:
        chrome.quit()


@dataclass(frozen=True)
class Request:
    """One request a page made: its URL, and why the browser refused to send it (``csp``...), if it did."""

    url: str
    blocked: str | None


def page_requests(chrome: Any) -> list[Request]:
    """The requests made since the last call, from Chromium's performance log (reading it clears it)."""
    urls: dict[str, str] = {}
    blocked: dict[str, str] = {}
    for entry in chrome.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        params = message.get("params", {})
        if message["method"] == "Network.requestWillBeSent":
            urls.setdefault(params["requestId"], params["request"]["url"])
        elif message["method"] == "Network.loadingFailed" and params.get("blockedReason"):
            blocked[params["requestId"]] = params["blockedReason"]
    return [Request(url, blocked.get(request_id)) for request_id, url in urls.items()]


def is_local(url: str) -> bool:
    """True for a loopback http(s) URL, or a data:, blob: or about: URL, which never reach a network."""
    parts = urlsplit(url)
    if parts.scheme in LOCAL_SCHEMES:
        return True
    return parts.scheme in ("http", "https") and parts.hostname in LOOPBACK_HOSTS


def console_errors(chrome: Any) -> list[str]:
    """The console's SEVERE messages since the last call (a refused script, a CSP violation, a failed load)."""
    return [entry["message"] for entry in chrome.get_log("browser") if entry["level"] == "SEVERE"]
