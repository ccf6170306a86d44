"""Typed responses of the HTTP API (the request body is :class:`ray_gan.config.VariantsRequest`),
so the OpenAPI document describes every answer, errors included."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from ray_gan.config import MixSpec


class DeviceFingerprint(BaseModel):
    """What an image's bytes may depend on besides its inputs (see docs/architecture.md)."""

    kind: str = Field(description="cpu or cuda")
    name: str = Field(description="CPU or GPU model")
    cpu_capability: str = Field(description="CPU kernel ISA torch uses (e.g. AVX2, AVX512)")
    torch: str
    cudnn: str | None = None


class ModelRef(BaseModel):
    """A served model as pinned when the app was deployed."""

    name: str
    uri: str
    step: int
    weights_sha256: str


class ModelDescription(ModelRef):
    default: bool = Field(description="Used by requests that name no model.")
    styles: list[str]
    resolution: int
    architecture: str
    style_mixing_layers: int = Field(description="Style inputs mix.layers selects from (0: no mixing).")
    edit_directions: list[str]
    device: DeviceFingerprint


class ModelList(BaseModel):
    models: list[ModelDescription]


class StylesResponse(BaseModel):
    model: str
    styles: list[str]
    step: int
    resolution: int
    weights_sha256: str


class Health(BaseModel):
    status: str
    models: list[ModelRef]


class ManifestRow(BaseModel):
    """A row of the Parquet manifest (ray_gan.manifest.MANIFEST_SCHEMA)."""

    job_id: str
    image_id: str
    style: str
    style_index: int
    variant: int
    seed: int
    truncation: float
    mix_layers: str | None
    mix_style: str | None
    mix_seed: int | None
    edits: str
    model_uri: str
    weights_sha256: str
    image_uri: str
    image_sha256: str
    format: str
    width: int
    height: int
    device: str
    created: datetime


class VariantImage(BaseModel):
    style: str
    seed: int
    truncation: float
    mix: MixSpec | None = None
    edits: dict[str, float] = Field(default_factory=dict)
    width: int
    height: int
    format: str
    sha256: str = Field(description="sha256 of the encoded image bytes")
    image_base64: str | None = Field(None, description="The encoded image (inline mode).")
    uri: str | None = Field(None, description="Where the image was written (output mode).")


class VariantsResponse(BaseModel):
    request_id: str
    model: ModelRef
    device: DeviceFingerprint
    images: list[VariantImage]
    manifest: list[ManifestRow] | None = Field(None, description="Output mode: the images' manifest rows.")
    manifest_uri: str | None = Field(None, description="Output mode: the manifest part written.")


class ErrorResponse(BaseModel):
    detail: str | list = Field(description="What was wrong, or why the request was not served.")
