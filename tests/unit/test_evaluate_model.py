"""ray_gan.evaluate.evaluate: evaluation end to end (evaluate_model, run_evaluation and the
report they write) on a tiny dataset (Parquet shards written directly, no Ray) and the
``tiny_model`` fixture."""

import io
import json

import numpy as np
import pytest
import torch
from helpers import N_TRAIN, write_tiny_dataset
from PIL import Image

from ray_gan import storage
from ray_gan.data.dataset import read_dataset_info
from ray_gan.evaluate import EvalConfig, EvalReport, evaluate_model, run_evaluation
from ray_gan.evaluate.realdata import real_images
from ray_gan.generate.render import Renderer

pytestmark = pytest.mark.usefixtures("one_torch_thread")


FAST = dict(classifier_steps=40, detector_steps=40, kid_subsets=10, device="cpu", log=lambda s: None)


def test_evaluate_writes_a_deterministic_report(tiny_model, tiny_dataset):
    report = evaluate_model(tiny_model, tiny_dataset, n_per_style=10, seed=0, **FAST)
    out = storage.join(tiny_model, "eval", "val-00000001")
    assert report.files["report_json"] == storage.join(out, "report.json")
    doc = storage.read_json(report.files["report_json"])
    assert doc == storage.read_json(storage.join(tiny_model, "eval", "latest.json"))
    assert EvalReport.model_validate(doc) == report
    # counts: ≤ n_per_style real images per style (12 available), as many generated
    assert (report.n_real, report.n_generated) == (30, 30)
    assert [(s.style, s.n_real, s.n_generated, s.available_real) for s in report.per_style] == \
        [("alpha", 10, 10, 12), ("beta", 10, 10, 12), ("gamma", 10, 10, 12)]
    # the default features: the style classifier trained on this data, named and marked not comparable
    assert report.extractor.name == "classifier" and not report.extractor.comparable_with_published_fid
    assert report.extractor.dim == 64 and "real-val accuracy" in report.extractor.description
    assert any("same fingerprint" in n for n in report.notes)
    # calibration rows in the same space and sizes, and the model's position between floor and ceiling
    assert [c.name for c in report.calibration] == ["model", "real train (ceiling)", "floor: noise",
                                                   "floor: blurred"]
    assert all(c.n == 30 for c in report.calibration) and report.calibration[0].fid == report.fid
    assert set(report.position) >= {"fid", "coverage", "style_accuracy"}
    assert all(s.fid_position is not None for s in report.per_style)
    # detectability: trained on ≤ n_per_style train images per style and as many rendered ones, tested on
    # the scored images; an untrained generator is told apart, and the report says so in words
    d = report.detectability
    assert (d.train_real, d.train_generated, d.test_real, d.test_generated) == (30, 30, 30, 30)
    assert d.accuracy > 0.9 and report.position["detectability"] == d.position
    assert all(s.detectability is not None and s.generated_detected is not None for s in report.per_style)
    assert "seed + 256" in report.seed_rule
    # an untrained generator is far from the data and copies nothing
    assert report.fid > 0 and report.kid.mean > 0
    assert report.precision is not None and report.coverage is not None
    assert not report.memorisation.flagged
    assert report.memorisation.near_copy_share < 0.5
    assert len(report.memorisation.worst_pairs) == 16
    assert report.classifier.val_accuracy is not None and report.classifier.val_images == 30
    assert set(report.summary()) >= {"fid", "kid_mean", "precision", "recall", "density", "coverage",
                                     "intra_fid_mean", "style_accuracy", "near_copy_share"}
    html = storage.read_bytes(report.files["report_html"]).decode()
    assert "data:image/png;base64," in html and "classifier" in html and "gamma" in html
    assert "<h3>Calibration</h3>" in html and "position of the model" in html
    assert "Verdict: told apart from real images almost every time" in html and "told apart from real by" in html
    pairs = Image.open(io.BytesIO(storage.read_bytes(report.files["worst_pairs_png"])))
    assert pairs.size[0] < pairs.size[1]  # two columns, 16 rows
    grid_bytes = storage.read_bytes(report.files["samples_alpha"])
    table = report.summary_table()
    assert "not comparable with published Inception FIDs" in table and "memorisation not flagged" in table
    assert "real train (ceiling)" in table and "position of the model" in table
    assert table.splitlines()[1].startswith("verdict: told apart") and "detectability" in table
    assert len([line for line in table.splitlines() if line.lstrip().startswith(("alpha", "beta", "gamma"))]) == 3

    again = evaluate_model(tiny_model, tiny_dataset, n_per_style=10, seed=0, **FAST)
    assert json.dumps(again.deterministic_dump(), sort_keys=True) == \
        json.dumps(report.deterministic_dump(), sort_keys=True)
    assert storage.read_bytes(again.files["samples_alpha"]) == grid_bytes


class ReplaySource:
    """An image source (``ray_gan.evaluate.evaluate.ImageSource``) that returns training images."""

    def __init__(self, info, train) -> None:
        self.info, self.device, self.train = info, torch.device("cpu"), train

    def render(self, styles, seeds, truncation=1.0):
        return np.stack([self.train.images[self.train.styles == s][seed % N_TRAIN] for s, seed in zip(styles, seeds)])


def test_evaluate_flags_a_generator_that_replays_training_images(tiny_model, tiny_dataset):
    honest = evaluate_model(tiny_model, tiny_dataset, n_per_style=10, **FAST)
    train = real_images(read_dataset_info(tiny_dataset), "train", {0: 0, 1: 1, 2: 2}, resolution=16)
    cfg = EvalConfig(model=tiny_model, data=tiny_dataset, n_per_style=10,
                     **{k: v for k, v in FAST.items() if k != "log"})
    copier = run_evaluation(cfg, log=FAST["log"], renderer=ReplaySource(Renderer(tiny_model, "cpu").info, train))
    m = copier.memorisation
    assert m.flagged and m.near_copy_share == 1.0 and m.near_copy_count == 30
    assert m.worst_pairs[0].pixel_distance == 0.0 and m.worst_pairs[0].train_key.endswith(".png")
    assert all(s.near_copy_share == 1.0 for s in copier.per_style)
    # real images score better than an untrained generator on every fidelity/diversity metric
    assert copier.fid < honest.fid and copier.kid.mean < honest.kid.mean
    assert copier.precision > honest.precision and copier.coverage > honest.coverage
    assert copier.style_accuracy >= 0.9
    for s in copier.per_style:  # each row of the confusion sums to 1, its diagonal is the style accuracy
        assert list(s.classified_as) == ["alpha", "beta", "gamma"]
        assert sum(s.classified_as.values()) == pytest.approx(1.0)
        assert s.classified_as[s.style] == pytest.approx(s.style_accuracy)


class OneStyleSource(ReplaySource):
    """Draws every requested style as training images of style 0 (``alpha``)."""

    def render(self, styles, seeds, truncation=1.0):
        return super().render([0] * len(styles), seeds, truncation)


def test_the_style_confusion_shows_which_style_a_generator_draws_instead(tiny_model, tiny_dataset):
    train = real_images(read_dataset_info(tiny_dataset), "train", {0: 0, 1: 1, 2: 2}, resolution=16)
    cfg = EvalConfig(model=tiny_model, data=tiny_dataset, n_per_style=10,
                     **{k: v for k, v in FAST.items() if k != "log"})
    report = run_evaluation(cfg, log=FAST["log"], renderer=OneStyleSource(Renderer(tiny_model, "cpu").info, train))
    alpha, beta, gamma = report.per_style
    assert alpha.style_accuracy >= 0.9
    for s in (beta, gamma):  # drawn as alpha: classified as alpha, and the report says so
        assert s.style_accuracy <= 0.1 and s.classified_as["alpha"] >= 0.9
        assert s.mistaken_for()[0] == "alpha"
    table = report.summary_table()
    assert any(line.lstrip().startswith("beta") and line.rstrip().endswith(f"alpha ({beta.classified_as['alpha']:.0%})")
               for line in table.splitlines())
    html = storage.read_bytes(report.files["report_html"]).decode()
    assert "Style confusion" in html and "requested \\ classified as" in html


def test_evaluate_refuses_a_dataset_without_the_model_styles(tiny_model, tmp_path):
    ds = write_tiny_dataset(str(tmp_path / "ds"), n_train=4, n_val=2, size=16)
    doc = storage.read_json(storage.join(ds, "dataset.json"))
    doc["styles"] = ["x", "y", "z"]
    storage.write_json(storage.join(ds, "dataset.json"), doc)
    with pytest.raises(ValueError, match="share none"):
        evaluate_model(tiny_model, ds, **FAST)
