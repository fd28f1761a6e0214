"""The browser's way in: the upload page at ``/`` and the API docs at ``/docs`` and ``/redoc``, all served offline.

Everything these pages load comes from this service, never a CDN, so they work on a network without internet
access: the upload page's files from ``app/static`` (package data), Swagger UI and ReDoc from the copy of their
distributions that the ``fastapi-offline`` package ships (its ``static`` folder; versions in README, "Try it in
a browser"). Each page also carries a Content-Security-Policy that allows this origin only, so the browser refuses
an external script, style, image, font or connection should one ever slip into a page.

The pages are open like the probes, also when ``CHEXNET_API_KEY`` is set: they hold no data; the upload page sends
the key that the user types with each request to the model routes.
"""

from __future__ import annotations

import base64
import hashlib
import html
import re
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from app.guards.route_guards import guarded
from app.settings import DISCLAIMER

STATIC_DIR = Path(__file__).with_name("static")
PAGE_ASSETS_URL = "/static"
DOCS_ASSETS_URL = "/docs/assets"
DOCS_ASSETS_PACKAGE = ("fastapi_offline", "static")
DOCS_ASSET_FILES = ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js", "favicon.png")

# The upload page has no inline script or style; its script sets bar widths through the CSSOM (element.style),
# which CSP does not govern. Overlays are shown from blob: URLs of the fetched PNGs.
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
# Swagger UI and ReDoc inject <style> elements and use data: images and fonts; ReDoc runs its search in a worker
# made from a blob:. Swagger UI's one inline <script> (FastAPI's template) is allowed by its hash, no other.
_DOCS_CSP = (
    "default-src 'none'; script-src 'self'{script_hashes}; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)
# Swagger UI's online validator (validator.swagger.io) would be called for any spec not on localhost.
SWAGGER_UI_PARAMETERS = {"validatorUrl": None}
OPEN_PAGE = guarded(upload=False, api_key=False)  # see the module docstring


class DocsAssetsMissingError(RuntimeError):
    """The installed ``fastapi-offline`` no longer ships a file the docs pages load (checked at start-up)."""


def docs_csp(page: str) -> str:
    """The docs CSP for ``page`` (HTML), allowing each of its inline ``<script>`` bodies by SHA-256 (CSP Level 2)."""
    hashes = [hashlib.sha256(body.encode()).digest() for body in _INLINE_SCRIPT.findall(page)]
    return _DOCS_CSP.format(script_hashes="".join(f" 'sha256-{base64.b64encode(h).decode()}'" for h in hashes))


def _page_headers(csp: str) -> dict[str, str]:
    return {"Content-Security-Policy": csp, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


def _docs_assets() -> StaticFiles:
    assets = StaticFiles(packages=[DOCS_ASSETS_PACKAGE])
    folders = [Path(folder) for folder in assets.all_directories]
    missing = [name for name in DOCS_ASSET_FILES if not any((folder / name).is_file() for folder in folders)]
    if missing:
        raise DocsAssetsMissingError(f"fastapi-offline does not ship {', '.join(missing)}; reinstall chexnet")
    return assets


def render_upload_page() -> str:
    """``app/static/index.html`` with the disclaimer filled in (HTML-escaped), as served at ``/``."""
    template = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
    return template.replace("{{disclaimer}}", html.escape(DISCLAIMER))


def install_pages(app: FastAPI) -> None:
    """Serve ``/``, ``/docs``, ``/redoc`` and their assets on ``app`` (created with ``docs_url=redoc_url=None``).

    Raises DocsAssetsMissingError when the installed ``fastapi-offline`` lacks one of ``DOCS_ASSET_FILES``.
    """
    app.mount(PAGE_ASSETS_URL, StaticFiles(directory=STATIC_DIR), name="page-assets")
    app.mount(DOCS_ASSETS_URL, _docs_assets(), name="docs-assets")
    upload_page = render_upload_page()
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get("/", include_in_schema=False, **OPEN_PAGE)
    async def show_upload_page() -> HTMLResponse:
        return HTMLResponse(upload_page, headers=_page_headers(PAGE_CSP))

    @app.get("/docs", include_in_schema=False, **OPEN_PAGE)
    async def show_swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        page = get_swagger_ui_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{DOCS_ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{DOCS_ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{DOCS_ASSETS_URL}/favicon.png",
            swagger_ui_parameters=SWAGGER_UI_PARAMETERS,
        )
        return HTMLResponse(page.body, headers=_page_headers(docs_csp(bytes(page.body).decode())))

    @app.get("/redoc", include_in_schema=False, **OPEN_PAGE)
    async def show_redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        page = get_redoc_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{DOCS_ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{DOCS_ASSETS_URL}/favicon.png",
            with_google_fonts=False,
        )
        return HTMLResponse(page.body, headers=_page_headers(docs_csp(bytes(page.body).decode())))
