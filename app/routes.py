"""The HTTP surface. Each route is a few named steps: prepare (decode + preprocess) -> infer -> encode."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Query, Request, UploadFile
from fastapi.responses import JSONResponse, Response

from app.encoding.findings import findings_fields, operating_points_card, resolve_point
from app.encoding.overlay import render_overlay_png, render_panels_png
from app.errors import ClientClosedError, NotReadyError, UnknownPathologyError
from app.guards.admission import admission_of
from app.guards.api_key import check_api_key
from app.inference.predictor import Inference
from app.schemas import ErrorBody, GradcamAllJson, GradcamJson, Health, ModelCard, PredictResponse
from app.service import Service
from app.settings import DISCLAIMER
from app.uploads import require_one_file
from models.labels import PATHOLOGIES, match_label, suggest_label

router = APIRouter()
Guarded = [Depends(check_api_key)]
Uploading = [*Guarded, Depends(require_one_file)]
Upload = Annotated[UploadFile, File(description="a chest X-ray: PNG, JPEG or DICOM (format read from the bytes)")]
_ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorBody} for code in (400, 401, 408, 413, 415, 422, 503)}


def _service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


async def _still_wanted(request: Request) -> None:
    """Raise ClientClosedError when the client has gone: its answer is not computed (nor its overlay drawn)."""
    if await request.is_disconnected():
        raise ClientClosedError()


def _probabilities(result: Inference) -> dict[str, float]:
    return {name: float(p) for name, p in zip(PATHOLOGIES, result.probs, strict=True)}


def _chosen_pathology(query: str | None) -> str | None:
    """None (the most probable), "all", or the name in NIH's spelling; ``mass`` and ``pleural thickening`` match."""
    if query is None:
        return None
    if query.strip().lower() == "all":
        return "all"
    name = match_label(query)
    if name is None:
        raise UnknownPathologyError(suggest_label(query))
    return name


@router.get("/healthz", response_model=Health, tags=["probes"])
async def read_health() -> Health:
    """Liveness: the process answers."""
    return Health(status="ok")


@router.get("/readyz", response_model=Health, tags=["probes"], responses={503: {"model": ErrorBody}})
async def read_readiness(request: Request) -> Health:
    """Readiness: 200 once the model is loaded and warmed up and until the service begins to drain, else 503."""
    service = _service(request)
    if not service.ready or service.draining:
        raise NotReadyError()
    return Health(status="ready")


@router.post("/predict", response_model=PredictResponse, dependencies=Uploading, responses=_ERRORS, tags=["model"])
async def predict_image(
    request: Request,
    file: Upload,
    operating_point: Annotated[
        str | None, Query(description="an operating point of the model (GET /model lists them); default: its default")
    ] = None,
) -> PredictResponse:
    """Predict the 14 ChestX-ray14 pathology probabilities for one chest X-ray, with findings at an operating point."""
    service = _service(request)
    info = service.engine.info
    point = resolve_point(info.operating_points, operating_point)  # before the upload is decoded
    prepared = await service.prepare(file)
    await _still_wanted(request)
    result = await service.infer(prepared, with_cams=False, admission=admission_of(request.scope))
    return PredictResponse(
        probabilities=_probabilities(result),
        **findings_fields(result.probs, info.operating_points, point),
        model={"name": info.name, "version": info.version, "sha256": info.sha256},
        input={
            "format": prepared.format,
            "width": prepared.width,
            "height": prepared.height,
            "steps": list(prepared.steps),
        },
        disclaimer=DISCLAIMER,
    )


@router.post(
    "/gradcam",
    dependencies=Uploading,
    tags=["model"],
    response_class=Response,
    responses={
        200: {
            "content": {"image/png": {}, "application/json": {"schema": GradcamJson.model_json_schema()}},
            "description": "PNG overlay at the upload's size, at most CHEXNET_OVERLAY_MAX_SIDE on the longer side "
            "(headers X-Pathology, X-Probability), or JSON",
        },
        **_ERRORS,
    },
)
async def explain_image(
    request: Request,
    file: Upload,
    pathology: Annotated[
        str | None,
        Query(
            description="a pathology name (case, spaces and underscores ignored: 'pleural thickening'), 'all' for "
            "14 panels; default: the most probable"
        ),
    ] = None,
    format: Annotated[Literal["png", "json"], Query(description="png overlay or json heatmap")] = "png",
) -> Response:
    """Grad-CAM: where the model looked, as a jet heatmap over the uploaded image (or JSON maps)."""
    pathology = _chosen_pathology(pathology)
    service = _service(request)
    overlay_side = None if format == "json" else service.settings.overlay_max_side
    prepared = await service.prepare(file, overlay_side)
    await _still_wanted(request)
    result = await service.infer(prepared, with_cams=True, admission=admission_of(request.scope))
    assert result.cams is not None
    await _still_wanted(request)
    if pathology == "all":
        if format == "json":
            return JSONResponse(
                GradcamAllJson(
                    probabilities=_probabilities(result),
                    heatmaps={n: c.tolist() for n, c in zip(PATHOLOGIES, result.cams, strict=True)},
                ).model_dump()
            )
        assert prepared.overlay is not None
        titles = [f"{n} p={p:.3f}" for n, p in zip(PATHOLOGIES, result.probs, strict=True)]
        png = await service.run_bounded(render_panels_png, prepared.overlay, result.cams, prepared.geometry, titles)
        return Response(png, media_type="image/png", headers={"X-Pathology": "all"})
    index = PATHOLOGIES.index(pathology) if pathology else int(result.probs.argmax())
    name, probability = PATHOLOGIES[index], float(result.probs[index])
    if format == "json":
        body = GradcamJson(pathology=name, probability=probability, heatmap=result.cams[index].tolist())
        return JSONResponse(body.model_dump())
    assert prepared.overlay is not None
    png = await service.run_bounded(render_overlay_png, prepared.overlay, result.cams[index], prepared.geometry)
    headers = {"X-Pathology": name, "X-Probability": f"{probability:.6f}"}
    return Response(png, media_type="image/png", headers=headers)


@router.get("/model", response_model=ModelCard, dependencies=Guarded, responses=_ERRORS, tags=["model"])
async def read_model_card(request: Request) -> ModelCard:
    """The model card: labels, preprocessing, training data and command, metrics, operating points, checksum, device."""
    info = _service(request).engine.info
    return ModelCard(
        name=info.name,
        version=info.version,
        sha256=info.sha256,
        device=info.device,
        backend=info.backend,
        precision=info.precision,
        labels=list(PATHOLOGIES),
        preprocessing=info.spec.to_dict(),
        training={"provenance": info.provenance, "config": info.config},
        metrics=info.metrics,
        operating_points=operating_points_card(info.operating_points),
        disclaimer=DISCLAIMER,
    )


@router.get("/metrics", dependencies=Guarded, tags=["operations"], response_class=Response)
async def read_metrics(request: Request) -> Response:
    """Prometheus metrics: requests, latency, batch sizes, queue depth, per-class score histograms."""
    service = _service(request)
    service.telemetry.queue_depth.set(service.engine.queue_depth())
    service.telemetry.upload_backlog.set(service.backlog.count)
    return Response(service.telemetry.render(), media_type="text/plain; version=0.0.4; charset=utf-8")
