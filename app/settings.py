"""The service's one settings class: CHEXNET_* environment variables, overridable by ``chexnet serve`` flags."""

from __future__ import annotations

import difflib
import importlib.util
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import torch
from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.inference.threads import available_cores, default_decode_workers
from models.bundled import DEMO_CHECKPOINT

MIB = 1024 * 1024
DISCLAIMER = (
    "Research use only. Not a medical device: not for diagnosis, treatment or any clinical decision. "
    "Outputs of this model have not been clinically validated."
)


def _int8_runs_on_openvino(info: ValidationInfo) -> str:
    if info.data.get("device") == "cuda" or info.data.get("backend") == "torch":
        raise ValueError(
            "int8 runs on the CPU with OpenVINO: use device cpu or auto and backend auto or openvino (on CUDA, use "
            "bf16 or fp16)"
        )
    if importlib.util.find_spec("openvino") is None:
        raise ValueError("int8 needs the openvino package, which is not installed")
    return "int8"


class Settings(BaseSettings):
    """Every knob of the service, validated at start-up with messages that name the variable."""

    model_config = SettingsConfigDict(env_prefix="CHEXNET_", extra="ignore", frozen=True)

    checkpoint: Path = Field(DEMO_CHECKPOINT, description="checkpoint to serve; empty means the bundled demo model")
    model_name: str | None = Field(
        None, max_length=128, description="name shown by /model and /predict; unset: the name recorded at training"
    )
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    backend: Literal["auto", "torch", "openvino"] = Field(
        "auto", description="auto: openvino on the CPU, torch on CUDA; torch: eager everywhere (the reference)"
    )
    precision: Literal["fp32", "bf16", "fp16", "int8"] = Field(
        "fp32",
        description="bf16 (CPU or CUDA), fp16 (CUDA only), int8 (CPU, OpenVINO, with CHEXNET_INT8_MODEL); "
        "bf16 moved the demo model's probabilities by up to 3e-3",
    )
    int8_model: Path | None = Field(
        None, description="with precision int8: the folder chexnet quantize wrote for this checkpoint"
    )
    intra_op_threads: int = Field(
        default_factory=available_cores, ge=1, le=1024, description="the model's threads (decode threads get 1)"
    )
    cache_dir: Path | None = Field(
        None, description="compiled-model cache; unset: beside the checkpoint, else a per-user temporary folder"
    )
    api_key: SecretStr | None = Field(None, description="when set, X-API-Key is required on model routes")
    max_upload_bytes: int = Field(20 * MIB, ge=1024)
    max_pixels: int = Field(40_000_000, ge=64 * 64)
    min_side: int = Field(64, ge=1)
    max_aspect_ratio: float = Field(4.0, ge=1.0)
    max_batch_size: int = Field(16, ge=1, le=512)
    max_wait_ms: float = Field(5.0, ge=0.0, le=1000.0)
    queue_size: int = Field(64, ge=1, description="inferences waiting in the model's queue")
    queue_timeout_s: float = Field(
        10.0, gt=0.0, le=3600.0, description="a request queued longer than this gets 503 without being computed"
    )
    upload_backlog: int = Field(
        16, ge=1, description="admitted uploads outside the model's queue: receiving, waiting, decoding, rendering"
    )
    upload_timeout_s: float = Field(30.0, gt=0.0, le=3600.0, description="the whole body must arrive in this time")
    decode_concurrency: int = Field(
        0,
        ge=0,
        validate_default=True,
        description="uploads decoded or overlays rendered at once (each may take ~1 GB at the pixel cap); 0, the "
        "default: 4 on the CPU, where the forward needs the cores; on CUDA the usable cores, at most "
        "upload_backlog, since decoding is what feeds the GPU",
    )
    overlay_max_side: int = Field(
        1024, ge=64, le=8192, description="Grad-CAM PNG overlays are drawn at most this many pixels on the longer side"
    )
    drain_seconds: float = Field(20.0, gt=0.0)
    warmup: bool = True
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("model_name", mode="before")
    @classmethod
    def _empty_name_means_none(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("checkpoint", mode="before")
    @classmethod
    def _empty_means_demo(cls, value: object) -> object:
        return DEMO_CHECKPOINT if value in (None, "") else value

    @field_validator("api_key", mode="before")
    @classmethod
    def _empty_key_means_none(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("backend")
    @classmethod
    def _openvino_runs_on_the_cpu(cls, value: str, info: ValidationInfo) -> str:
        if value == "openvino" and info.data.get("device") == "cuda":
            raise ValueError("openvino runs on the CPU, not with device cuda: use backend torch or auto")
        return value

    @field_validator("precision")
    @classmethod
    def _fp16_runs_on_cuda(cls, value: str, info: ValidationInfo) -> str:
        if value == "int8":
            return _int8_runs_on_openvino(info)
        if value != "fp16":
            return value
        device = info.data.get("device")
        if device == "cpu" or (device == "auto" and not torch.cuda.is_available()):
            raise ValueError(
                "fp16 runs on CUDA only and this service would run on the CPU; use CHEXNET_PRECISION=bf16 or fp32 "
                "there, or device cuda (--device or CHEXNET_DEVICE) on a machine with a GPU"
            )
        if info.data.get("backend") == "openvino":
            raise ValueError("fp16 is for CUDA with CHEXNET_BACKEND=torch or auto; OpenVINO takes fp32 or bf16")
        return value

    @model_validator(mode="after")
    def _int8_names_its_model(self) -> Settings:
        if self.precision == "int8" and self.int8_model is None:
            raise ValueError(
                "precision int8 needs the int8 model folder: make one with chexnet quantize and set CHEXNET_INT8_MODEL "
                "(or --int8-model)"
            )
        if self.precision != "int8" and self.int8_model is not None:
            raise ValueError("CHEXNET_INT8_MODEL is set but the precision is not int8 (CHEXNET_PRECISION=int8)")
        return self

    @field_validator("decode_concurrency")
    @classmethod
    def _zero_means_by_device(cls, value: int, info: ValidationInfo) -> int:
        if value:
            return value
        return default_decode_workers(info.data.get("device", "auto"), info.data.get("upload_backlog", 16))

    @field_validator("cache_dir", mode="before")
    @classmethod
    def _empty_cache_dir_means_default(cls, value: object) -> object:
        return None if value == "" else value


# CHEXNET_* variables that are not settings of the service but are read elsewhere (tests, make targets).
OTHER_VARIABLES = frozenset({"CHEXNET_STRICT_SETTINGS", "CHEXNET_FUZZ"})


def unknown_variables(environ: Mapping[str, str]) -> list[tuple[str, str | None]]:
    """(name, closest known name or None) for each CHEXNET_* variable that no setting reads; values never read."""
    known = {f"CHEXNET_{field.upper()}" for field in Settings.model_fields} | OTHER_VARIABLES
    unknown = sorted(name for name in environ if name.upper().startswith("CHEXNET_") and name.upper() not in known)
    suffixes = {name.removeprefix("CHEXNET_"): name for name in known}  # compared without the shared prefix

    def closest(name: str) -> str | None:
        close = difflib.get_close_matches(name.upper().removeprefix("CHEXNET_"), list(suffixes), n=1)
        return suffixes[close[0]] if close else None

    return [(name, closest(name)) for name in unknown]
