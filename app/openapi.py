"""The OpenAPI document, made exact for the app it describes.

FastAPI's document is the starting point; here, from the routes' guard declarations (``app.guards.route_guards``),
the settings and the loaded model:

- the API-key scheme appears only when ``CHEXNET_API_KEY`` is set, and then on the guarded operations only;
- ``pathology`` is an enum of the model's labels plus ``all`` (case, space and underscore variants are still
  accepted at run time: the document names the canonical spellings); ``operating_point`` an enum of the model's
  points when it has any;
- the upload's ``file`` part has ``minLength: 1`` (an empty file is refused);
- the examples of ``/predict``'s probabilities and ``/model``'s labels name the served model's labels;
- each operation lists every status it can answer (``STATUSES``), with the error body;
- the ``servers`` entry and the ``curl`` example are the address the document was requested from;
- a schema written inline with pydantic's own ``$defs`` (a route's ``responses=``) has them moved to
  ``components/schemas``: ``#/$defs/X`` is not a reference OpenAPI 3.1 tools resolve from an operation (ReDoc
  refuses the whole document), and every ``$ref`` in the result points inside it.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from app.guards.route_guards import GUARDS_KEY, guarded
from app.schemas import ErrorBody

SERVER_PLACEHOLDER = "{server}"
_ERROR = {"$ref": "#/components/schemas/ErrorBody"}
# What each status means, for every operation that can answer it (docs/structure-app.md has the table).
STATUS_TEXT = {
    400: "the body is not a multipart form this service accepts (a limit of the form, or not multipart)",
    401: "the X-API-Key header is missing or wrong (only when the service has a key)",
    408: "the upload did not arrive within CHEXNET_UPLOAD_TIMEOUT_S",
    413: "the upload is larger than CHEXNET_MAX_UPLOAD_BYTES",
    415: "the bytes are not PNG, JPEG or DICOM, or the upload has a Content-Encoding other than identity",
    422: "a request this route cannot use: unknown query parameter or value, no/empty/several 'file' parts, or an "
    "image that cannot be decoded or is outside the limits",
    500: "an internal error (nothing about it is said)",
    503: "not ready, overloaded, waited too long for the model, or out of memory: retry after Retry-After",
}
OPEN_STATUSES = (422,)  # an unknown query parameter, on every route
UPLOAD_STATUSES = (400, 408, 413, 415, 422, 500, 503)
_BASE_URL = re.compile(r"https?://[A-Za-z0-9.\-]{1,253}(:[0-9]{1,5})?/|https?://\[[0-9A-Fa-f:.]{2,45}\](:[0-9]{1,5})?/")


def exact_openapi(
    app: FastAPI, labels: tuple[str, ...], points: tuple[str, ...], key_configured: bool
) -> dict[str, Any]:
    """The document for ``app`` (FastAPI's, edited as the module docstring says), with ``{server}`` left in the
    description for ``install_openapi`` to fill per request."""
    document = copy.deepcopy(FastAPI.openapi(app))
    if not key_configured:
        document.get("components", {}).pop("securitySchemes", None)
    for path, operations in document.get("paths", {}).items():
        for operation in operations.values():
            declared = operation.pop(GUARDS_KEY, None) or {}
            if not key_configured:
                operation.pop("security", None)
            statuses = set(OPEN_STATUSES)
            if declared.get("upload"):
                statuses.update(UPLOAD_STATUSES)
            if declared.get("api_key") and key_configured:
                statuses.add(401)
            if path == "/readyz":
                statuses.add(503)
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)  # FastAPI's HTTPValidationError: our errors have one shape, ErrorBody
            for status in sorted(statuses):
                content = {"application/json": {"schema": _ERROR}}
                responses[str(status)] = {"description": STATUS_TEXT[status], "content": content}
            for parameter in operation.get("parameters", []):
                _constrain(parameter, labels, points)
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas["ErrorBody"] = ErrorBody.model_json_schema()
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    for name, schema in schemas.items():
        if name.startswith("Body_") and "file" in schema.get("properties", {}):
            schema["properties"]["file"].update({"type": "string", "format": "binary", "minLength": 1})
    _hoist_local_defs(document, schemas)
    _label_examples(schemas, labels)
    return document


def _label_examples(schemas: dict[str, Any], labels: tuple[str, ...]) -> None:
    """Examples naming the served model's labels (a 5-label model's document shows its 5), in place."""
    probabilities = {label: round(0.4 / (i + 1), 3) for i, label in enumerate(labels)}  # made-up, decreasing
    for schema, field, example in (
        ("PredictResponse", "probabilities", probabilities),
        ("ModelCard", "labels", list(labels)),
    ):
        prop = schemas.get(schema, {}).get("properties", {}).get(field)
        if prop is not None:
            prop["examples"] = [example]


def _hoist_local_defs(node: Any, schemas: dict[str, Any]) -> None:
    """Move every nested ``$defs`` entry into ``schemas`` (``components/schemas``) and point ``#/$defs/X`` at
    ``#/components/schemas/X``, in place.

    Raises ``ValueError`` when a moved definition would replace a different schema of the same name (two pydantic
    models with one name): the document would then describe one of them wrongly."""
    if isinstance(node, list):
        for item in node:
            _hoist_local_defs(item, schemas)
        return
    if not isinstance(node, dict):
        return
    for name, definition in node.pop("$defs", {}).items():
        _hoist_local_defs(definition, schemas)
        if schemas.setdefault(name, definition) != definition:
            raise ValueError(f"two different schemas are both named {name!r}")
    reference = node.get("$ref")
    if isinstance(reference, str) and reference.startswith("#/$defs/"):
        node["$ref"] = "#/components/schemas/" + reference.removeprefix("#/$defs/")
    for value in list(node.values()):
        _hoist_local_defs(value, schemas)


def _constrain(parameter: dict[str, Any], labels: tuple[str, ...], points: tuple[str, ...]) -> None:
    if parameter.get("in") != "query":
        return
    if parameter.get("name") == "pathology":
        parameter["schema"] = {"type": "string", "enum": [*labels, "all"], "title": "Pathology"}
    elif parameter.get("name") == "operating_point" and points:
        parameter["schema"] = {"type": "string", "enum": list(points), "title": "Operating Point"}


def server_of(request: Request) -> str:
    """The address the request was sent to (``http://host:port``), or ``""`` (relative) for an odd Host header."""
    base = str(request.base_url)
    return base.rstrip("/") if _BASE_URL.fullmatch(base) else ""


def install_openapi(app: FastAPI, labels: tuple[str, ...], points: tuple[str, ...], key_configured: bool) -> None:
    """Serve the exact document at ``/openapi.json`` (the app is created with ``openapi_url=None``), with the
    servers entry and the description's example naming the address of each request."""
    cache: dict[str, Any] = {}

    def document() -> dict[str, Any]:
        if not cache:
            cache.update(exact_openapi(app, labels, points, key_configured))
        return cache

    app.openapi = document  # type: ignore[method-assign]  # what tests and tools that call app.openapi() get

    @app.get("/openapi.json", include_in_schema=False, **guarded(upload=False, api_key=False))
    async def read_openapi(request: Request) -> JSONResponse:
        server = server_of(request)
        served = {**document(), "servers": [{"url": server or "/"}]}
        served["info"] = {**served["info"], "description": served["info"]["description"].replace(
            SERVER_PLACEHOLDER, server or "http://127.0.0.1:8000")}  # fmt: skip
        return JSONResponse(served)
