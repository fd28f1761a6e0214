"""The HTTP surface. Each model route reads as its steps: decode -> predict (batched) -> encode.

Every route declares its guards (``**guarded(...)``, ``app.guards.route_guards``): whether it takes an upload
(admission: limits, load shedding, upload deadline) and whether it needs the API key. The statuses each route
can answer are declared for OpenAPI by ``app.openapi`` from the same declaration.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, File, Query, Request, UploadFile
from fastapi.responses import Response

from app.encoding.findings import resolve_point
from app.encoding.responses import encode_gradcam, encode_model_card, encode_prediction
from app.errors import ClientClosedError, NotReadyError, UnknownPathologyError
from app.guards.admission import admission_of
from app.guards.route_guards import guarded
from app.pipeline import Pipeline
from app.schemas import GradcamAllJson, GradcamJson, Health, ModelCard, PredictResponse
from app.strict_route import StrictRoute
from models.labels import match_label, suggest_label

router = APIRouter(route_class=StrictRoute)
OPEN = guarded(upload=False, api_key=False)
KEYED = guarded(upload=False, api_key=True)
UPLOAD = guarded(upload=True, api_key=True)
Upload = Annotated[UploadFile, File(description="a chest X-ray: PNG, JPEG or DICOM (format read from the bytes)")]


def _pipeline(request: Request) -> Pipeline:
    pipeline: Pipeline = request.app.state.pipeline
    return pipeline


async def _still_wanted(request: Request) -> None:
    """Raise ClientClosedError when the client has gone: its answer is not computed (nor its overlay drawn)."""
    if await request.is_disconnected():
        raise ClientClosedError()


def _chosen_pathology(query: str | None, labels: tuple[str, ...]) -> str | None:
    """None (the most probable), "all", or one of ``labels``; ``mass`` and ``pleural thickening`` match."""
    if query is None:
        return None
    if query.strip().lower() == "all":
        return "all"
    name = match_label(query, labels)
    if name is None:
        raise UnknownPathologyError(suggest_label(query, labels), labels)
    return name


@router.get("/healthz", response_model=Health, tags=["probes"], **OPEN)
async def read_health() -> Health:
    """Liveness: the process answers."""
    return Health(status="ok")


@router.get("/readyz", response_model=Health, tags=["probes"], **OPEN)
async def read_readiness(request: Request) -> Health:
    """Readiness: 200 once the model is loaded and warmed up and until the service begins to drain, else 503."""
    pipeline = _pipeline(request)
    if not pipeline.ready or pipeline.draining:
        raise NotReadyError()
    return Health(status="ready")


@router.post("/predict", response_model=PredictResponse, tags=["model"], **UPLOAD)
async def predict_image(
    request: Request,
    file: Upload,
    operating_point: Annotated[
        str | None, Query(description="an operating point of the model (GET /model lists them); default: its default")
    ] = None,
) -> PredictResponse:
    """Predict the probability of each of the model's labels for one chest X-ray, with findings at an operating
    point."""
    pipeline = _pipeline(request)
    info = pipeline.predictor.info
    point = resolve_point(info.operating_points, operating_point)  # before the upload is decoded
    prepared = await pipeline.decode(file)
    await _still_wanted(request)
    result = await pipeline.predict(prepared, with_cams=False, admission=admission_of(request.scope))
    return encode_prediction(result, prepared, info, point)


@router.post(
    "/gradcam",
    tags=["model"],
    response_class=Response,
    responses={
        200: {
            "content": {
                "image/png": {},
                "application/json": {
                    "schema": {"anyOf": [GradcamJson.model_json_schema(), GradcamAllJson.model_json_schema()]}
                },
            },
            "description": "PNG overlay at the upload's size, at most CHEXNET_OVERLAY_MAX_SIDE on the longer side "
            "(headers X-Pathology, X-Probability, X-Heatmap: map, or flat when the map has nothing to show and the "
            "image is returned uncoloured), or JSON with the map's boxes",
        },
    },
    **UPLOAD,
)
async def explain_image(
    request: Request,
    file: Upload,
    pathology: Annotated[
        str | None,
        Query(
            description="one of the model's labels (case, spaces and underscores ignored: 'pleural thickening'), "
            "'all' for one panel per label; default: the most probable"
        ),
    ] = None,
    format: Annotated[Literal["png", "json"], Query(description="png overlay or json heatmap")] = "png",
    boxes: Annotated[bool, Query(description="draw the map's boxes (Wang et al.'s rule) on the PNG")] = False,
) -> Response:
    """Grad-CAM: where the model looked, as a jet heatmap over the uploaded image (or JSON maps)."""
    pipeline = _pipeline(request)
    pathology = _chosen_pathology(pathology, pipeline.predictor.info.labels)
    prepared = await pipeline.decode(file, None if format == "json" else pipeline.settings.overlay_max_side)
    await _still_wanted(request)
    result = await pipeline.predict(prepared, with_cams=True, admission=admission_of(request.scope))
    await _still_wanted(request)
    return await encode_gradcam(pipeline, result, prepared, pathology, as_json=format == "json", draw_boxes=boxes)


@router.get("/model", response_model=ModelCard, tags=["model"], **KEYED)
async def read_model_card(request: Request) -> ModelCard:
    """The model card: labels, preprocessing, training data and command, metrics, operating points, checksum, device."""
    return encode_model_card(_pipeline(request).predictor.info)


@router.get("/metrics", tags=["operations"], response_class=Response, **KEYED)
async def read_metrics(request: Request) -> Response:
    """Prometheus metrics: requests, latency, batch sizes, queue depth, per-class score histograms."""
    pipeline = _pipeline(request)
    pipeline.telemetry.queue_depth.set(pipeline.predictor.queue_depth())
    pipeline.telemetry.upload_backlog.set(pipeline.backlog.count)
    return Response(pipeline.telemetry.render(), media_type="text/plain; version=0.0.4; charset=utf-8")
