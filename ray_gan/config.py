"""Typed configuration shared by the CLI, Ray Train, Ray Data batch jobs and Ray Serve.

Every model here is a pydantic model with ``extra="forbid"``: a typo in a YAML spec or
an HTTP body is an error with a message, never silently ignored.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Arch = Literal["dcgan", "vanilla"]
ImageFormat = Literal["png", "webp", "jpeg"]

_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class PrepareConfig(_Strict):
    """``ray-gan prepare``: raw images → sharded Parquet + ``dataset.json``."""

    src: str = Field(description="Folder, .zip or s3:// prefix; one sub-folder per style.")
    dst: str = Field(description="Output dataset URI.")
    resolution: int = Field(32, ge=8, le=1024)
    val_fraction: float = Field(0.1, ge=0.0, lt=1.0)
    seed: int = Field(0, ge=0)
    shard_rows: int = Field(4096, ge=16, description="Images per Parquet shard.")
    max_pixels: int = Field(
        40_000_000, ge=1, description="Images with more pixels are skipped as decompression bombs."
    )
    max_file_bytes: int = Field(64 * 1024 * 1024, ge=1, description="Larger files are skipped.")
    files_per_task: int = Field(256, ge=1, description="Source files decoded per Ray Data task.")


class ModelConfig(_Strict):
    """Architecture hyper-parameters; stored in ``model.json`` and enough to rebuild G and D."""

    arch: Arch = "dcgan"
    resolution: int = Field(32, ge=8, le=1024)
    channels: int = Field(3, ge=1, le=4)
    z_dim: int = Field(128, ge=1, le=4096)
    num_styles: int = Field(1, ge=1)
    conditional: bool = True
    embed_dim: int = Field(64, ge=1)
    g_channels: int = Field(64, ge=4, description="Width of the last generator block (doubles per block).")
    d_channels: int = Field(64, ge=4, description="Width of the first discriminator block.")

    @model_validator(mode="after")
    def _check(self) -> "ModelConfig":
        if self.arch == "dcgan":
            r = self.resolution
            if r < 16 or r & (r - 1):
                raise ValueError(f"dcgan needs a power-of-two resolution >= 16, got {r}")
        return self

    @classmethod
    def default_for(cls, arch: Arch, num_styles: int, resolution: int) -> "ModelConfig":
        if arch == "vanilla":
            # The classic MLP pair: 100 → 256 → 512 → 1024 → 784 (28×28×1).
            return cls(arch="vanilla", resolution=28, channels=1, z_dim=100, num_styles=num_styles,
                       conditional=num_styles > 1, embed_dim=num_styles)
        return cls(arch="dcgan", resolution=resolution, channels=3, z_dim=128, num_styles=num_styles)


class TrainConfig(_Strict):
    """``ray-gan train``: data-parallel GAN training with Ray Train."""

    dataset: str
    out: str
    arch: Arch = "dcgan"
    workers: int = Field(2, ge=1)
    gpus_per_worker: float = Field(0.0, ge=0.0)
    cpus_per_worker: float = Field(1.0, gt=0.0)
    steps: int = Field(2000, ge=1, description="Total optimisation steps (counted across resumes).")
    batch_size: int = Field(32, ge=2, description="Images per worker per step.")
    lr_g: float = Field(2e-4, gt=0)
    lr_d: float = Field(2e-4, gt=0)
    beta1: float = Field(0.5, ge=0, lt=1)
    beta2: float = Field(0.999, ge=0, lt=1)
    ema_decay: float = Field(0.999, ge=0, lt=1)
    r1_gamma: float = Field(0.0, ge=0, description="R1 penalty weight on real images (0 = off).")
    checkpoint_every: int = Field(500, ge=1)
    log_every: int = Field(25, ge=1)
    val_batches: int = Field(4, ge=1, description="Validation batches for D's val loss at each checkpoint.")
    max_loss: float = Field(100.0, gt=0, description="A loss above this (or NaN/inf) is divergence.")
    time_budget_s: float | None = Field(None, gt=0, description="Stop (with a checkpoint) after this long.")
    seed: int = Field(0, ge=0)
    resume: bool = False
    g_channels: int | None = Field(None, ge=4)
    d_channels: int | None = Field(None, ge=4)


class BatchJobSpec(_Strict):
    """``ray-gan batch JOB.yaml``: thousands to millions of style variants with a Parquet manifest."""

    job_id: str
    model: str
    styles: list[str] | Literal["all"] = "all"
    variants_per_style: int = Field(ge=1, le=100_000_000)
    seed_base: int = Field(0, ge=0)
    truncation: float = Field(1.0, ge=0.0, le=2.0)
    image_format: ImageFormat = "png"
    output: str
    chunk_size: int = Field(64, ge=1, le=100_000, description="Images per work unit and manifest part.")
    replicas: int = Field(2, ge=1, description="Generator actors in the Ray Data actor pool.")
    gpus_per_replica: float = Field(0.0, ge=0.0)
    cpus_per_replica: float = Field(1.0, gt=0.0)

    @field_validator("job_id")
    @classmethod
    def _job_id(cls, v: str) -> str:
        if not _ID_RE.match(v):
            raise ValueError("job_id must be 1-128 chars of letters, digits, '.', '_' or '-'")
        return v


class VariantsRequest(_Strict):
    """Body of ``POST /v1/variants``."""

    styles: list[str] = Field(min_length=1, max_length=64)
    n: int = Field(4, ge=1, le=64, description="Images per style.")
    seed: int = Field(0, ge=0, le=2**62)
    truncation: float = Field(1.0, ge=0.0, le=2.0)


class ServeConfig(_Strict):
    model: str
    max_batch_size: int = Field(16, ge=1, le=1024)
    batch_wait_timeout_s: float = Field(0.02, ge=0.0, le=5.0)
    num_replicas: int = Field(1, ge=1)
    num_gpus: float = Field(0.0, ge=0.0)
    num_cpus: float = Field(1.0, gt=0.0)
