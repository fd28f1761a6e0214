"""The encode step: one request's ``Inference`` -> its HTTP answer (JSON body or PNG), named by the model's labels."""

from __future__ import annotations

from fastapi.responses import JSONResponse, Response

from app.encoding.findings import findings_fields, operating_points_card
from app.encoding.overlay import render_overlay_png, render_panels_png
from app.inference.decode import PreparedImage
from app.inference.predictor import Inference, ModelInfo
from app.pipeline import Pipeline
from app.schemas import GradcamAllJson, GradcamJson, ModelCard, PredictResponse
from app.settings import DISCLAIMER


def probabilities_of(result: Inference, labels: tuple[str, ...]) -> dict[str, float]:
    """``{label: probability}`` in the model's label order."""
    return {name: float(p) for name, p in zip(labels, result.probs, strict=True)}


def encode_prediction(
    result: Inference, prepared: PreparedImage, info: ModelInfo, point: str | None
) -> PredictResponse:
    """/predict's answer: probabilities, findings at ``point``, the model's identity and what was decoded."""
    return PredictResponse(
        probabilities=probabilities_of(result, info.labels),
        **findings_fields(result.probs, info.operating_points, point),
        model={"name": info.name, "version": info.version, "sha256": info.sha256},
        input={"format": prepared.format, "width": prepared.width, "height": prepared.height,
               "steps": list(prepared.steps)},
        disclaimer=DISCLAIMER,
    )  # fmt: skip


async def encode_gradcam(
    pipeline: Pipeline, result: Inference, prepared: PreparedImage, pathology: str | None, as_json: bool
) -> Response:
    """/gradcam's answer for ``pathology`` (a label, ``all``, or None: the most probable), as PNG or JSON.

    PNGs are drawn in the pipeline's bounded pool (``Pipeline.run_bounded``).
    """
    assert result.cams is not None
    labels = pipeline.predictor.info.labels
    if pathology == "all":
        if as_json:
            heatmaps = {n: c.tolist() for n, c in zip(labels, result.cams, strict=True)}
            return JSONResponse(
                GradcamAllJson(probabilities=probabilities_of(result, labels), heatmaps=heatmaps).model_dump()
            )
        assert prepared.overlay is not None
        titles = [f"{n} p={p:.3f}" for n, p in zip(labels, result.probs, strict=True)]
        png = await pipeline.run_bounded(render_panels_png, prepared.overlay, result.cams, prepared.geometry, titles)
        return Response(png, media_type="image/png", headers={"X-Pathology": "all"})
    index = labels.index(pathology) if pathology else int(result.probs.argmax())
    name, probability = labels[index], float(result.probs[index])
    if as_json:
        body = GradcamJson(pathology=name, probability=probability, heatmap=result.cams[index].tolist())
        return JSONResponse(body.model_dump())
    assert prepared.overlay is not None
    png = await pipeline.run_bounded(render_overlay_png, prepared.overlay, result.cams[index], prepared.geometry)
    return Response(png, media_type="image/png", headers={"X-Pathology": name, "X-Probability": f"{probability:.6f}"})


def encode_model_card(info: ModelInfo) -> ModelCard:
    """GET /model's answer from what the checkpoint says."""
    return ModelCard(
        name=info.name,
        version=info.version,
        sha256=info.sha256,
        device=info.device,
        backend=info.backend,
        precision=info.precision,
        labels=list(info.labels),
        preprocessing=info.spec.to_dict(),
        training={"provenance": info.provenance, "config": info.config},
        metrics=info.metrics,
        operating_points=operating_points_card(info.operating_points),
        disclaimer=DISCLAIMER,
    )
