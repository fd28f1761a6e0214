"""The pages over HTTP (fake engine): served with their assets by the service, open, disclaimed, under a strict CSP.

The browser side (the pages rendering, the upload working) is tests/e2e/test_browser.py.
"""

from __future__ import annotations

import base64
import hashlib
import html
import re

import pytest

import app.pages
from app.pages import PAGE_CSP, DocsAssetsMissingError, docs_csp
from app.settings import DISCLAIMER
from tests.app.fakes import FakePredictor, client_for

_URL_ATTRIBUTE = re.compile(r"""(?:src|href)=["']([^"']+)["']""")
_ALLOWED_SOURCES = {"'self'", "'none'", "'unsafe-inline'", "data:", "blob:"}


def referenced_urls(page: str) -> list[str]:
    return _URL_ATTRIBUTE.findall(page)


def csp_directives(header: str) -> dict[str, list[str]]:
    parts = [directive.split() for directive in header.split(";") if directive.strip()]
    return {name: sources for name, *sources in parts}


@pytest.mark.parametrize(
    ("path", "assets"),
    [
        ("/", ["docs/assets/favicon.png", "static/page.css", "static/page.js", "docs", "redoc", "openapi.json"]),
        ("/docs", ["/docs/assets/swagger-ui.css", "/docs/assets/favicon.png", "/docs/assets/swagger-ui-bundle.js"]),
        ("/redoc", ["/docs/assets/favicon.png", "/docs/assets/redoc.standalone.js"]),
    ],
)
def test_pages_load_only_what_this_service_serves(path: str, assets: list[str]) -> None:
    with client_for(FakePredictor()) as client:
        page = client.get(path)
        assert page.status_code == 200
        assert page.headers["content-type"] == "text/html; charset=utf-8"
        assert referenced_urls(page.text) == assets
        for asset in assets:
            response = client.get(asset if asset.startswith("/") else f"/{asset}")
            assert response.status_code == 200, asset
            assert response.headers["x-disclaimer"] == DISCLAIMER
    assert page.headers["x-disclaimer"] == DISCLAIMER
    assert page.headers["x-content-type-options"] == "nosniff"


def test_swagger_ui_never_calls_the_online_validator() -> None:
    with client_for(FakePredictor()) as client:
        page = client.get("/docs").text
    assert '"validatorUrl": null' in page
    assert "url: '/openapi.json'" in page


def test_the_upload_page_has_the_disclaimer_and_a_csp_that_allows_this_origin_only() -> None:
    with client_for(FakePredictor()) as client:
        page = client.get("/")
    assert page.headers["content-security-policy"] == PAGE_CSP
    directives = csp_directives(PAGE_CSP)
    assert directives["default-src"] == ["'none'"]
    assert directives["script-src"] == ["'self'"]
    assert directives["connect-src"] == ["'self'"]
    assert directives["img-src"] == ["'self'", "blob:"]
    assert f'<p class="disclaimer" id="disclaimer" role="note"><strong>{html.escape(DISCLAIMER)}</strong></p>' in (
        page.text
    )
    assert "{{" not in page.text
    assert "<script>" not in page.text and "style=" not in page.text  # nothing inline: the CSP would refuse it


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_docs_csp_names_no_other_origin_and_allows_only_the_pages_own_inline_script(path: str) -> None:
    with client_for(FakePredictor()) as client:
        page = client.get(path)
    directives = csp_directives(page.headers["content-security-policy"])
    inline = re.findall(r"<script>(.*?)</script>", page.text, re.DOTALL)
    hashes = [f"'sha256-{base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()}'" for body in inline]
    assert len(inline) == (1 if path == "/docs" else 0)
    assert directives["script-src"] == ["'self'", *hashes]
    assert directives["default-src"] == ["'none'"]
    assert directives["connect-src"] == ["'self'"]
    for name, sources in directives.items():
        if name != "script-src":
            assert set(sources) <= _ALLOWED_SOURCES, name


def test_docs_csp_hashes_each_inline_script() -> None:
    # SHA-256 of "a", base64: the CSP Level 2 hash-source form
    one = csp_directives(docs_csp("<script>a</script>"))
    assert one["script-src"] == ["'self'", "'sha256-ypeBEsobvcr6wjGzmiPcTaeG7/gUfE5yuYB3ha/uSLs='"]
    two = csp_directives(docs_csp("<script>a</script><p>x</p><script>\na\n</script><script src='/x.js'></script>"))
    assert len(two["script-src"]) == 3
    assert csp_directives(docs_csp("<p>none</p>"))["script-src"] == ["'self'"]


def test_pages_and_assets_stay_open_when_an_api_key_is_set() -> None:
    with client_for(FakePredictor(), api_key="s3cret-key") as client:
        for path in ("/", "/docs", "/redoc", "/static/page.js", "/static/page.css", "/docs/assets/redoc.standalone.js"):
            assert client.get(path).status_code == 200, path
        assert client.get("/model").status_code == 401


def test_pages_are_not_operations_of_the_api() -> None:
    with client_for(FakePredictor()) as client:
        paths = set(client.get("/openapi.json").json()["paths"])
        assert client.get("/static/nothing.js").json() == {"detail": "Not Found", "code": "not_found"}
    assert paths == {"/predict", "/gradcam", "/model", "/healthz", "/readyz", "/metrics"}


def test_a_missing_docs_asset_stops_the_app_from_being_built(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(app.pages, "DOCS_ASSET_FILES", (*app.pages.DOCS_ASSET_FILES, "swagger-ui-99.js"))
    with pytest.raises(DocsAssetsMissingError, match=r"does not ship swagger-ui-99\.js"), client_for(FakePredictor()):
        pass
