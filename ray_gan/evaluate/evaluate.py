"""``ray-gan evaluate``: score a trained model against one split of its dataset.

Data flow (one process, no Ray)::

    model.json, dataset.json → styles matched by name
    real: the split's shards (pyarrow) → ≤ n_per_style per style, evenly spaced → model space
    train: the train shards → ≤ max_train images, evenly spaced (classifier, memorisation)
    generated: Renderer.render, as many per style as real ones, seeds by SEED_RULE
    style classifier fitted on train, checked on real val → style accuracy of generated
    detectability: a real-vs-generated detector fitted on train images and freshly rendered
      ones (other seeds), scored on real val vs the generated images (evaluate/detector.py)
    features (default: that classifier's penultimate layer; inception with weights;
    random-cnn by name) of real, generated, train, and of the calibration sets: real train
    images matched per style (ceiling), noise and blurred train images (floors)
      → calibration.score (one code path): FID, KID, precision/recall, density/coverage,
        intra-style FID, style accuracy — for the model and every calibration row
      → positions: 0 at the more flattering floor, 1 at the ceiling, overall and per style
      → diversity of real and generated per style
    memorisation audit: generated → nearest train (pixels: verdict; features: reported)
      threshold from val → nearest train
    → MODEL/eval/<split>-<step:08d>/report.json, report.html, PNGs; MODEL/eval/latest.json

Every random choice is seeded (render seeds, KID subsets, classifier), so the same
inputs give the same report (apart from its ``run`` section) on the same kind of device.
"""

from __future__ import annotations

import datetime as _dt
import time
from typing import Any, Callable, Protocol, Sequence

import numpy as np
import torch

from ray_gan import storage
from ray_gan.checkpoint import ModelInfo
from ray_gan.config import EVAL_STYLE_SEED_STRIDE, EvalConfig
from ray_gan.data.dataset import read_dataset_info, style_mapping
from ray_gan.evaluate import metrics
from ray_gan.evaluate.classifier import accuracy, train_style_classifier
from ray_gan.evaluate import calibration
from ray_gan.evaluate.detector import Detectability, detectability, spread
from ray_gan.evaluate.features import ClassifierExtractor, make_extractor, resolve_extractor
from ray_gan.evaluate.memorisation import NearCopyAudit, audit_near_copies, pixel_vectors, worst_pairs_png
from ray_gan.evaluate.realdata import RealImages, real_images
from ray_gan.evaluate.report import (AuditResult, CalibrationRow, ClassifierResult, DetectabilityResult,
                                     DistanceSummary, EvalReport,
                                     ExtractorInfo,
                                     KIDResult, MemorisationResult, RunInfo, StyleResult, WorstPair, render_html)
from ray_gan.evaluate.threads import one_torch_thread
from ray_gan.images import VIEW_TILE, encode, make_grid

EVAL_DIR = "eval"
LATEST_JSON = "latest.json"
# Render seeds: far above the small seeds of training sample grids, `generate` and batch
# jobs, different per style (so samples are independent across styles) and per run seed.
EVAL_SEED_BASE = 2**40
_SEED_RUN_STRIDE = 2**32
SEED_RULE = ("seed(style k, image i) = 2**40 + seed * 2**32 + k * 2**20 + i; the detector's training images: "
             "the same with seed + 256")
DETECTOR_SEED_OFFSET = 256  # > EvalConfig.seed's range: the detector's images never repeat a scored one
GRID_COLS = 8
GRID_GENERATED = 32
GRID_REAL = 16


def render_seed(run_seed: int, style: int, i: int) -> int:
    return EVAL_SEED_BASE + run_seed * _SEED_RUN_STRIDE + style * EVAL_STYLE_SEED_STRIDE + i


def eval_uri(model_uri: str, split: str, step: int) -> str:
    return storage.join(model_uri, EVAL_DIR, f"{split}-{step:08d}")


def _distances(d: np.ndarray) -> DistanceSummary:
    return DistanceSummary(min=float(d.min()), median=float(np.median(d)), mean=float(d.mean()))


def _audit_result(a: NearCopyAudit, style_names: list[str]) -> AuditResult:
    return AuditResult(space=a.space, measure=a.measure, threshold=a.threshold,
                       style_thresholds={style_names[k]: v for k, v in sorted(a.style_thresholds.items())},
                       reference=a.reference, near_copy_count=a.count, near_copy_share=a.share, flagged=a.flagged,
                       generated_to_train=_distances(a.distance), reference_to_train=_distances(a.reference_distances),
                       generated_score=_distances(a.score), reference_score=_distances(a.reference_scores))


def _grid_png(images: np.ndarray, n: int) -> bytes:
    return encode(make_grid(images[:n], cols=GRID_COLS, min_tile=VIEW_TILE))


def _optional(fn: Callable[[], Any], enough: bool) -> Any:
    return fn() if enough else None


def evaluate_model(model_uri: str, data_uri: str, *, log: Callable[[str], None] = print, **settings: Any) -> EvalReport:
    """Evaluate ``model_uri`` on a split of ``data_uri``; write the report; return it.

    ``settings`` are further :class:`~ray_gan.config.EvalConfig` fields (``split``,
    ``n_per_style``, ``kid_subsets``, …); unset ones take its defaults.
    """
    return run_evaluation(EvalConfig(model=model_uri, data=data_uri, **settings), log)


class ImageSource(Protocol):
    """What evaluation renders from: :class:`ray_gan.generate.render.Renderer` (the default,
    loaded from ``cfg.model``) or any object with the same three members, e.g. a reference
    implementation's generator in a benchmark."""

    info: ModelInfo
    device: torch.device

    def render(self, styles: Sequence[int], seeds: Sequence[int], truncation: float = 1.0) -> np.ndarray: ...


def run_evaluation(cfg: EvalConfig, log: Callable[[str], None] = print,
                   renderer: ImageSource | None = None) -> EvalReport:
    """Evaluate with the settings in ``cfg``; ``renderer`` replaces the model at ``cfg.model``
    (whose URI still names where the report goes)."""
    from ray_gan.generate.render import Renderer

    seconds: dict[str, float] = {}
    t_all = t = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal t
        now = time.perf_counter()
        seconds[stage] = round(now - t, 3)
        t = now

    if renderer is None:
        renderer = Renderer(cfg.model, device=cfg.device)
    info, device = renderer.info, renderer.device
    ds = read_dataset_info(cfg.data)
    style_map = style_mapping(ds.styles, info.styles)
    ext_name = resolve_extractor(cfg.extractor, cfg.inception_weights)
    ext = None if ext_name == "classifier" else make_extractor(ext_name, cfg.inception_weights, device)  # fail fast
    res, channels = info.config.resolution, info.config.channels
    real = real_images(ds, cfg.split, style_map, res, channels, per_style=cfg.n_per_style)
    train = real_images(ds, "train", style_map, res, channels, limit=cfg.max_train)
    val: RealImages | None = real if cfg.split == "val" else None
    if val is None and ds.shard_uris("val"):
        val = real_images(ds, "val", style_map, res, channels, per_style=cfg.n_per_style)
    lap("read_real")
    log(f"evaluate: {len(real.images)} real {cfg.split} images in {len(real.available)} styles, "
        f"{len(train.images)} train images ({res} px)")

    styles = [int(s) for s in real.styles]  # grouped by style, ascending
    per_style_count = {k: styles.count(k) for k in sorted(set(styles))}
    seeds = [render_seed(cfg.seed, k, i) for k in sorted(per_style_count) for i in range(per_style_count[k])]
    with one_torch_thread():  # 16-row micro-batches: see ray_gan.evaluate.threads
        generated = renderer.render(styles, seeds, cfg.truncation)
    gen_styles = np.asarray(styles, dtype=np.int64)
    lap("render")
    log(f"evaluate: rendered {len(generated)} images (truncation {cfg.truncation}) on {device}")

    fitted = train_style_classifier(train.images, train.styles, len(info.styles),
                                    val.images if val is not None else None, val.styles if val is not None else None,
                                    steps=cfg.classifier_steps, seed=cfg.seed, device=device)
    predict = fitted.classifier.predict
    gen_pred = predict(generated)
    gen_acc = accuracy(gen_pred, gen_styles, len(info.styles))
    if ext is None:  # the default: features of the classifier just trained on this data
        ext = ClassifierExtractor(fitted.classifier.net, fitted.classifier.input_size,
                                  fitted.val.overall if fitted.val is not None else None, fitted.steps, device)
    lap("classifier")

    detect = _detectability(cfg, renderer, train, val, generated, gen_styles)
    lap("detector")

    f_real, f_gen, f_train = ext(real.images), ext(generated), ext(train.images)
    f_val = f_real if val is real else (ext(val.images) if val is not None else None)
    # Calibration sets, as many per style as the generated set: real train images (the
    # ceiling), and two floors made from them (noise; blurred to colours without shapes).
    ceiling, ceiling_styles = calibration.matched(train.images, train.styles, gen_styles)
    floors = {"noise": calibration.noise(ceiling, cfg.seed), "blurred": calibration.blurred(ceiling)}
    cal_sets = {"real train (ceiling)": ceiling, **{f"floor: {k}": v for k, v in floors.items()}}
    f_cal = {name: ext(images) for name, images in cal_sets.items()}
    lap("features")

    opts = dict(kid_subsets=cfg.kid_subsets, kid_subset_size=cfg.kid_subset_size, pr_k=cfg.pr_k, dc_k=cfg.dc_k,
                seed=cfg.seed)
    model_scores = calibration.score(f_real, real.styles, f_gen, gen_styles, gen_pred, **opts)
    cal_scores = {name: calibration.score(f_real, real.styles, f, ceiling_styles, predict(cal_sets[name]), **opts)
                  for name, f in f_cal.items()}
    fid, kid = model_scores.fid, model_scores.kid_detail
    lap("metrics")

    val_styles = val.styles if val is not None else None
    pixel = audit_near_copies(pixel_vectors(generated), pixel_vectors(train.images),
                              pixel_vectors(val.images) if val is not None else None,
                              cfg.memorisation_quantile, cfg.memorisation_flag_ratio, "pixel", np.float32,
                              gen_styles, val_styles, cfg.memorisation_relative_k)
    feature = audit_near_copies(f_gen, f_train, f_val, cfg.memorisation_quantile, cfg.memorisation_flag_ratio,
                                ext.name, np.float64, gen_styles, val_styles, cfg.memorisation_relative_k)
    lap("memorisation")

    per_style: list[StyleResult] = []
    for k in sorted(per_style_count):
        r_mask, g_mask = real.styles == k, gen_styles == k
        n = int(r_mask.sum())
        div_r = _optional(lambda: metrics.diversity(f_real[r_mask]), n >= 2)
        div_g = _optional(lambda: metrics.diversity(f_gen[g_mask]), n >= 2)
        per_style.append(StyleResult(
            style=info.styles[k], n_real=n, n_generated=int(g_mask.sum()), available_real=real.available.get(k, n),
            fid=model_scores.intra_fid.get(k),
            diversity_real=div_r, diversity_generated=div_g,
            diversity_ratio=div_g / div_r if div_r and div_g is not None else None,
            style_accuracy=gen_acc.per_style[k],
            classified_as={name: c / max(1, gen_acc.counts[k]) for name, c in zip(info.styles, gen_acc.confusion[k])},
            classifier_val_accuracy=fitted.val.per_style[k] if fitted.val is not None else None,
            near_copy_share=float(pixel.near_copy[g_mask].mean()),
        ))
    lap("per_style")

    out = eval_uri(cfg.model, cfg.split, info.step)
    files = {"dir": out, "report_json": storage.join(out, "report.json"),
             "report_html": storage.join(out, "report.html"), "worst_pairs_png": storage.join(out, "worst-pairs.png"),
             "latest_json": storage.join(cfg.model, EVAL_DIR, LATEST_JSON)}
    gen_grids, real_grids = [], []
    for k in sorted(per_style_count):
        gen_grids.append(_grid_png(generated[gen_styles == k], GRID_GENERATED))
        real_grids.append(_grid_png(real.images[real.styles == k], GRID_REAL))
        files[f"samples_{info.styles[k]}"] = storage.join(out, f"samples-{k:03d}.png")
        files[f"real_{info.styles[k]}"] = storage.join(out, f"real-{k:03d}.png")
        storage.write_bytes(files[f"samples_{info.styles[k]}"], gen_grids[-1])
        storage.write_bytes(files[f"real_{info.styles[k]}"], real_grids[-1])
    pairs_png = worst_pairs_png(generated, train.images, pixel, cfg.worst_pairs)
    storage.write_bytes(files["worst_pairs_png"], pairs_png)
    lap("write_images")
    seconds["total"] = round(time.perf_counter() - t_all, 3)

    worst = pixel.closest(cfg.worst_pairs)
    memorisation = MemorisationResult(
        verdict_space="pixel", flagged=pixel.flagged, near_copy_share=pixel.share, near_copy_count=pixel.count,
        expected_share=cfg.memorisation_quantile, quantile=cfg.memorisation_quantile,
        flag_ratio=cfg.memorisation_flag_ratio, train_images=len(train.images),
        pixel=_audit_result(pixel, info.styles), feature=_audit_result(feature, info.styles),
        worst_pairs=[WorstPair(style=info.styles[styles[i]], seed=seeds[i], pixel_distance=float(pixel.distance[i]),
                               pixel_score=float(pixel.score[i]),
                               feature_distance=float(np.linalg.norm(f_gen[i] - f_train[pixel.index[i]])),
                               train_key=train.keys[pixel.index[i]]) for i in worst])
    ceiling_name = "real train (ceiling)"
    floor_names = [n for n in cal_scores if n.startswith("floor")]
    rows = [("model", model_scores, len(generated))] + [(n, sc, len(cal_sets[n])) for n, sc in cal_scores.items()]
    cal_rows = [CalibrationRow(name=n, n=size, fid=sc.fid, kid=sc.kid, precision=sc.precision, recall=sc.recall,
                               density=sc.density, coverage=sc.coverage, intra_fid_mean=sc.intra_fid_mean,
                               style_accuracy=sc.style_accuracy,
                               intra_fid={info.styles[k]: v for k, v in sorted(sc.intra_fid.items())})
                for n, sc, size in rows]
    position = {m: calibration.position(model_scores.get(m), cal_scores[ceiling_name].get(m),
                                        [cal_scores[f].get(m) for f in floor_names], kind)
                for m, kind in calibration.HEADLINE.items()}

    def style_position(attr: str, k: int, kind: str) -> float | None:
        return calibration.position(getattr(model_scores, attr).get(k), getattr(cal_scores[ceiling_name], attr).get(k),
                                    [getattr(cal_scores[f], attr).get(k) for f in floor_names], kind)

    for s in per_style:
        k = info.styles.index(s.style)
        s.fid_position = style_position("intra_fid", k, "distance")
        # Floor images have no style: their per-style accuracy only says which class the
        # classifier dumps them in (all of one style: 1.0 there); their overall share is chance.
        s.style_accuracy_position = calibration.position(
            model_scores.style_accuracy_per_style.get(k), cal_scores[ceiling_name].style_accuracy_per_style.get(k),
            [cal_scores[f].style_accuracy for f in floor_names], "share")
        s.coverage = model_scores.coverage_per_style.get(k)
        s.coverage_position = style_position("coverage_per_style", k, "share")
        s.recall = model_scores.recall_per_style.get(k)
        s.recall_position = style_position("recall_per_style", k, "share")
        if detect is not None:
            s.detectability = detect.per_style.get(k)
            s.detectability_position = detect.style_position(k)
            s.generated_detected = detect.generated_detected_per_style.get(k)
    if detect is not None:
        position["detectability"] = detect.position
    ratios = [s.diversity_ratio for s in per_style if s.diversity_ratio is not None]
    intra = [s.fid for s in per_style if s.fid is not None]
    gen_colour, real_colour = metrics.colour(generated), metrics.colour(real.images)
    report = EvalReport(
        model=info.uri, model_step=info.step, weights_sha256=info.weights_sha256, dataset=ds.uri,
        dataset_checksum=ds.checksum, split=cfg.split,
        settings=cfg.model_dump(mode="json", exclude={"model", "data", "device"}), seed_rule=SEED_RULE,
        extractor=ExtractorInfo(name=ext.name, dim=ext.dim, input_size=ext.input_size, fingerprint=ext.fingerprint,
                                description=ext.description, comparable_with_published_fid=ext.name == "inception"),
        n_real=len(real.images), n_generated=len(generated), fid=fid,
        kid=KIDResult(mean=kid.mean, std=kid.std, subsets=kid.subsets, subset_size=kid.subset_size),
        precision=model_scores.precision, recall=model_scores.recall,
        density=model_scores.density, coverage=model_scores.coverage,
        intra_fid_mean=float(np.mean(intra)) if intra else None,
        diversity_ratio_mean=float(np.mean(ratios)) if ratios else None,
        style_accuracy=gen_acc.overall,
        colour_cast=gen_colour.cast, colour_cast_real=real_colour.cast, edge_chroma=gen_colour.edges,
        edge_chroma_real=real_colour.edges,
        classifier=ClassifierResult(
            train_images=fitted.train_images, steps=fitted.steps, epochs=round(fitted.epochs, 3),
            input_size=fitted.classifier.input_size,
            val_images=len(val.images) if val is not None else 0,
            val_accuracy=fitted.val.overall if fitted.val is not None else None,
            val_accuracy_per_style={info.styles[k]: (fitted.val.per_style[k] if fitted.val is not None else None)
                                    for k in sorted(per_style_count)}),
        detectability=None if detect is None else DetectabilityResult(
            accuracy=detect.accuracy, position=detect.position, real_as_real=detect.real_as_real,
            generated_detected=detect.generated_detected, train_real=detect.train_real,
            train_generated=detect.train_generated, test_real=detect.test_real, test_generated=detect.test_generated,
            steps=detect.steps),
        calibration=cal_rows, position=position, memorisation=memorisation, per_style=per_style,
        notes=_notes(cfg, ext.name, ext.dim, len(real.images), per_style, info.styles, real, val is not None,
                     kid.subset_size),
        files=files,
        run=RunInfo(created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), seconds=seconds,
                    device=str(device), torch=torch.__version__),
    )
    doc = report.model_dump(mode="json")
    storage.write_bytes(files["report_html"], render_html(report, gen_grids, real_grids, pairs_png).encode())
    storage.write_json(files["report_json"], doc)
    storage.write_json(files["latest_json"], doc)
    log(f"evaluate: report → {files['report_json']}")
    return report


def _detectability(cfg: EvalConfig, renderer: ImageSource, train: RealImages, val: RealImages | None,
                   generated: np.ndarray, gen_styles: np.ndarray) -> Detectability | None:
    """Real train images (≤ n_per_style per style) against as many freshly rendered ones for
    training; real val against the scored generated images for the test (None without a
    val split, or with detector_steps 0)."""
    if val is None or cfg.detector_steps == 0:
        return None
    idx = spread(train.styles, cfg.n_per_style)
    styles = [int(s) for s in train.styles[idx]]
    seeds, seen = [], {}
    for k in styles:
        seen[k] = seen.get(k, -1) + 1
        seeds.append(render_seed(cfg.seed + DETECTOR_SEED_OFFSET, k, seen[k]))
    with one_torch_thread():
        fakes = renderer.render(styles, seeds, cfg.truncation)
    return detectability(train.images[idx], fakes, val.images, val.styles, generated, gen_styles,
                         steps=cfg.detector_steps, seed=cfg.seed, device=renderer.device)


def _notes(cfg: EvalConfig, ext_name: str, dim: int, n_real: int, per_style: list[StyleResult],
           model_styles: list[str], real: RealImages, has_val: bool, kid_subset_size: int) -> list[str]:
    notes = []
    if ext_name == "classifier":
        notes.append("Features: the penultimate layer of the style classifier trained on this dataset's train split "
                     "(see extractor.fingerprint): FIDs compare models evaluated with the same fingerprint and the "
                     "same n; the calibration rows say where this model sits between floor and ceiling.")
    elif ext_name == "random-cnn":
        notes.append("Features: random-cnn (fixed random weights, see extractor.fingerprint). FID/KID on it compare "
                     "models and runs of this project with each other, NOT with published Inception FIDs.")
    else:
        notes.append("Features: torchvision inception_v3 pool3. Close to, not identical with, the TF-Inception of "
                     "published FIDs; compare with published numbers only loosely.")
    if has_val and cfg.detector_steps:
        notes.append("Detectability: a small net trained to tell this model's images from real train images, tested on "
                     "real val images and the scored generated images, which it never saw (0.5 = chance, 1.0 = always "
                     "told apart). Near 1.0 means something is obviously wrong, whatever FID says: on a few styles "
                     "the classifier's features can rate blob-like samples close to real images.")
    smallest = min(s.n_real for s in per_style)
    if n_real <= dim or smallest <= dim:
        notes.append(f"Few samples for {dim}-d features ({n_real} overall, {smallest} in the smallest style): FID "
                     "is biased upwards at small n (covariances are rank-deficient); compare FIDs only at equal "
                     "n_per_style. KID is unbiased.")
    if kid_subset_size >= n_real and cfg.kid_subsets > 1:
        notes.append(f"KID subsets hold all {n_real} images (fewer than kid_subset_size={cfg.kid_subset_size}): "
                     "every subset is the same, so kid.std is 0 and no error bar.")
    missing = [s for i, s in enumerate(model_styles) if i not in real.available]
    if missing:
        notes.append(f"Model styles without real {cfg.split} images, not evaluated: {missing}.")
    limited = [s.style for s in per_style if s.available_real > s.n_real]
    if limited:
        notes.append(f"Real images capped at n_per_style={cfg.n_per_style} (evenly spaced) for: {limited}.")
    if not has_val:
        notes.append("No val split: the memorisation threshold comes from train leave-one-out distances and the "
                     "classifier's accuracy is not measured on held-out data.")
    notes.append("Memorisation verdict from pixel-space distances (aligned images: a small pixel distance is a "
                 "copy, independent of the feature extractor); feature-space distances are reported beside it.")
    return notes
