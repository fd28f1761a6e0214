"""The encode step: one request's ``Inference`` -> its HTTP answer (JSON body or PNG), named by the model's labels."""

from __future__ import annotations

from fastapi.responses import JSONResponse, Response

from app.encoding.explanation import explanation_fields, map_is_flat, render_explanation_png
from app.encoding.findings import findings_fields, operating_points_card
from app.encoding.overlay import render_panels_png
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
    pipeline: Pipeline,
    result: Inference,
    prepared: PreparedImage,
    pathology: str | None,
    as_json: bool,
    draw_boxes: bool = False,
) -> Response:
    """/gradcam's answer for ``pathology`` (a label, ``all``, or None: the most probable), as PNG or JSON.

    JSON carries each map's boxes (``models.cam_boxes``, in the upload's pixels) and whether it is flat; a PNG says
    ``X-Heatmap: map`` or ``flat`` (a flat map is drawn as the plain image, never stretched into colour). PNGs are
    drawn in the pipeline's bounded pool (``Pipeline.run_bounded``).
    """
    assert result.cams is not None
    labels = pipeline.predictor.info.labels
    spans = result.cam_spans if result.cam_spans is not None else [None] * len(result.cams)
    flats = [map_is_flat(c, s) for c, s in zip(result.cams, spans, strict=True)]
    if pathology == "all":
        if as_json:
            fields = [explanation_fields(c, prepared.geometry, f) for c, f in zip(result.cams, flats, strict=True)]
            body = GradcamAllJson(
                probabilities=probabilities_of(result, labels),
                heatmaps={n: c.tolist() for n, c in zip(labels, result.cams, strict=True)},
                flat={n: f["flat"] for n, f in zip(labels, fields, strict=True)},
                boxes={n: f["boxes"] for n, f in zip(labels, fields, strict=True)},
                box_rule=fields[0]["box_rule"],
            )
            return JSONResponse(body.model_dump())
        assert prepared.overlay is not None
        titles = [
            f"{n} p={p:.3f}" + (" (flat map)" if f else "") for n, p, f in zip(labels, result.probs, flats, strict=True)
        ]
        png = await pipeline.run_bounded(
            render_panels_png, prepared.overlay, result.cams, prepared.geometry, titles, None, flats
        )
        return Response(png, media_type="image/png", headers={"X-Pathology": "all"})
    index = labels.index(pathology) if pathology else int(result.probs.argmax())
    name, probability, flat = labels[index], float(result.probs[index]), flats[index]
    if as_json:
        extra = explanation_fields(result.cams[index], prepared.geometry, flat)
        body_one = GradcamJson(pathology=name, probability=probability, heatmap=result.cams[index].tolist(), **extra)
        return JSONResponse(body_one.model_dump())
    assert prepared.overlay is not None
    png = await pipeline.run_bounded(
        render_explanation_png, prepared.overlay, result.cams[index], prepared.geometry, flat, draw_boxes
    )
    headers = {"X-Pathology": name, "X-Probability": f"{probability:.6f}", "X-Heatmap": "flat" if flat else "map"}
    return Response(png, media_type="image/png", headers=headers)


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
