"""Typed configuration shared by the CLI, Ray Train, Ray Data batch jobs and Ray Serve.

Every model here is a pydantic model with ``extra="forbid"``: a typo in a YAML spec or
an HTTP body is an error with a message, never silently ignored.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Arch = Literal["stylegan", "dcgan", "vanilla"]
Loss = Literal["non_saturating", "hinge"]
Augment = Literal["none", "diffaugment"]
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
    max_channels: int = Field(512, ge=4, description="Cap on any block's width.")
    w_dim: int = Field(256, ge=8, le=2048, description="stylegan: width of the intermediate latent space W.")
    mapping_layers: int = Field(4, ge=1, le=16, description="stylegan: depth of the mapping network.")
    noise_inputs: bool = Field(True, description="stylegan: per-pixel noise added after every synthesis "
                               "convolution (StyleGAN); off, as in StyleGAN3, every detail comes from w. "
                               "On here for models stored before the option; new models: default_for (off).")
    pack: int = Field(1, ge=1, le=8, description="stylegan: discriminator packing (PacGAN, Lin et al. 2018): D "
                      "judges this many images of one style at once, stacked along channels, so a generator "
                      "that ignores its latent (identical images in a pack) is easy to tell from real data.")

    @model_validator(mode="after")
    def _check(self) -> "ModelConfig":
        r = self.resolution
        if self.arch == "dcgan" and (r < 16 or r & (r - 1)):
            raise ValueError(f"dcgan needs a power-of-two resolution >= 16, got {r}")
        if self.arch == "stylegan" and (r < 8 or r > 256 or r & (r - 1)):
            raise ValueError(f"stylegan needs a power-of-two resolution from 8 to 256, got {r}")
        if self.pack > 1 and self.arch != "stylegan":
            raise ValueError(f"pack > 1 (discriminator packing) is a stylegan setting, not {self.arch}'s")
        if not self.noise_inputs and self.arch != "stylegan":
            raise ValueError(f"noise_inputs is a stylegan setting; {self.arch} has no noise inputs to turn off")
        return self

    @classmethod
    def default_for(cls, arch: Arch, num_styles: int, resolution: int) -> "ModelConfig":
        if arch == "vanilla":
            # The classic MLP pair: 100 → 256 → 512 → 1024 → 784 (28×28×1).
            return cls(arch="vanilla", resolution=28, channels=1, z_dim=100, num_styles=num_styles,
                       conditional=num_styles > 1, embed_dim=num_styles)
        if arch == "stylegan":
            # No noise inputs: at this size G used them to speckle its images (dotted strokes
            # on glyphs) instead of drawing detail; docs/benchmarks.md, "Noise inputs".
            return cls(arch="stylegan", resolution=resolution, channels=3, z_dim=128, w_dim=128, mapping_layers=4,
                       num_styles=num_styles, embed_dim=64, g_channels=16, d_channels=16, max_channels=256,
                       noise_inputs=False)
        return cls(arch="dcgan", resolution=resolution, channels=3, z_dim=128, num_styles=num_styles)


class TrainConfig(_Strict):
    """``ray-gan train``: data-parallel GAN training with Ray Train."""

    dataset: str
    out: str
    arch: Arch = Field("stylegan", description="stylegan (the default: docs/benchmarks.md, quality rows), dcgan, "
                       "or vanilla (the classic MLP GAN).")
    workers: int = Field(2, ge=1)
    gpus_per_worker: float = Field(0.0, ge=0.0)
    cpus_per_worker: float = Field(1.0, gt=0.0)
    steps: int = Field(2000, ge=1, description="Total optimisation steps (counted across resumes).")
    batch_size: int = Field(32, ge=2, description="Images per worker per step.")
    lr_g: float | None = Field(None, gt=0, description="Default per arch: 2e-4 (dcgan, vanilla), 0.0025 (stylegan).")
    lr_d: float | None = Field(None, gt=0)
    beta1: float | None = Field(None, ge=0, lt=1, description="Adam β1; default 0.5 (dcgan, vanilla), 0 (stylegan).")
    beta2: float | None = Field(None, ge=0, lt=1, description="Adam β2; default 0.999 (dcgan, vanilla), 0.99 (stylegan).")
    ema_decay: float = Field(0.999, ge=0, lt=1, description="Per-step decay of the EMA generator that is "
                             "saved and served (0 = save the trained G itself). For dcgan at short budgets 0 trades "
                             "fidelity for style: docs/benchmarks.md (quality) has the numbers.")
    loss: Loss = Field("non_saturating", description="non_saturating: the minimax game with G maximising "
                       "log D(G(z)); hinge: the hinge form (Lim & Ye 2017; Miyato et al. 2018).")
    r1_gamma: float | None = Field(None, ge=0, description="R1 penalty weight on real images (0 = off; "
                                   "default: 0 for dcgan/vanilla, 0.0002·res²/global batch for stylegan).")
    r1_every: int = Field(16, ge=1, description="Lazy regularisation: apply R1 every N steps, scaled by N.")
    augment: Augment = Field("none", description="diffaugment: differentiable augmentation of reals and fakes "
                             "for D (Zhao et al. 2020); for small datasets.")
    augment_policy: str = Field("color,translation,cutout", pattern=r"^(color|translation|cutout)(,(color|translation|cutout))*$")
    style_loss: float | None = Field(None, ge=0, description="Weight of an auxiliary style-classification "
                                     "loss (AC-GAN, Odena et al. 2017): D's style head learns the styles of real "
                                     "images, G is pushed to make fakes that head assigns to their style. Conditional "
                                     "stylegan only; default 1 there, 0 = off.")
    mixing_prob: float = Field(0.9, ge=0, le=1, description="stylegan: share of G steps with style mixing.")
    amp: bool = Field(True, description="bf16 autocast on GPU (ignored on CPU).")
    channels_last: bool = Field(True, description="NHWC memory format for the conv nets (faster convolutions "
                                "with oneDNN on CPU and cuDNN on GPU); no effect on vanilla.")
    compile: bool = Field(False, description="torch.compile (inductor) G's and D's forward passes, after a "
                          "one-off compile (~50 s for dcgan 64 px on 2 CPU cores). On a 2-core AVX2 CPU it did not "
                          "pay back (docs/benchmarks.md); measure before using it. R1 steps run D eagerly.")
    checkpoint_every: int = Field(500, ge=1)
    log_every: int = Field(25, ge=1)
    val_batches: int = Field(4, ge=1, description="Validation batches for D's val loss at each checkpoint.")
    max_loss: float = Field(100.0, gt=0, description="A loss above this (or NaN/inf) is divergence.")
    time_budget_s: float | None = Field(None, gt=0, description="Stop (with a checkpoint) after this long.")
    seed: int = Field(0, ge=0)
    resume: bool = False
    init_from: str | None = Field(None, description="Fine-tune: start from this trained model's weights "
                                  "(its architecture and size; style rows matched by name).")
    freeze_d: int = Field(0, ge=0, description="Fine-tune (FreezeD, Mo et al. 2020): hold D's first N layers "
                          "on the input side (stylegan: from-RGB, then one residual block per resolution from the "
                          "top) at the base's weights; only the layers above them, and the heads, adapt.")
    g_channels: int | None = Field(None, ge=4)
    d_channels: int | None = Field(None, ge=4)
    pack: int | None = Field(None, ge=1, le=8, description="stylegan: images of one style D judges at once "
                             "(PacGAN); default 2, or 1 where a batch cannot hold two of every style. Set for a new "
                             "model: resume and fine-tune keep the base's.")
    noise_inputs: bool | None = Field(None, description="stylegan: per-pixel noise inputs in G (default off); "
                                      "set for a new model: resume and fine-tune keep the base's.")

    @model_validator(mode="after")
    def _check(self) -> "TrainConfig":
        if self.freeze_d and not self.init_from:
            raise ValueError("freeze_d holds a base model's discriminator layers: it is for fine-tuning "
                             "(ray-gan finetune), which sets init_from")
        return self


# Seeds go through torch.Generator.manual_seed and the batch manifest's int64 columns:
# every seed, including an image's seed plus a mix.seed_offset, stays below 2**63.
SEED_MAX = 2**62
MAX_EDITS = 32
MAX_EDIT_STRENGTH = 100.0


class MixSpec(_Strict):
    """Style mixing (stylegan): the layers in ``layers`` take their style input from
    another latent — seed ``seed`` (or the image's seed + ``seed_offset``) in style
    ``style`` (default: the image's own style)."""

    layers: str = Field("coarse", pattern=r"^(coarse|fine|all|(-?\d{1,4})?:(-?\d{1,4})?)$",
                        description="coarse, fine, all, or a slice A:B of the style inputs")
    style: str | None = None
    seed: int | None = Field(None, ge=0, le=SEED_MAX)
    seed_offset: int = Field(1_000_000_007, ge=0, le=2**61)


Truncation = float | dict[str, float]


def check_truncation(v: Truncation) -> Truncation:
    """One truncation, or one per style name: each between 0 and 2."""
    values = v.values() if isinstance(v, dict) else [v]
    if any(not 0.0 <= t <= 2.0 for t in values):
        raise ValueError("truncation must be between 0 and 2")
    return v


def check_edits(v: dict[str, float]) -> dict[str, float]:
    """Edit direction name → strength (σ): at most :data:`MAX_EDITS` names of 1-128
    letters, digits, '.', '_' or '-'; finite strengths of at most :data:`MAX_EDIT_STRENGTH`."""
    if len(v) > MAX_EDITS:
        raise ValueError(f"at most {MAX_EDITS} edits, got {len(v)}")
    bad = [name for name in v if not isinstance(name, str) or not _ID_RE.match(name)]
    if bad:
        raise ValueError(f"edit direction names must be 1-128 chars of letters, digits, '.', '_' or '-': {bad}")
    bad = [name for name, t in v.items() if not -MAX_EDIT_STRENGTH <= t <= MAX_EDIT_STRENGTH]  # NaN fails too
    if bad:
        raise ValueError(f"edit strengths must be finite numbers between {-MAX_EDIT_STRENGTH:g} and "
                         f"{MAX_EDIT_STRENGTH:g}: {', '.join(f'{n}={v[n]}' for n in bad)}")
    return v


class BatchJobSpec(_Strict):
    """``ray-gan batch JOB.yaml``: thousands to millions of style variants with a Parquet manifest."""

    job_id: str
    model: str
    styles: list[str] | Literal["all"] = "all"
    variants_per_style: int = Field(ge=1, le=100_000_000)
    seed_base: int = Field(0, ge=0, le=SEED_MAX)
    truncation: Truncation = Field(1.0, description="One value, or one per style name (others get 1.0).")
    mix: MixSpec | None = None
    edits: dict[str, float] = Field(default_factory=dict, max_length=MAX_EDITS,
                                    description="Edit direction name → strength (σ).")
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

    _truncation = field_validator("truncation")(check_truncation)
    _edits = field_validator("edits")(check_edits)

    def truncation_for(self, style: str) -> float:
        return self.truncation.get(style, 1.0) if isinstance(self.truncation, dict) else self.truncation


class VariantsRequest(_Strict):
    """Body of ``POST /v1/variants``."""

    styles: list[str] = Field(min_length=1, max_length=64)
    n: int = Field(4, ge=1, le=64, description="Images per style.")
    seed: int = Field(0, ge=0, le=SEED_MAX)
    truncation: Truncation = Field(1.0, description="One value, or one per style name (others get 1.0).")
    mix: MixSpec | None = None
    edits: dict[str, float] = Field(default_factory=dict, max_length=MAX_EDITS,
                                    description="Edit direction name → strength (σ).")

    _truncation = field_validator("truncation")(check_truncation)
    _edits = field_validator("edits")(check_edits)

    def truncation_for(self, style: str) -> float:
        return self.truncation.get(style, 1.0) if isinstance(self.truncation, dict) else self.truncation


class ServeConfig(_Strict):
    model: str
    max_batch_size: int = Field(16, ge=1, le=1024)
    batch_wait_timeout_s: float = Field(0.02, ge=0.0, le=5.0)
    num_replicas: int = Field(1, ge=1)
    num_gpus: float = Field(0.0, ge=0.0)
    num_cpus: float = Field(1.0, gt=0.0)
