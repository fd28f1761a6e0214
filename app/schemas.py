"""Response bodies as pydantic models: they are the OpenAPI documentation too."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

# OpenAPI examples only: the bundled model's labels (NIH's 14). Every answer's keys are the served model's labels.


class ModelRef(BaseModel):
    name: str = Field(examples=["chexnet-demo"])
    version: str = Field(examples=["0.1.0"])
    sha256: str = Field(description="SHA-256 of the checkpoint file")


class InputInfo(BaseModel):
    format: str = Field(description="detected from the bytes: png, jpeg or dicom", examples=["png"])
    width: int
    height: int
    steps: list[str] = Field(
        description="what the decoder applied, in order: exif_orientation, mpo_primary_image, sbit_<n>, luma; "
        "for DICOM decompress, high_bit_shift, modality_lut, voi_lut | window | auto_window, "
        "monochrome1_inversion, pixel_padding",
        examples=[["modality_lut", "window", "monochrome1_inversion"]],
    )


class Finding(BaseModel):
    probability: float = Field(
        description="the probability compared with the threshold: after the model's temperature when it has one "
        "(then it differs from `probabilities`), else the same number"
    )
    threshold: float = Field(description="the operating point's threshold for this class")
    above: bool = Field(description="probability >= threshold: the class is called positive at this point")
    unreliable: bool = Field(
        description="the threshold was chosen with fewer than 10 positives of this class: treat it with caution"
    )


class OperatingPointRef(BaseModel):
    name: str = Field(description="the point used (?operating_point=, else the model's default)", examples=["youden"])
    description: str = Field(examples=["maximises Youden's J = sensitivity + specificity - 1"])
    chosen_on: str = Field(description="the data the thresholds were chosen on (GET /model has the details)")
    temperature: float | None = Field(description="logit temperature applied before the thresholds, if any")
    available: list[str] = Field(description="every point the model has", examples=[["youden", "spec90"]])


class PredictResponse(BaseModel):
    probabilities: dict[str, float] = Field(
        description="sigmoid probability per label of the served model, in its order (GET /model lists the "
        "labels; the bundled model's are the 14 ChestX-ray14 pathologies); the model's raw output, as "
        "`chexnet predict` writes it",
    )  # examples: the served model's labels (app.openapi)
    findings: dict[str, Finding] | None = Field(
        description="per label, the decision at the operating point; null when the model has no operating "
        "points (see `note`)"
    )
    operating_point: OperatingPointRef | None = Field(description="the point the findings use; null without one")
    note: str | None = Field(description="why there are no findings, when there are none; else null")
    model: ModelRef
    input: InputInfo
    disclaimer: str


class BoxRuleRef(BaseModel):
    name: str = Field(description="the rule (Wang et al. 2017: a box per connected region at each level)")
    levels: list[float] = Field(description="thresholds on the map in [0, 1]")
    levels_255: list[float] = Field(description="the same levels on Wang et al.'s 0-255 scale", examples=[[60, 180]])
    flat_span: float = Field(description="a map whose raw (max - min) x cells is below this is reported flat")
    coordinates: str = Field(description="what the box numbers are")


class GradcamJson(BaseModel):
    pathology: str = Field(description="the label the map is for: one of the model's")
    probability: float
    heatmap: list[list[float]] = Field(description="(h, w) Grad-CAM at feature-map resolution, in [0, 1]")
    flat: bool = Field(description="the map has no spatial variation (its heatmap is all zeros): nothing to show")
    boxes: list[list[float]] = Field(
        description="boxes derived from the map by box_rule, [x0, y0, x1, y1] in the uploaded image's pixels "
        "(right/bottom exclusive); empty for a flat map"
    )
    box_rule: BoxRuleRef


class GradcamAllJson(BaseModel):
    probabilities: dict[str, float]
    heatmaps: dict[str, list[list[float]]] = Field(description="one (h, w) map in [0, 1] per label of the model")
    flat: dict[str, bool] = Field(description="per label: the map is flat (nothing to show)")
    boxes: dict[str, list[list[float]]] = Field(description="per label: boxes in upload pixels (see GradcamJson)")
    box_rule: BoxRuleRef


class ModelCard(BaseModel):
    name: str
    version: str
    sha256: str
    device: str
    backend: str = Field(description="torch (eager) or openvino (compiled for the CPU)")
    precision: str = Field(description="fp32, or bf16 or fp16 when asked for")
    labels: list[str] = Field(
        description="the model's outputs, in order: the keys of /predict's probabilities and findings",
    )  # examples: the served model's labels (app.openapi)
    preprocessing: dict[str, Any]
    training: dict[str, Any] = Field(description="training data, command and configuration")
    metrics: dict[str, Any] = Field(description="validation metrics recorded in the checkpoint")
    operating_points: dict[str, Any] | None = Field(
        description="the checkpoint's operating points: default, the data they were chosen on (source), classes "
        "flagged unreliable, temperature, and per point and class the threshold with sensitivity, specificity, "
        "PPV and NPV there; null when the model has none"
    )
    disclaimer: str


class ErrorBody(BaseModel):
    detail: str = Field(description="a message for a person")
    code: str = Field(description="a machine-readable code", examples=["unsupported_format"])


class Health(BaseModel):
    status: str = Field(examples=["ok"])
