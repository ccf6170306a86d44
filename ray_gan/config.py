"""Typed configuration shared by the CLI, Ray Train, Ray Data batch jobs and Ray Serve.

Every model here is a pydantic model with ``extra="forbid"``: a typo in a YAML spec or
an HTTP body is an error with a message, never silently ignored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator
from pydantic.fields import FieldInfo

Arch = Literal["stylegan", "dcgan", "vanilla"]
Loss = Literal["non_saturating", "hinge"]
Augment = Literal["none", "diffaugment"]
StyleBalance = Literal["none", "sqrt", "uniform"]
ImageFormat = Literal["png", "webp", "jpeg"]
ExtractorName = Literal["auto", "classifier", "inception", "random-cnn"]

_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    @classmethod
    def from_flat(cls, **fields: Any):
        """Build from leaf field names, nested groups filled in by name:
        ``TrainConfig.from_flat(dataset=…, out=…, steps=4, lr_g=1e-3)`` sets ``run.steps``
        and ``optim.lr_g`` (as the command line does)."""
        return cls.model_validate(nest(cls, fields))


def nest(model: type[BaseModel], flat: dict[str, Any], base: dict | None = None) -> dict:
    """Leaf values by leaf name → ``model``'s nested layout, laid over ``base`` (not changed)."""
    out: dict = {k: (dict(v) if isinstance(v, dict) else v) for k, v in (base or {}).items()}
    paths = {leaf.name: leaf.path for leaf in leaves(model)}
    for name, value in flat.items():
        if name not in paths:
            raise ValueError(f"{model.__name__} has no field {name!r}")
        node = out
        for key in paths[name][:-1]:
            node = node.setdefault(key, {})
        node[name] = value
    return out


@dataclass(frozen=True)
class Leaf:
    """A settable field of a config, with its path through nested groups."""

    path: tuple[str, ...]  # e.g. ("optim", "lr_g")
    field: FieldInfo

    @property
    def name(self) -> str:
        return self.path[-1]


def leaves(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> list[Leaf]:
    """Every settable leaf field of ``model``, nested groups walked in order; leaf names
    are unique within a config (the command line and :meth:`_Strict.from_flat` rely on it)."""
    out = []
    for name, field in model.model_fields.items():
        sub = field.annotation if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel) else None
        out += leaves(sub, prefix + (name,)) if sub else [Leaf(prefix + (name,), field)]
    if not prefix and len({leaf.name for leaf in out}) != len(out):
        raise TypeError(f"{model.__name__}: two fields share a leaf name in different groups")
    return out


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


def min_batch_for_packs(pack: int, num_styles: int) -> int:
    """The smallest batch that always holds one whole discriminator pack of some style
    (pigeonhole): below it a batch may give a packing D nothing to judge."""
    return pack * num_styles


class ModelConfig(_Strict):
    """Architecture hyper-parameters; stored in ``model.json`` and enough to rebuild G and D.

    The field defaults are what a ``model.json`` written before a field existed means;
    a *new* model takes its architecture's preset (:data:`ARCH_PRESETS`, via
    :meth:`default_for` or :meth:`TrainConfig.new_model_config`)."""

    arch: Arch
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
                               "On here for models stored before the option; new models: the preset (off).")
    bounded_output: bool = Field(False, description="stylegan: tanh on the image G draws, so it stays inside "
                                 "the [-1, 1] that images are rendered from; linear (StyleGAN's own), G's values "
                                 "outside it, which D sees but a rendered image clips channel by channel, show "
                                 "as colour tints and fringes. Off here for models stored before the option; "
                                 "new models: the preset.")
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
        if self.bounded_output and self.arch != "stylegan":
            raise ValueError(f"bounded_output is a stylegan setting; {self.arch}'s generator ends in tanh already")
        if not self.noise_inputs and self.arch != "stylegan":
            raise ValueError(f"noise_inputs is a stylegan setting; {self.arch} has no noise inputs to turn off")
        return self

    @classmethod
    def default_for(cls, arch: Arch, num_styles: int, resolution: int) -> "ModelConfig":
        """A new model of ``arch``: its preset, for ``num_styles`` styles at ``resolution``
        (vanilla ignores the resolution: it is the classic 28×28 MLP pair)."""
        preset = ARCH_PRESETS[arch]
        fields = {"resolution": resolution, **preset.model, "arch": arch, "num_styles": num_styles}
        if arch == "vanilla":  # its one-hot style input is as wide as the style list
            fields.update(conditional=num_styles > 1, embed_dim=num_styles)
        return cls(**fields)


@dataclass(frozen=True)
class ArchPreset:
    """What a new model of one architecture starts from.

    ``model``: :class:`ModelConfig` fields of a new model; ``optim``: the optimiser,
    style-loss and mode-seeking values used where :class:`OptimSettings` leaves them unset (None);
    ``r1``: the R1 weight where ``r1_gamma`` is unset — 0, or StyleGAN2-ADA's heuristic
    ``0.0002·res²/global batch``; ``pack``: stylegan's discriminator packing where a
    worker's batch can hold a pack of every style (else 1)."""

    model: dict[str, Any]
    optim: dict[str, float]
    r1: Literal["off", "heuristic"] = "off"
    pack: int = 1


# The one table of per-architecture defaults (optimisers: DCGAN paper, StyleGAN2 paper).
# stylegan's model: no noise inputs (at this size G used them to speckle its images
# instead of drawing detail) and packs of 2 (docs/benchmarks.md, quality rows); its
# optimiser: mode seeking at weight 1 (the quality protocol's v4 tune half: every style
# keeps recall >= 0.3, where the default without it lost a style's variety).
ARCH_PRESETS: dict[str, ArchPreset] = {
    "stylegan": ArchPreset(
        model={"channels": 3, "z_dim": 128, "w_dim": 128, "mapping_layers": 4, "embed_dim": 64, "g_channels": 16,
               "d_channels": 16, "max_channels": 256, "noise_inputs": False, "bounded_output": True},
        optim={"lr_g": 0.0025, "lr_d": 0.0025, "beta1": 0.0, "beta2": 0.99, "style_loss": 1.0, "mode_seeking": 1.0},
        r1="heuristic", pack=2),
    "dcgan": ArchPreset(
        model={"channels": 3, "z_dim": 128},
        optim={"lr_g": 2e-4, "lr_d": 2e-4, "beta1": 0.5, "beta2": 0.999, "style_loss": 0.0, "mode_seeking": 0.0}),
    "vanilla": ArchPreset(  # the classic MLP pair: 100 → 256 → 512 → 1024 → 784 (28×28×1)
        model={"resolution": 28, "channels": 1, "z_dim": 100},
        optim={"lr_g": 2e-4, "lr_d": 2e-4, "beta1": 0.5, "beta2": 0.999, "style_loss": 0.0, "mode_seeking": 0.0}),
}


class ModelOverrides(_Strict):
    """A new model's architecture settings that differ from its preset (None: the preset's).
    Resume and fine-tuning keep the base model's: its weights fix them."""

    z_dim: int | None = Field(None, ge=1, le=4096, description="Width of the latent z.")
    embed_dim: int | None = Field(None, ge=1, description="Width of the style-label embedding.")
    g_channels: int | None = Field(None, ge=4, description="Width of the last generator block.")
    d_channels: int | None = Field(None, ge=4, description="Width of the first discriminator block.")
    max_channels: int | None = Field(None, ge=4, description="Cap on any block's width.")
    w_dim: int | None = Field(None, ge=8, le=2048, description="stylegan: width of the intermediate latent W.")
    mapping_layers: int | None = Field(None, ge=1, le=16, description="stylegan: depth of the mapping network.")
    pack: int | None = Field(None, ge=1, le=8, description="stylegan: images of one style D judges at once "
                             "(PacGAN); default 2, or 1 where a batch cannot hold two of every style.")
    noise_inputs: bool | None = Field(None, description="stylegan: per-pixel noise inputs in G (default off).")
    bounded_output: bool | None = Field(None, description="stylegan: tanh on G's image (default on).")


class OptimSettings(_Strict):
    """The game's losses, regularisers and optimisers (None: the architecture's preset)."""

    lr_g: float | None = Field(None, gt=0, description="G's Adam learning rate (dcgan, vanilla 2e-4; stylegan 0.0025).")
    lr_d: float | None = Field(None, gt=0, description="D's Adam learning rate (as lr_g by default).")
    beta1: float | None = Field(None, ge=0, lt=1, description="Adam β1 (dcgan, vanilla 0.5; stylegan 0).")
    beta2: float | None = Field(None, ge=0, lt=1, description="Adam β2 (dcgan, vanilla 0.999; stylegan 0.99).")
    ema_decay: float = Field(0.999, ge=0, lt=1, description="Per-step decay of the EMA generator that is "
                             "saved and served (0 = save the trained G itself).")
    loss: Loss = Field("non_saturating", description="non_saturating: the minimax game with G maximising "
                       "log D(G(z)); hinge: the hinge form (Lim & Ye 2017; Miyato et al. 2018).")
    r1_gamma: float | None = Field(None, ge=0, description="R1 penalty weight on real images (0 = off; "
                                   "default 0 for dcgan/vanilla, 0.0002·res²/global batch for stylegan).")
    r1_every: int = Field(16, ge=1, description="Lazy regularisation: apply R1 every N steps, scaled by N.")
    augment: Augment = Field("none", description="diffaugment: differentiable augmentation of reals and fakes "
                             "for D (Zhao et al. 2020), for small datasets.")
    augment_policy: str = Field("color,translation,cutout", pattern=r"^(color|translation|cutout)(,(color|translation|cutout))*$",
                                description="DiffAugment's transforms, comma-separated.")
    style_balance: StyleBalance = Field(
        "none", description="How much each style counts in the losses when styles differ in size: none (in "
        "proportion to its images), sqrt (to the square root of its images), uniform (every style alike); "
        "importance weights on every term of a sample (ray_gan/train/balance.py). Default none: the quality "
        "protocol's tune half scored it best (docs/benchmarks.md).")
    style_loss: float | None = Field(None, ge=0, description="Weight of an auxiliary style-classification "
                                     "loss (AC-GAN, Odena et al. 2017); conditional stylegan only: default 1 "
                                     "there, 0 = off.")
    mixing_prob: float = Field(0.9, ge=0, le=1, description="stylegan: share of G steps with style mixing.")
    mode_seeking: float | None = Field(None, ge=0, description="Weight of the mode-seeking term (MSGAN, Mao "
                                       "et al. 2019): G is penalised by 1/(d(G(z1,s), G(z2,s)) / d(z1, z2)) over "
                                       "pairs of fakes of one style, against a style collapsing to a few images. "
                                       "Default: the architecture's (stylegan 1, dcgan and vanilla 0 = off).")
    amp: bool = Field(True, description="bf16 autocast on GPU (ignored on CPU).")
    channels_last: bool = Field(True, description="NHWC memory format for the conv nets (no effect on vanilla).")
    compile: bool = Field(False, description="torch.compile G's and D's forward passes (a one-off compile; "
                          "docs/benchmarks.md: measure before using it).")


class ScalingSettings(_Strict):
    """How the run is spread over Ray Train workers."""

    workers: int = Field(2, ge=1, description="Ray Train workers (data parallel).")
    cpus_per_worker: float = Field(1.0, gt=0.0)
    gpus_per_worker: float = Field(0.0, ge=0.0)
    batch_size: int = Field(16, ge=2, description="Images per worker per step. 16 is the protocol's choice for a "
                            "CPU time budget (docs/benchmarks.md: many small steps beat few large ones there); "
                            "on GPUs raise it.")


class RunSettings(_Strict):
    """How long the run goes, what it writes, and its seed."""

    default_steps: ClassVar[int] = 2000

    steps: int | None = Field(None, ge=1, description="Total optimisation steps (counted across resumes); a cap "
                              "when a time budget is given, else 2000 when unset.")
    time_budget_s: float | None = Field(None, gt=0, description="Stop (with a checkpoint) after this many seconds; "
                                        "alone, it sets the run's length (no step cap).",
                                        json_schema_extra={"cli": "--time-budget"})
    checkpoint_every: int = Field(500, ge=1, description="Steps between checkpoints.")
    log_every: int = Field(25, ge=1, description="Steps between progress reports.")
    val_batches: int = Field(4, ge=1, description="Validation batches for D's val loss at each checkpoint.")
    max_loss: float = Field(100.0, gt=0, description="A loss above this (or NaN/inf) is divergence.")
    seed: int = Field(0, ge=0)
    resume: bool = Field(False, description="Continue from the latest checkpoint in out.")

    @property
    def step_limit(self) -> int | None:
        """The step the run stops at: ``steps`` when given; none (the time budget ends the
        run) when only a time budget is given; else the default."""
        if self.steps is not None:
            return self.steps
        return None if self.time_budget_s is not None else self.default_steps


class TrainConfig(_Strict):
    """``ray-gan train``: data-parallel GAN training with Ray Train, by concern:
    ``model`` (a new model's architecture overrides), ``optim``, ``scaling``, ``run``."""

    dataset: str = Field(description="Prepared dataset URI.")
    out: str = Field(description="Model URI.")
    arch: Arch = Field("stylegan", description="stylegan, dcgan, or vanilla (the classic MLP GAN).")
    init_from: str | None = Field(None, description="Fine-tune: start from this trained model's weights "
                                  "(its architecture and size; style rows matched by name).")
    freeze_d: int = Field(0, ge=0, description="Fine-tune (FreezeD, Mo et al. 2020): hold D's first N "
                          "input-side layers at the base's weights.")
    model: ModelOverrides = Field(default_factory=ModelOverrides)
    optim: OptimSettings = Field(default_factory=OptimSettings)
    scaling: ScalingSettings = Field(default_factory=ScalingSettings)
    run: RunSettings = Field(default_factory=RunSettings)

    @model_validator(mode="after")
    def _check(self) -> "TrainConfig":
        if self.freeze_d and not self.init_from:
            raise ValueError("freeze_d holds a base model's discriminator layers: it is for fine-tuning "
                             "(ray-gan finetune), which sets init_from")
        return self

    def new_model_config(self, num_styles: int, resolution: int, grey: bool = False) -> ModelConfig:
        """The model a fresh run of this config builds: the preset, the overrides, and
        stylegan's packing where unset (packs of the preset's size where a worker's batch
        holds one of every style, else 1); one channel for a grey dataset (``grey``)."""
        base = ModelConfig.default_for(self.arch, num_styles=num_styles, resolution=resolution)
        updates = self.model.model_dump(exclude_none=True)
        if grey:
            updates["channels"] = 1
        preset_pack = ARCH_PRESETS[self.arch].pack
        if "pack" not in updates and preset_pack > 1:
            fits = self.scaling.batch_size >= min_batch_for_packs(preset_pack, num_styles)
            updates["pack"] = preset_pack if fits else 1
        return ModelConfig.model_validate({**base.model_dump(), **updates})  # checks the overrides too

    def hyperparameters(self, mcfg: ModelConfig, world: int) -> dict[str, float]:
        """The optimiser settings, R1, style-loss and mode-seeking weights and EMA decay a run of ``mcfg``
        on ``world`` workers uses (config, else the preset); recorded in model.json."""
        preset = ARCH_PRESETS[mcfg.arch]
        o = self.optim
        out = {k: (getattr(o, k) if getattr(o, k) is not None else v) for k, v in preset.optim.items()}
        out["ema_decay"] = o.ema_decay
        if out["style_loss"] and (mcfg.arch != "stylegan" or not mcfg.conditional or mcfg.num_styles < 2):
            if o.style_loss:
                raise ValueError("style_loss needs a conditional stylegan with two or more styles "
                                 f"(got arch={mcfg.arch}, {mcfg.num_styles} style(s))")
            out["style_loss"] = 0.0
        needed = min_batch_for_packs(mcfg.pack, mcfg.num_styles)
        if mcfg.pack > 1 and self.scaling.batch_size < needed:
            raise ValueError(f"batch_size {self.scaling.batch_size} is too small for discriminator packs of "
                             f"{mcfg.pack} over {mcfg.num_styles} styles: raise it to at least {needed} (a new "
                             "model can also take a smaller --pack)")
        if o.r1_gamma is not None:
            out["r1_gamma"] = o.r1_gamma
        elif preset.r1 == "heuristic":  # StyleGAN2-ADA: γ = 0.0002·res²/global batch
            out["r1_gamma"] = 0.0002 * mcfg.resolution**2 / (self.scaling.batch_size * world)
        else:
            out["r1_gamma"] = 0.0
        return out


class FinetuneOptim(OptimSettings):
    """A fine-tuning run's optimisation: as training's, with DiffAugment on (small data)."""

    augment: Augment = Field("diffaugment", description="DiffAugment is on by default: a new style's data is small.")


class FinetuneRun(RunSettings):
    """A fine-tuning run's length: shorter than training from scratch."""

    default_steps: ClassVar[int] = 1000

    steps: int | None = Field(None, ge=1, description="Total optimisation steps (counted across resumes); a cap "
                              "when a time budget is given, else 1000 when unset.")
    checkpoint_every: int = Field(250, ge=1, description="Steps between checkpoints.")


class FinetuneConfig(_Strict):
    """``ray-gan finetune``: adapt a trained model to a new style's dataset (a few hundred
    images is enough), starting from its EMA generator and its discriminator. A training
    run (:meth:`train_config`) whose architecture is the base's."""

    base: str = Field(description="Trained model URI.")
    data: str = Field(description="Prepared dataset of the new style(s).")
    out: str = Field(description="Model URI of the fine-tuned model.")
    freeze_d: int = Field(0, ge=0, description="FreezeD: hold the base discriminator's first N input-side layers.")
    optim: FinetuneOptim = Field(default_factory=FinetuneOptim)
    scaling: ScalingSettings = Field(default_factory=ScalingSettings)
    run: FinetuneRun = Field(default_factory=FinetuneRun)

    def train_config(self) -> TrainConfig:
        return TrainConfig(dataset=self.data, out=self.out, init_from=self.base, freeze_d=self.freeze_d,
                           optim=self.optim.model_dump(), scaling=self.scaling.model_dump(),
                           run={**self.run.model_dump(), "steps": self.run.step_limit})


# Seeds go through torch.Generator.manual_seed and the batch manifest's int64 columns:
# every seed, including an image's seed plus a mix.seed_offset, stays below 2**63.
SEED_MAX = 2**62
MAX_EDITS = 32
MAX_EDIT_STRENGTH = 100.0
MODEL_NAME_RE = r"^[a-z0-9][a-z0-9._-]{0,62}$"
SHA256_RE = r"^[0-9a-f]{64}$"
# Bounded, patterned strings and bounded finite numbers of an HTTP body (the OpenAPI
# document states them, so a schema-driven client or fuzzer sees the real rules).
StyleName = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]+$")]
EditName = Annotated[str, StringConstraints(pattern=_ID_RE.pattern)]
EditStrength = Annotated[float, Field(ge=-MAX_EDIT_STRENGTH, le=MAX_EDIT_STRENGTH, allow_inf_nan=False)]
TruncationValue = Annotated[float, Field(ge=0.0, le=2.0, allow_inf_nan=False)]


class MixSpec(_Strict):
    """Style mixing (stylegan): the layers in ``layers`` take their style input from
    another latent — seed ``seed`` (or the image's seed + ``seed_offset``) in style
    ``style`` (default: the image's own style)."""

    layers: str = Field("coarse", pattern=r"^(coarse|fine|all|(-?\d{1,4})?:(-?\d{1,4})?)$",
                        description="coarse, fine, all, or a slice A:B of the style inputs")
    style: StyleName | None = None
    seed: int | None = Field(None, ge=0, le=SEED_MAX)
    seed_offset: int = Field(1_000_000_007, ge=0, le=2**61)


Truncation = float | dict[str, float]


def check_truncation(v: Truncation) -> Truncation:
    """One truncation, or one per style name: each between 0 and 2."""
    values = v.values() if isinstance(v, dict) else [v]
    if any(not 0.0 <= t <= 2.0 for t in values):
        raise ValueError("truncation must be between 0 and 2")
    return v


def check_edit_names(names) -> None:
    """Edit direction names: 1-128 letters, digits, '.', '_' or '-'."""
    bad = [name for name in names if not isinstance(name, str) or not _ID_RE.match(name)]
    if bad:
        raise ValueError(f"edit direction names must be 1-128 chars of letters, digits, '.', '_' or '-': {bad}")


def check_edits(v: dict[str, float]) -> dict[str, float]:
    """Edit direction name → strength (σ): at most :data:`MAX_EDITS` names
    (:func:`check_edit_names`); finite strengths of at most :data:`MAX_EDIT_STRENGTH`."""
    if len(v) > MAX_EDITS:
        raise ValueError(f"at most {MAX_EDITS} edits, got {len(v)}")
    check_edit_names(v)
    bad = [name for name, t in v.items() if not -MAX_EDIT_STRENGTH <= t <= MAX_EDIT_STRENGTH]  # NaN fails too
    if bad:
        raise ValueError(f"edit strengths must be finite numbers between {-MAX_EDIT_STRENGTH:g} and "
                         f"{MAX_EDIT_STRENGTH:g}: {', '.join(f'{n}={v[n]}' for n in bad)}")
    return v


class VerifyConfig(_Strict):
    """``ray-gan verify``: audit a batch output (or a served request's output) against its manifest."""

    output: str = Field(description="The job's output URI (where job.json and manifest/ are).")
    workers: int = Field(16, ge=1, le=256, description="Threads reading and hashing image objects.")
    max_problems: int = Field(200, ge=1, le=100_000, description="Problems listed (the rest are counted).")


class NearDuplicateGate(_Strict):
    """Near-duplicate suppression: a candidate whose 64-bit perceptual hash (DCT pHash) is
    within ``max_hamming`` bits of an image already accepted in the same work unit, or
    whose pixels differ from it by at most ``max_rms``, is replaced. (Across units the run's hashes are compared afterwards, in the contact sheet:
    a rule applied across units would make an image depend on which unit ran first.)"""

    max_hamming: int = Field(4, ge=0, le=32, description="Largest pHash Hamming distance that is a near-duplicate.")
    max_rms: float = Field(0.02, ge=0.0, le=0.5, description="Largest root-mean-square pixel difference (values "
                           "in [0, 1], at most 32×32) that is a near-duplicate: catches flat, low-contrast "
                           "images whose pHash bits are noise.")


class TrainingCopyGate(_Strict):
    """Rejection of near-copies of training images by the memorisation audit's rule: the
    relative distance to the nearest training image (pixels, at most 32×32) at or below the
    ``quantile`` of held-out val images' (per style where the style has val images)."""

    quantile: float = Field(0.05, gt=0.0, lt=0.5, description="Calibration quantile of val → train scores.")
    relative_k: int = Field(50, ge=0, le=1000, description="Relative distance over the k nearest (0: absolute).")


class StyleConfidenceGate(_Strict):
    """A minimum style confidence: the evaluation's style classifier (trained on the train
    split when the job starts, seeded; its val accuracy goes in job.json) must give the
    asked-for style at least ``min_confidence``."""

    min_confidence: float = Field(gt=0.0, lt=1.0)
    classifier_steps: int = Field(300, ge=10, le=100_000)


class BatchGates(_Strict):
    """Quality gates of a batch job, each optional. A rejected candidate is replaced by the
    variant's next seed (``seed_base + variant + attempt · variants_per_style``), so the run
    still delivers the requested count; each manifest row lists the seeds it skipped and why."""

    near_duplicates: NearDuplicateGate | None = None
    training_copies: TrainingCopyGate | None = None
    style_confidence: StyleConfidenceGate | None = None
    data: str | None = Field(None, description="Prepared dataset the training-data gates use; default: the one "
                                               "the model was trained on (model.json).")
    max_train: int = Field(10_000, ge=2, le=200_000, description="Training images the gates compare with "
                                                                 "(evenly spaced).")
    max_attempts: int = Field(16, ge=1, le=1000, description="Seeds tried per variant before the job fails.")

    @property
    def any(self) -> bool:
        return any(g is not None for g in (self.near_duplicates, self.training_copies, self.style_confidence))

    @property
    def needs_data(self) -> bool:
        return self.training_copies is not None or self.style_confidence is not None


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
    layout: Literal["files", "tar"] = Field(
        "files", description="How images are stored: 'files', one object per image (OUT/images/<style>/); "
        "'tar', one uncompressed tar per work unit (OUT/shards/<style>/), each image's byte range in its manifest "
        "row: one PUT per chunk instead of one per image, for small images, whose request costs more than rendering "
        "them.")
    chunk_size: int | None = Field(
        None, ge=1, le=100_000, description="Images per work unit and manifest part. Default: 256 for models up to "
        "64 px, where a unit's requests and manifest part cost more than a few renders; 64 above, which bounds the "
        "bytes a unit holds, and with the near-duplicate gate, which compares each image with its unit's. A re-run "
        "of a job keeps the job's chunk size.")
    replicas: int = Field(2, ge=1, description="Generator actors in the Ray Data actor pool.")
    gpus_per_replica: float = Field(0.0, ge=0.0)
    cpus_per_replica: float = Field(1.0, gt=0.0)
    write_threads: int = Field(4, ge=1, le=64, description="Threads per replica that encode, hash and write "
                               "images while the next micro-batch renders.")
    gates: BatchGates | None = Field(None, description="Quality gates (near-duplicates, training copies, style "
                                                       "confidence); none by default.")

    @field_validator("job_id")
    @classmethod
    def _job_id(cls, v: str) -> str:
        if not _ID_RE.match(v):
            raise ValueError("job_id must be 1-128 chars of letters, digits, '.', '_' or '-'")
        return v

    _truncation = field_validator("truncation")(check_truncation)
    _edits = field_validator("edits")(check_edits)

    @model_validator(mode="after")
    def _seeds_fit(self) -> "BatchJobSpec":
        attempts = self.gates.max_attempts if self.gates is not None and self.gates.any else 1
        if self.seed_base + attempts * self.variants_per_style > SEED_MAX:
            raise ValueError(f"seed_base + max_attempts × variants_per_style must be at most {SEED_MAX}")
        return self

    def truncation_for(self, style: str) -> float:
        return self.truncation.get(style, 1.0) if isinstance(self.truncation, dict) else self.truncation

    def default_chunk_size(self, resolution: int) -> int:
        """Images per work unit when the spec leaves ``chunk_size`` unset, for a model of
        ``resolution`` px (docs/benchmarks.md, 2026-12-07): 256 up to 64 px, 64 above; 64
        with the near-duplicate gate, whose cost grows with the square of a unit's size."""
        near_duplicates = self.gates is not None and self.gates.near_duplicates is not None
        return 256 if resolution <= 64 and not near_duplicates else 64

    def seed(self, variant: int, attempt: int = 0) -> int:
        """Seed of ``variant``'s candidate number ``attempt`` (0: the variant's own seed;
        later ones replace candidates a quality gate rejected)."""
        return self.seed_base + variant + attempt * self.variants_per_style


class VariantsRequest(_Strict):
    """Body of ``POST /v1/variants``."""

    model: str | None = Field(None, pattern=MODEL_NAME_RE, description="Served model (GET /v1/models); "
                              "default: the app's default model.")
    styles: list[StyleName] = Field(min_length=1, max_length=64)
    n: int = Field(4, ge=1, le=64, description="Images per style.")
    seed: int = Field(0, ge=0, le=SEED_MAX)
    truncation: TruncationValue | Annotated[dict[StyleName, TruncationValue], Field(max_length=64)] = Field(
        1.0, description="One value, or one per style name (others get 1.0).")
    mix: MixSpec | None = None
    edits: dict[EditName, EditStrength] = Field(default_factory=dict, max_length=MAX_EDITS,
                                                description="Edit direction name → strength (σ).")
    format: Literal["png", "webp"] = Field("png", description="Image encoding (both lossless).")
    output: str | None = Field(None, min_length=1, max_length=1024, pattern=r"^[^\x00-\x20\x7f]+$",
                               description="Write the images under this storage prefix (one the server allows) "
                                           "and answer with their URIs and manifest rows instead of inline bytes.")

    _truncation = field_validator("truncation")(check_truncation)
    _edits = field_validator("edits")(check_edits)

    def truncation_for(self, style: str) -> float:
        return self.truncation.get(style, 1.0) if isinstance(self.truncation, dict) else self.truncation


EVAL_STYLE_SEED_STRIDE = 2**20  # evaluation's render seeds: style k's images start at k·2**20


class EvalConfig(_Strict):
    """Settings of one evaluation (unknown fields are errors)."""

    model: str = Field(description="Model URI (local path or s3://).")
    data: str = Field(description="Prepared dataset URI.")
    split: str = Field("val", description="Real images to compare with: val (default) or train.")
    n_per_style: int = Field(1000, ge=2, lt=EVAL_STYLE_SEED_STRIDE,
                             description="At most this many real images per style; as many are generated.")
    truncation: float = Field(1.0, ge=0.0, le=2.0)
    seed: int = Field(0, ge=0, lt=256, description="Seeds rendering, KID subsets and the style classifier.")
    extractor: ExtractorName = "auto"
    inception_weights: str | None = None
    device: str | None = Field(None, description="cpu or cuda (default: cuda if available).")
    max_train: int = Field(20_000, ge=2, description="Training images for the classifier and the memorisation audit.")
    kid_subsets: int = Field(100, ge=1)
    kid_subset_size: int = Field(1000, ge=2)
    pr_k: int = Field(3, ge=1, description="k of the k-NN radii for precision/recall (paper: 3).")
    dc_k: int = Field(5, ge=1, description="k for density/coverage (paper: 5).")
    memorisation_quantile: float = Field(0.05, gt=0.0, lt=0.5)
    memorisation_flag_ratio: float = Field(2.0, ge=1.0)
    memorisation_relative_k: int = Field(50, ge=0, description="Near-copy measure: distance to the nearest "
                                         "training image over the mean to the k nearest (0: absolute distance).")
    worst_pairs: int = Field(16, ge=1, le=256)
    classifier_steps: int = Field(300, ge=1, description="Optimisation steps (batches of 128) of the style classifier.")
    detector_steps: int = Field(200, ge=0, description="Optimisation steps (batches of 128) of the real-vs-generated "
                                "detector (detectability); 0 skips it.")


class ServeModel(_Strict):
    """One model the endpoint serves, pinned when the app is deployed: to checkpoint ``step``
    (default: the model's latest at deploy time) and its EMA weights' sha256 (checked)."""

    name: str = Field(pattern=MODEL_NAME_RE, description="Name a request uses (`\"model\": NAME`).")
    uri: str = Field(min_length=1, description="Model URI (local path or s3://).")
    step: int | None = Field(None, ge=0, description="Checkpoint to serve (default: the latest when deployed).")
    weights_sha256: str | None = Field(None, pattern=SHA256_RE,
                                       description="Expected sha256 of the EMA weights; deploy fails if they differ.")

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, v: Any) -> Any:
        """``NAME=URI`` or ``NAME=URI@STEP`` (the command line's ``--models``)."""
        if isinstance(v, str):
            name, sep, rest = v.partition("=")
            if not sep:
                raise ValueError(f"a model is NAME=URI or NAME=URI@STEP, not {v!r}")
            uri, at, step = rest.rpartition("@") if re.fullmatch(r".*@\d+", rest) else (rest, "", "")
            return {"name": name, "uri": uri, **({"step": int(step)} if at else {})}
        return v


class ServeReplicas(_Strict):
    """Replicas and resources of the two deployments."""

    num_replicas: int = Field(1, ge=1, le=1024, description="StyleGenerator replicas per model (without autoscaling).",
                              json_schema_extra={"cli": "--replicas"})
    autoscaling: bool = Field(False, description="Let Serve scale StyleGenerator replicas between min and max.")
    min_replicas: int = Field(1, ge=0, le=1024)
    max_replicas: int = Field(4, ge=1, le=1024)
    target_ongoing_requests: float = Field(
        16.0, gt=0, le=4096, description="Sub-requests per StyleGenerator replica that autoscaling aims for.")
    num_gpus: float = Field(0.0, ge=0.0, le=8.0, description="GPUs per StyleGenerator replica.",
                            json_schema_extra={"cli": "--gpus-per-replica"})
    num_cpus: float = Field(1.0, gt=0.0, le=256.0, description="CPUs per StyleGenerator replica.",
                            json_schema_extra={"cli": "--cpus-per-replica"})
    ingress_replicas: int = Field(1, ge=1, le=256, description="VariantsAPI (HTTP ingress) replicas.")
    ingress_cpus: float = Field(0.5, gt=0.0, le=64.0, description="CPUs per VariantsAPI replica.")

    @model_validator(mode="after")
    def _range(self) -> "ServeReplicas":
        if self.autoscaling and self.min_replicas > self.max_replicas:
            raise ValueError(f"min_replicas {self.min_replicas} > max_replicas {self.max_replicas}")
        return self


class ServeBatching(_Strict):
    """How a StyleGenerator replica merges callers' images into forward passes."""

    batching: bool = Field(True, description="Merge the sub-requests that wait while a forward pass runs into the "
                           "next one (off: one sub-request per forward pass).")
    max_batch_size: int = Field(64, ge=1, le=4096, description="Images per batched forward pass (at most); "
                                "also the most images of one sub-request.")
    batch_wait_timeout_s: float = Field(0.0, ge=0.0, le=5.0, description="How long an idle replica waits for a "
                                        "batch to fill (0: not at all; under load batches fill while the "
                                        "previous one renders).")
    render_batch: int = Field(64, ge=16, le=1024, multiple_of=16,
                              description="Rows per generator call (a multiple of 16; images' bytes do not depend on it).")
    encode_threads: int = Field(2, ge=1, le=64, description="Threads per replica that PNG/WebP-encode images.")


class ServeLimits(_Strict):
    """Backpressure: bounded queues, request size and time; overload gets 503 with Retry-After."""

    max_images_per_request: int = Field(256, ge=1, le=4096)
    max_pending_images: int = Field(
        2048, ge=1, le=1_000_000,
        description="Images in flight per ingress replica; requests beyond it get 503 at once.")
    ingress_max_ongoing_requests: int = Field(64, ge=1, le=100_000,
                                              description="Requests one VariantsAPI replica works on at once.")
    ingress_max_queued_requests: int = Field(16, ge=1, le=100_000,
                                             description="Requests queued for the ingress (in Serve's proxy); "
                                                         "beyond it the proxy answers 503 at once.")
    max_ongoing_requests: int = Field(256, ge=1, le=100_000,
                                      description="Sub-requests one StyleGenerator replica holds (its batch queue).")
    max_queued_requests: int = Field(512, ge=1, le=100_000,
                                     description="Sub-requests queued per caller for StyleGenerator; beyond it 503.")
    request_timeout_s: float = Field(30.0, gt=0.0, le=3600.0, description="A request not answered by then gets 503.")
    retry_after_s: int = Field(1, ge=1, le=3600, description="Retry-After of a 503.")


class ServeAuth(_Strict):
    """Bearer tokens. Configured tokens: every /v1 request needs ``Authorization: Bearer TOKEN``."""

    token_env: str | None = Field("RAY_GAN_API_TOKENS", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$",
                                  description="Env var holding tokens (comma or newline separated).")
    token_file: str | None = Field(None, max_length=4096,
                                   description="File holding tokens, one per line (a mounted Secret).")
    insecure: bool = Field(False, description="Allow a non-loopback host with no token configured.")


class ServeConfig(_Strict):
    """``ray-gan serve`` and the Helm chart's RayService: the HTTP endpoint (Ray Serve)."""

    model: str | None = Field(None, description="Model URI: shorthand for models [{name: default, uri: MODEL}].")
    models: list[ServeModel] = Field(default_factory=list, max_length=32,
                                     description="Models served (NAME=URI[@STEP] on the command line).")
    default_model: str | None = Field(None, pattern=MODEL_NAME_RE,
                                      description="Model of a request that names none (default: the first).")
    host: str = Field("127.0.0.1", max_length=253, description="Address to bind; loopback by default.")
    port: int = Field(8000, ge=1, le=65535)
    ingress: Literal["direct", "proxy"] = Field(
        "direct", description="How HTTP reaches the ingress. direct: Ray Serve's throughput-optimized mode: the "
        "ingress replica answers HTTP on port itself and calls the generators over gRPC (Ray's HTTP proxy moves "
        "to a free port; on KubeRay the chart puts HAProxy on port in front of the ingress replicas). proxy: "
        "Ray Serve's HTTP proxy on port forwards every request (slower).")
    access_log: bool = Field(True, description="Log every request in the replicas' logs (Ray Serve access log); "
                             "metrics count requests either way.")
    output_prefixes: list[str] = Field(default_factory=list, max_length=64,
                                       description="Storage prefixes a request's \"output\" may write under "
                                                   "(none: images only inline).")
    replicas: ServeReplicas = Field(default_factory=ServeReplicas)
    batching: ServeBatching = Field(default_factory=ServeBatching)
    limits: ServeLimits = Field(default_factory=ServeLimits)
    auth: ServeAuth = Field(default_factory=ServeAuth)

    _lists = field_validator("models", "output_prefixes", mode="before")(lambda v: comma_list(v))

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        """``model: URI`` → a model named ``default`` (kept out of the validated config)."""
        if isinstance(data, dict) and data.get("model") is not None:
            data = dict(data)
            models = list(data.get("models") or [])
            if isinstance(models, str):
                models = comma_list(models)
            data["models"] = [{"name": "default", "uri": data.pop("model")}, *models]
        return data

    @model_validator(mode="after")
    def _check(self) -> "ServeConfig":
        if not self.models:
            raise ValueError("name a model: model URI, or models")
        names = [m.name for m in self.models]
        if len(set(names)) != len(names):
            raise ValueError(f"model names must be unique: {names}")
        if self.default_model is not None and self.default_model not in names:
            raise ValueError(f"default_model {self.default_model!r} is not one of {names}")
        if self.limits.max_pending_images < self.limits.max_images_per_request:
            raise ValueError(f"limits.max_pending_images ({self.limits.max_pending_images}) must hold the largest "
                             f"request (max_images_per_request {self.limits.max_images_per_request})")
        return self

    @property
    def model_names(self) -> list[str]:
        return [m.name for m in self.models]

    @property
    def default(self) -> str:
        return self.default_model or self.models[0].name


# ---- the other commands' settings (the CLI's flags come from these) -----------------------


class DemoDataConfig(_Strict):
    """``ray-gan demo-data``: the built-in procedural multi-style image set."""

    dst: str = Field(description="Output folder or s3:// prefix.")
    per_style: int = Field(300, ge=1, le=100_000, description="Images per style.")
    size: int = Field(64, ge=8, le=1024, description="Image side in pixels.")
    seed: int = Field(0, ge=0)


class DemoConfig(_Strict):
    """``ray-gan demo``: demo-data → prepare → train → batch, all local."""

    dir: str = Field("ray-gan-demo", description="Working folder.")
    train_seconds: float = Field(300.0, gt=0, description="Training time budget in seconds.")


def comma_list(v: Any) -> Any:
    """``"a,b"`` or ``["a,b", "c"]`` (a repeated flag) → ``["a", "b", "c"]``; other values as they are."""
    if isinstance(v, str):
        v = [v]
    if isinstance(v, list) and all(isinstance(x, str) for x in v):
        return [part.strip() for x in v for part in x.split(",") if part.strip()]
    return v


def _pairs(items: list[str], what: str) -> dict[str, float]:
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"{what} expects NAME=VALUE, got {item!r}")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            raise ValueError(f"{what}: {value!r} is not a number (in {item!r})") from None
    return out


def parse_truncation(v: Any) -> Any:
    """The command line's truncation: ``"0.7"``, or per style ``"flat=0.5,outline=0.8"``."""
    if isinstance(v, str):
        return _pairs(comma_list(v), "truncation") if "=" in v else v
    return v


def parse_edits(v: Any) -> Any:
    """The command line's edits: ``["pc0=2", "thickness=-1"]`` (``--edit`` repeated)."""
    if isinstance(v, (str, list)):
        return _pairs(comma_list(v), "--edit")
    return v


class _FromModel(_Strict):
    model: str = Field(description="Model URI.")


class _Rendering(_FromModel):
    """A command that renders images of a model into a folder, in one process."""

    out: str = Field(description="Output folder or s3:// prefix.")
    device: str | None = Field(None, description="cpu or cuda (default: cuda if available).")


class GenerateConfig(_Rendering):
    """``ray-gan generate``: a few images and a grid, in one process (no Ray)."""

    styles: list[str] | None = Field(None, description="Style names, comma-separated (default: all).")
    n: int = Field(8, ge=1, le=10_000, description="Images per style.")
    seed: int = Field(0, ge=0, le=SEED_MAX, description="Seed of the first image; then seed+1, …")
    truncation: Truncation = Field(1.0, description="0..2, or per style: flat=0.5,outline=0.8 (others 1.0).")
    mix_layers: str | None = Field(None, description="Style mixing (stylegan): coarse, fine, all or A:B.")
    mix_seed: int | None = Field(None, ge=0, le=SEED_MAX, description="Seed of the mixed layers (default seed+offset).")
    mix_style: str | None = Field(None, description="Style of the mixed layers (default the image's).")
    edits: dict[str, float] = Field(default_factory=dict, description="Edit direction NAME=STRENGTH (repeatable).",
                                    json_schema_extra={"cli": "--edit"})
    format: ImageFormat = Field("png", description="Image format.")

    _styles = field_validator("styles", mode="before")(comma_list)
    _truncation = field_validator("truncation", mode="before")(parse_truncation)
    _edits = field_validator("edits", mode="before")(parse_edits)

    @field_validator("truncation")
    @classmethod
    def _truncation_range(cls, v: Truncation) -> Truncation:
        return check_truncation(v)

    @field_validator("edits")
    @classmethod
    def _edits_bounded(cls, v: dict[str, float]) -> dict[str, float]:
        return check_edits(v)


class InterpolateConfig(_Rendering):
    """``ray-gan interpolate``: a strip PNG and a looping GIF/WebP between two (style, seed) points."""

    start: str = Field(description="STYLE:SEED")
    end: str = Field(description="STYLE:SEED")
    steps: int = Field(8, ge=2, le=1000, description="Frames, both ends included.")
    truncation: float = Field(1.0, ge=0.0, le=2.0)
    frame_ms: int = Field(120, ge=10, le=10_000, description="Milliseconds per animation frame.")


class DirectionsConfig(_FromModel):
    """``ray-gan directions``: edit directions in W by PCA (GANSpace), stored with the model."""

    components: int = Field(8, ge=1, le=512, description="Directions to keep.")
    samples: int = Field(20_000, ge=2, description="W latents the PCA is fitted on.")
    seed: int = Field(0, ge=0)
    rename: str | None = Field(None, description="Rename stored directions instead: pc0=thickness,pc1=slant.")


class ProjectConfig(_Rendering):
    """``ray-gan project``: invert a real image into the latent space; re-render it in every style."""

    image: str = Field(description="Image file (local path or s3://).")
    style: str | None = Field(None, description="The image's style (default: the best-fitting style).")
    steps: int = Field(300, ge=1, description="Optimisation steps of the z search.")
    restarts: int = Field(8, ge=1, description="Random starts of the z search.")
    refine_steps: int = Field(100, ge=0, description="stylegan: then refine the fit in W for this many steps "
                              "(0 = z only).")
    seed: int = Field(0, ge=0)


class BlendConfig(_Strict):
    """``ray-gan blend``: interpolate or swap layers between two compatible generators."""

    a: str = Field(description="Model A's URI.")
    b: str = Field(description="Model B's URI.")
    out: str = Field(description="Output model URI.")
    alpha: float = Field(0.5, ge=0.0, le=1.0, description="0 = A, 1 = B (in the selected layers).")
    layers: list[str] | None = Field(None, description="Comma-separated: mapping, 4, 8, …, coarse, fine, all "
                                     "(default all).")
    styles_from: Literal["a", "b"] = Field("a", description="Which parent's style tables and names the blend takes.")

    _layers = field_validator("layers", mode="before")(comma_list)


class ExportConfig(_FromModel):
    """``ray-gan export``: the generator as an ONNX graph."""

    format: Literal["onnx"] = Field("onnx", description="Export format.")
    out: str | None = Field(None, description="Output folder (default MODEL/export/onnx).")
