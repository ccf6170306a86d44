"""The evaluation report: typed result models (→ ``report.json``) and ``report.html``.

Everything but :class:`RunInfo` (timestamps, stage timings, versions) is a deterministic
function of the inputs, so two reports of the same model, data and settings differ only
under ``run``.
"""

from __future__ import annotations

import html
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ray_gan.html import CSS, fmt, img, table

REPORT_SCHEMA_VERSION = 1


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ExtractorInfo(_Model):
    name: str
    dim: int
    input_size: int
    fingerprint: str  # sha256 of the extractor's weights: equal fingerprints = comparable feature spaces
    description: str
    comparable_with_published_fid: bool


class KIDResult(_Model):
    mean: float
    std: float
    subsets: int
    subset_size: int


class StyleResult(_Model):
    style: str
    n_real: int  # real images used (≤ n_per_style)
    n_generated: int  # = n_real
    available_real: int  # images of this style in the split
    fid: float | None  # intra-class FID (generated vs real of this style)
    diversity_real: float | None  # mean pairwise feature distance
    diversity_generated: float | None
    diversity_ratio: float | None  # generated / real (≈ 1 good; ≪ 1 mode collapse)
    style_accuracy: float | None  # share of this style's generated images classified as this style
    # share of this style's generated images the classifier assigns to each of the model's styles (a row of the
    # confusion matrix: where the misses go); empty in reports written before it was added
    classified_as: dict[str, float] = Field(default_factory=dict)
    classifier_val_accuracy: float | None  # the classifier on real val images of this style
    near_copy_share: float  # pixel-space memorisation audit, this style's generated images
    # where this style's FID and style accuracy sit: 0 at the more flattering floor, 1 at real train images
    fid_position: float | None = None  # on a log scale (evaluate/calibration.py)
    style_accuracy_position: float | None = None
    coverage: float | None = None  # of this style's real images by its generated ones
    coverage_position: float | None = None
    recall: float | None = None  # this style's real images inside its generated images' manifold
    recall_position: float | None = None
    # the real-vs-generated detector on this style's test images (evaluate/detector.py): balanced accuracy,
    # 0.5 = chance, 1.0 = always told apart; its position 2·(1 − accuracy); the share of generated images caught
    detectability: float | None = None
    detectability_position: float | None = None
    generated_detected: float | None = None

    def mistaken_for(self) -> tuple[str, float] | None:
        """The other style this style's generated images are most often classified as, and its share."""
        share, name = max(((share, name) for name, share in self.classified_as.items() if name != self.style),
                          default=(0.0, None))
        return (name, share) if share > 0 else None


class ClassifierResult(_Model):
    train_images: int
    steps: int
    epochs: float  # passes over the training images
    input_size: int
    val_images: int
    val_accuracy: float | None  # how far to trust style_accuracy
    val_accuracy_per_style: dict[str, float | None]


class DetectabilityResult(_Model):
    """A classifier two-sample test (evaluate/detector.py): a small net trained to tell this
    model's images from real train images, tested on real val images and the scored generated
    images, which it never saw."""

    accuracy: float  # balanced test accuracy: 0.5 = chance (cannot be told apart), 1.0 = always told apart
    position: float  # 2·(1 − accuracy): 1 at chance, 0 when always told apart
    real_as_real: float
    generated_detected: float
    train_real: int
    train_generated: int
    test_real: int
    test_generated: int
    steps: int


def detectability_verdict(accuracy: float) -> str:
    """A plain-words reading of a detectability (evaluate/detector.py)."""
    if accuracy >= 0.95:
        return "told apart from real images almost every time: something is obviously wrong (see the grids)"
    if accuracy >= 0.75:
        return "often told apart from real images"
    return "hard to tell apart from real images for this detector (a weak judge of good models)"


class DistanceSummary(_Model):
    min: float
    median: float
    mean: float


class AuditResult(_Model):
    space: str  # "pixel" or the extractor's name
    measure: str  # "relative (k=50)" (distance to the nearest / mean over the 50 nearest) or "absolute"
    threshold: float  # over all styles, in the measure
    style_thresholds: dict[str, float]  # per style: what each generated image is held to
    reference: str
    near_copy_count: int
    near_copy_share: float
    flagged: bool
    generated_to_train: DistanceSummary  # absolute distance to the nearest training image
    reference_to_train: DistanceSummary
    generated_score: DistanceSummary  # in the measure
    reference_score: DistanceSummary


class WorstPair(_Model):
    style: str
    seed: int
    pixel_distance: float
    pixel_score: float  # in the pixel audit's measure (relative: nearest / mean of the k nearest)
    feature_distance: float  # to the same training image, in the extractor's space
    train_key: str  # source_key of the nearest training image ('' if unknown)


class MemorisationResult(_Model):
    verdict_space: str  # which audit decides ``flagged``: "pixel" (see memorisation.py for why)
    flagged: bool
    near_copy_share: float
    near_copy_count: int
    expected_share: float  # = quantile: the share of held-out real images under the threshold
    quantile: float
    flag_ratio: float
    train_images: int
    pixel: AuditResult
    feature: AuditResult
    worst_pairs: list[WorstPair]


class CalibrationRow(_Model):
    """The headline metrics of one image set against the same real images, in the same
    feature space, at the same sizes (evaluate/calibration.py)."""

    name: str  # "model", "real train (ceiling)", "floor: noise", "floor: blurred"
    n: int
    fid: float
    kid: float
    precision: float | None
    recall: float | None
    density: float | None
    coverage: float | None
    intra_fid_mean: float | None
    style_accuracy: float | None
    intra_fid: dict[str, float | None]  # per style


class RunInfo(_Model):
    created: str
    seconds: dict[str, float]
    device: str
    torch: str


class EvalReport(_Model):
    schema_version: int = REPORT_SCHEMA_VERSION
    model: str
    model_step: int
    weights_sha256: str
    dataset: str
    dataset_checksum: str
    split: str
    settings: dict[str, Any]  # the EvalConfig (minus where to write)
    seed_rule: str
    extractor: ExtractorInfo
    n_real: int
    n_generated: int
    fid: float
    kid: KIDResult
    precision: float | None
    recall: float | None
    density: float | None
    coverage: float | None
    intra_fid_mean: float | None
    diversity_ratio_mean: float | None
    style_accuracy: float | None
    classifier: ClassifierResult
    detectability: DetectabilityResult | None = None  # None without a val split, or with detector_steps 0
    # pixel colour (metrics.colour): chroma of flat light areas and of edges, generated and real; None in older reports
    colour_cast: float | None = None
    colour_cast_real: float | None = None
    edge_chroma: float | None = None
    edge_chroma_real: float | None = None
    # the model and the calibration rows (ceiling, floors); the model's position per headline metric
    calibration: list[CalibrationRow] = Field(default_factory=list)
    position: dict[str, float | None] = Field(default_factory=dict)
    memorisation: MemorisationResult
    per_style: list[StyleResult]
    notes: list[str]
    files: dict[str, str]
    run: RunInfo

    def summary(self) -> dict[str, Any]:
        """One flat row for tables (benchmarks, comparisons across models)."""
        return {
            "model": self.model, "step": self.model_step, "split": self.split, "extractor": self.extractor.name,
            "n_real": self.n_real, "n_generated": self.n_generated, "fid": self.fid,
            "kid_mean": self.kid.mean, "kid_std": self.kid.std, "precision": self.precision, "recall": self.recall,
            "density": self.density, "coverage": self.coverage, "intra_fid_mean": self.intra_fid_mean,
            "diversity_ratio_mean": self.diversity_ratio_mean, "style_accuracy": self.style_accuracy,
            "classifier_val_accuracy": self.classifier.val_accuracy,
            "detectability": self.detectability.accuracy if self.detectability else None,
            "colour_cast": self.colour_cast,
            "edge_chroma": self.edge_chroma,
            "near_copy_share": self.memorisation.near_copy_share, "memorisation_flagged": self.memorisation.flagged,
        }

    def summary_table(self) -> str:
        """A short plain-text summary (what ``ray-gan evaluate`` prints)."""
        m, f = self.memorisation, lambda v, spec=".4g": "–" if v is None else format(v, spec)  # noqa: E731
        caveat = "" if self.extractor.comparable_with_published_fid else \
            " (not comparable with published Inception FIDs)"
        lines = [
            f"model {self.model} (step {self.model_step}) vs {self.split} of {self.dataset}",
            *([f"verdict: {detectability_verdict(self.detectability.accuracy)}"] if self.detectability else []),
            f"features: {self.extractor.name}{caveat}; {self.n_generated} generated vs {self.n_real} real images",
            *([f"  detectability       {self.detectability.accuracy:.3f} (a detector trained to tell generated from "
               f"real images, on images it never saw: 0.5 = chance, 1.0 = always told apart; position "
               f"{self.detectability.position:.2f})"] if self.detectability else []),
            f"  FID                 {f(self.fid)}",
            f"  KID x1000           {f(self.kid.mean * 1000)} ± {f(self.kid.std * 1000, '.2g')}",
            f"  precision / recall  {f(self.precision, '.3f')} / {f(self.recall, '.3f')}",
            f"  density / coverage  {f(self.density, '.3f')} / {f(self.coverage, '.3f')}",
            f"  intra-style FID     {f(self.intra_fid_mean)} (mean over styles)",
            f"  diversity ratio     {f(self.diversity_ratio_mean, '.3f')} (generated / real)",
            f"  style accuracy      {f(self.style_accuracy, '.3f')} (classifier on real val: "
            f"{f(self.classifier.val_accuracy, '.3f')})",
            f"  colour              cast {f(self.colour_cast, '.3f')} on flat light areas (real "
            f"{f(self.colour_cast_real, '.3f')}), chroma {f(self.edge_chroma, '.3f')} on edges (real "
            f"{f(self.edge_chroma_real, '.3f')})",
            f"  near-copies         {m.near_copy_share:.1%} ({m.near_copy_count} of {self.n_generated}; "
            f"expected ≈ {m.expected_share:.0%}) — memorisation {'FLAGGED' if m.flagged else 'not flagged'}",
            "  calibration (same features, same real images, same n; position 0 = floor, 1 = real train images):",
            f"  {'':<22} {'FID':>9} {'KID x1000':>10} {'precision':>9} {'recall':>7} {'coverage':>8} "
            f"{'intra-FID':>9} {'style acc':>9}",
            *[f"  {c.name[:22]:<22} {f(c.fid):>9} {f(c.kid * 1000):>10} {f(c.precision, '.3f'):>9} "
              f"{f(c.recall, '.3f'):>7} {f(c.coverage, '.3f'):>8} {f(c.intra_fid_mean):>9} "
              f"{f(c.style_accuracy, '.3f'):>9}" for c in self.calibration],
            *([f"  {'position of the model':<22} " + " ".join(
                f"{f(self.position.get(k), '.2f'):>{w}}" for k, w in (("fid", 9), ("", 10), ("precision", 9),
                                                                       ("recall", 7), ("coverage", 8),
                                                                       ("intra_fid_mean", 9),
                                                                       ("style_accuracy", 9)))]
              if self.position else []),
            f"  {'style':<16} {'n':>6} {'FID':>9} {'(pos.)':>6} {'coverage':>8} {'(pos.)':>6} {'recall':>6} {'style acc':>9} "
            f"{'(pos.)':>6} {'detect':>6} {'div. ratio':>10} {'near-copy':>9}  mostly mistaken for",
        ]
        for s in self.per_style:
            miss = s.mistaken_for()
            lines.append(f"  {s.style[:16]:<16} {s.n_real:>6} {f(s.fid):>9} {f(s.fid_position, '.2f'):>6} "
                         f"{f(s.coverage, '.3f'):>8} {f(s.coverage_position, '.2f'):>6} {f(s.recall, '.3f'):>6} "
                         f"{f(s.style_accuracy, '.3f'):>9} {f(s.style_accuracy_position, '.2f'):>6} "
                         f"{f(s.detectability, '.3f'):>6} "
                         f"{f(s.diversity_ratio, '.3f'):>10} {s.near_copy_share:>9.1%}  "
                         + (f"{miss[0]} ({miss[1]:.0%})" if miss else "–"))
        return "\n".join(lines)

    def deterministic_dump(self) -> dict[str, Any]:
        """The report without ``run``: equal for equal inputs."""
        return self.model_dump(mode="json", exclude={"run"})


# ---- HTML ---------------------------------------------------------------------------

def render_html(report: EvalReport, generated_grids: list[bytes], real_grids: list[bytes], worst_pairs: bytes) -> str:
    """A self-contained page (PNGs embedded) with the report's tables."""
    r = report
    m = r.memorisation
    overview = table(["metric", "value", "meaning"], [
        ["FID", r.fid, f"generated vs real {r.split}; lower is better; {r.extractor.name} features"],
        ["KID (×1000)", r.kid.mean * 1000, f"± {r.kid.std * 1000:.3g}; unbiased, ≈ 0 when indistinguishable"],
        ["precision", r.precision, "share of generated images inside the real manifold (fidelity)"],
        ["recall", r.recall, "share of real images inside the generated manifold (diversity)"],
        ["density", r.density, "≈ 1 when generated images sit where reals are dense"],
        ["coverage", r.coverage, "share of real neighbourhoods that hold a generated image"],
        ["intra-style FID (mean)", r.intra_fid_mean, "FID per style, averaged"],
        ["diversity ratio (mean)", r.diversity_ratio_mean, "generated / real mean pairwise distance; ≪ 1 = collapse"],
        ["style accuracy", r.style_accuracy, f"classifier's real-val accuracy: {fmt(r.classifier.val_accuracy)}"],
        *([["detectability", r.detectability.accuracy,
            f"a detector trained to tell generated from real images, tested on images it never saw: 0.5 = chance "
            f"(cannot be told apart), 1.0 = always told apart; position {fmt(r.detectability.position)}; "
            f"{r.detectability.generated_detected:.1%} of generated images caught"]] if r.detectability else []),
        ["colour cast", r.colour_cast, f"chroma of flat light areas (tinted backgrounds); real: "
                                       f"{fmt(r.colour_cast_real)}"],
        ["edge chroma", r.edge_chroma, f"chroma along edges (colour fringes); real: {fmt(r.edge_chroma_real)}"],
        ["near-copy share", m.near_copy_share,
         f"expected ≈ {m.expected_share:.3g}; memorisation flagged: {fmt(m.flagged)}"],
    ])
    per_style = table(
        ["style", "n", "FID", "FID position", "coverage", "coverage position", "recall", "recall position",
         "diversity real", "diversity gen",
         "ratio", "style acc.", "style acc. position", "classifier val acc.", "detectability",
         "generated caught", "near-copy share"],
        [[s.style, s.n_real, s.fid, s.fid_position, s.coverage, s.coverage_position, s.recall, s.recall_position,
          s.diversity_real,
          s.diversity_generated, s.diversity_ratio, s.style_accuracy, s.style_accuracy_position,
          s.classifier_val_accuracy, s.detectability, s.generated_detected, s.near_copy_share]
         for s in r.per_style])
    calibration = table(
        ["images", "FID", "KID ×1000", "precision", "recall", "density", "coverage", "intra-style FID", "style acc."],
        [[c.name, c.fid, c.kid * 1000, c.precision, c.recall, c.density, c.coverage, c.intra_fid_mean,
          c.style_accuracy] for c in r.calibration]
        + ([["position of the model", r.position.get("fid"), None, r.position.get("precision"),
             r.position.get("recall"), None, r.position.get("coverage"), r.position.get("intra_fid_mean"),
             r.position.get("style_accuracy")]] if r.position else [])) if r.calibration else "<p>–</p>"
    names = list(r.per_style[0].classified_as) if r.per_style else []  # the model's styles
    confusion = table(["requested \\ classified as", *names],
                       [[s.style, *(s.classified_as.get(n) for n in names)] for s in r.per_style]) \
        if names else "<p>–</p>"
    audits = table(
        ["space", "measure", "threshold (all styles)", "near copies", "share", "flagged", "gen→train median",
         "val→train median", "gen→nearest train median distance", "val→nearest train median distance"],
        [[a.space + (" (verdict)" if a.space == m.verdict_space else ""), a.measure, a.threshold, a.near_copy_count,
          a.near_copy_share, a.flagged, a.generated_score.median, a.reference_score.median,
          a.generated_to_train.median, a.reference_to_train.median]
         for a in (m.pixel, m.feature)])
    pairs = table(["#", "style", "seed", "pixel score", "pixel distance", "feature distance", "nearest training image"],
                   [[i + 1, p.style, p.seed, p.pixel_score, p.pixel_distance, p.feature_distance, p.train_key]
                    for i, p in enumerate(m.worst_pairs)])
    grids = "".join(
        f"<figure><h3>{html.escape(s.style)}</h3><p>generated"
        + ("" if s.generated_detected is None else f" ({s.generated_detected:.0%} told apart from real by the detector)")
        + f"</p>{img(g, s.style + ' generated')}"
        f"<p>real {html.escape(r.split)}</p>{img(rg, s.style + ' real')}</figure>"
        for s, g, rg in zip(r.per_style, generated_grids, real_grids))
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in r.notes)
    verdict = "" if r.detectability is None else \
        f"<p><b>Verdict: {html.escape(detectability_verdict(r.detectability.accuracy))}</b> (detectability " \
        f"{r.detectability.accuracy:.3f}: 0.5 = chance, 1.0 = always told apart)</p>"
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>ray_gan evaluation</title>
<style>{CSS}</style></head><body>
<h1>Evaluation: {html.escape(r.model)} (step {r.model_step}) on {html.escape(r.split)}</h1>
<p class="note">dataset {html.escape(r.dataset)} · {r.n_generated} generated vs {r.n_real} real images ·
truncation {fmt(r.settings.get("truncation"))} · extractor <b>{html.escape(r.extractor.name)}</b>:
{html.escape(r.extractor.description)}</p>
{verdict}<h2>Overview</h2>{overview}
<h3>Calibration</h3>{calibration}
<p class="note">Every row against the same real {html.escape(r.split)} images, in the same feature space, at the
same sizes: real train images are the best a model can score, noise and train images blurred to {4}×{4} colour
patches are floors. Position: 0 at the more flattering floor, 1 at real train images (FID on a log scale; KID has
none, it can be negative). FID and KID depend on the sample size: compare only reports at equal n.</p>
<h2>Per style</h2>{per_style}
<p class="note">Style classifier: {r.classifier.train_images} training images, {r.classifier.steps} steps
({r.classifier.epochs:.3g} epochs),
real-val accuracy {fmt(r.classifier.val_accuracy)} on {r.classifier.val_images} images.</p>
<h3>Style confusion</h3>{confusion}
<p class="note">Share of each requested style's generated images that the classifier assigns to each style
(rows sum to 1; the diagonal is the style accuracy). Off-diagonal mass shows which styles the generator
draws alike.</p>
<h2>Memorisation audit</h2>{audits}
<p class="note">Measure: {html.escape(m.pixel.measure)} — relative = distance to the nearest training image
over the mean distance to the k nearest (a copy is far closer to its source than to anything else: near 0; a
generic image is about as close to many: near 1). Threshold = {m.quantile:g} quantile of the measure for
{html.escape(m.pixel.reference)}; reference set: {m.train_images} training images.</p>
<h3>Closest pairs (generated | nearest training image)</h3>{img(worst_pairs, "closest pairs")}{pairs}
<h2>Samples</h2><div class="styles">{grids}</div>
<h2>Notes</h2><ul>{notes}</ul>
<p class="note">Created {html.escape(r.run.created)} on {html.escape(r.run.device)}.</p>
</body></html>
"""
