"""Evaluation end to end on a tiny dataset (Parquet shards written directly, no Ray) and
the ``tiny_model`` fixture, plus the feature extractors and the style classifier."""

import io
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

from ray_gan import storage
from ray_gan.data.dataset import read_dataset_info
from ray_gan.data.demo import iter_demo_images
from ray_gan.data.prepare import PARQUET_SCHEMA
from ray_gan.evaluate import EvalConfig, EvalReport, evaluate_model, run_evaluation
from ray_gan.evaluate.classifier import accuracy, train_style_classifier
from ray_gan.evaluate.features import INCEPTION_WEIGHTS_ENV, RandomCNNExtractor, make_extractor
from ray_gan.evaluate.realdata import real_images
from ray_gan.generate.render import Renderer
from ray_gan.images import to_model_space

# tiny_model's styles, drawn as three of the demo styles
STYLES = {"alpha": "flat", "beta": "outline", "gamma": "stripes"}
N_TRAIN, N_VAL, SIZE = 40, 12, 32
FAST = dict(classifier_steps=40, kid_subsets=10, device="cpu", log=lambda s: None)


def write_tiny_dataset(uri: str, n_train: int = N_TRAIN, n_val: int = N_VAL, size: int = SIZE) -> str:
    """A prepared dataset in the layout ``ray-gan prepare`` writes: one shard per split."""
    names = sorted(STYLES)
    rows: dict[str, list[dict]] = {"train": [], "val": []}
    for demo_style, filename, png in iter_demo_images(per_style=n_train + n_val, size=size, seed=3):
        name = next((k for k, v in STYLES.items() if v == demo_style), None)
        if name is None:
            continue
        index = int(filename.split("-")[1].split(".")[0])
        split = "train" if index < n_train else "val"
        rows[split].append({"image": png, "style": names.index(name), "style_name": name,
                            "source_key": f"{name}/{filename}", "sha256": f"{len(rows[split]):064x}",
                            "width": size, "height": size})
    shards = []
    for split, items in rows.items():
        items = items[::2] + items[1::2]  # mix styles a little, as prepare's hash order does
        buf = io.BytesIO()
        pq.write_table(pa.Table.from_pylist(items, schema=PARQUET_SCHEMA), buf)
        storage.write_bytes(storage.join(uri, f"{split}-00000.parquet"), buf.getvalue())
        shards.append({"path": f"{split}-00000.parquet", "split": split, "rows": len(items), "bytes": buf.tell()})
    counts = {split: {"total": len(items), "per_style": {n: sum(r["style_name"] == n for r in items) for n in names}}
              for split, items in rows.items()}
    storage.write_json(storage.join(uri, "dataset.json"),
                       {"schema_version": 1, "styles": names, "resolution": size, "channels": 3, "counts": counts,
                        "shards": shards, "split_seed": 0, "val_fraction": 0.2, "skipped": {}})
    return uri


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Small CPU workloads on a shared 2-core machine: one thread avoids OpenMP spin-waiting
    (5–10× faster under load, about as fast when idle)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory) -> str:
    return write_tiny_dataset(str(tmp_path_factory.mktemp("eval") / "ds"))


# ---- real data ------------------------------------------------------------------------

def test_real_images_are_sampled_evenly_per_style_and_resized_to_the_model(tiny_dataset):
    info = read_dataset_info(tiny_dataset)
    real = real_images(info, "val", {0: 2, 1: 0, 2: 1}, resolution=16, per_style=5)
    assert real.images.shape == (15, 16, 16, 3) and real.images.dtype == np.uint8
    assert list(real.styles) == [0] * 5 + [1] * 5 + [2] * 5  # model indices, grouped
    assert real.available == {0: N_VAL, 1: N_VAL, 2: N_VAL}
    assert all(k.startswith("beta/") for k in real.keys[:5])  # dataset style 1 (beta) → model style 0
    again = real_images(info, "val", {0: 2, 1: 0, 2: 1}, resolution=16, per_style=5)
    assert np.array_equal(real.images, again.images)
    limited = real_images(info, "train", {0: 0, 1: 1, 2: 2}, resolution=32, limit=30)
    assert len(limited.images) == 30 and set(np.bincount(limited.styles)) == {10}


def test_to_model_space_grey_and_resize():
    img = np.zeros((2, 32, 32, 3), np.uint8)
    img[..., 0] = 255  # pure red
    grey = to_model_space(img, 16, channels=1)
    assert grey.shape == (2, 16, 16, 3) and np.all(grey == 85)  # channel mean, as training feeds it
    assert to_model_space(img, 32, channels=3) is img


# ---- feature extractors ---------------------------------------------------------------

# sha256 of the random-cnn weights; if this changes (a torch RNG change), random-cnn FIDs
# are no longer comparable with reports made before.
RANDOM_CNN_FINGERPRINT = "277649011c62dca8f3d590ad3803f89755c4ee6b01f0392638f6d87c3729aa42"


def test_random_cnn_is_fixed_and_deterministic():
    a, b = RandomCNNExtractor("cpu"), RandomCNNExtractor("cpu", batch_size=3)
    assert a.fingerprint == b.fingerprint == RANDOM_CNN_FINGERPRINT
    imgs = np.random.default_rng(0).integers(0, 256, size=(7, 32, 32, 3), dtype=np.uint8)
    fa, fb = a(imgs), b(imgs)
    assert fa.shape == (7, a.dim) == (7, 512) and fa.dtype == np.float64
    np.testing.assert_allclose(fa, fb, rtol=1e-5, atol=1e-6)  # batching does not matter
    assert not np.allclose(fa[0], fa[1])
    assert make_extractor("auto").name == "random-cnn"
    with pytest.raises(ValueError, match="uint8"):
        a(imgs.astype(np.float32))


def test_inception_needs_a_local_weights_file(tmp_path, monkeypatch):
    monkeypatch.delenv(INCEPTION_WEIGHTS_ENV, raising=False)
    with pytest.raises(ValueError, match="--inception-weights"):
        make_extractor("inception")
    with pytest.raises(FileNotFoundError, match="never downloaded"):
        make_extractor("inception", str(tmp_path / "missing.pth"))
    pickled = tmp_path / "pickled.pth"
    torch.save({"net": torch.nn.Linear(2, 2)}, pickled)  # a pickled module, not a state dict
    with pytest.raises(ValueError, match="weights-only"):
        make_extractor("inception", str(pickled))
    not_inception = tmp_path / "linear.pth"
    torch.save(torch.nn.Linear(2, 2).state_dict(), not_inception)
    with pytest.raises(ValueError, match="inception_v3"):
        make_extractor("inception", str(not_inception))


def test_inception_loads_a_local_state_dict(tmp_path, monkeypatch):
    from torchvision.models import inception_v3

    torch.manual_seed(0)
    net = inception_v3(weights=None, aux_logits=False, init_weights=False)
    path = tmp_path / "inception.pth"
    torch.save(net.state_dict(), path)
    monkeypatch.setenv(INCEPTION_WEIGHTS_ENV, str(path))
    ext = make_extractor("auto", device="cpu")  # the environment variable selects Inception
    assert (ext.name, ext.dim, ext.input_size) == ("inception", 2048, 299)
    feats = ext(np.full((2, 32, 32, 3), 200, np.uint8))
    assert feats.shape == (2, 2048) and np.isfinite(feats).all()
    net.fc = torch.nn.Identity()
    with torch.no_grad():  # pool3 of the same weights, on the documented preprocessing
        x = torch.full((1, 3, 299, 299), 200 / 255.0)
        expected = net.eval()((x - 0.5) / 0.5).double().numpy()
    np.testing.assert_allclose(feats[:1], expected, rtol=1e-4, atol=1e-5)


# ---- style classifier -----------------------------------------------------------------

def test_style_classifier_learns_the_styles_and_is_seeded(tiny_dataset):
    info = read_dataset_info(tiny_dataset)
    train = real_images(info, "train", {0: 0, 1: 1, 2: 2}, resolution=16)
    val = real_images(info, "val", {0: 0, 1: 1, 2: 2}, resolution=16)
    fit = train_style_classifier(train.images, train.styles, 3, val.images, val.styles, steps=40, seed=0)
    assert fit.val is not None and fit.val.overall >= 0.9
    again = train_style_classifier(train.images, train.styles, 3, steps=40, seed=0)
    assert np.array_equal(fit.classifier.predict(val.images), again.classifier.predict(val.images))
    acc = accuracy(np.array([0, 1, 1, 2]), np.array([0, 1, 2, 2]), 4)
    assert acc.overall == 0.75 and acc.per_style == [1.0, 1.0, 0.5, None] and acc.counts == [1, 1, 2, 0]
    assert acc.confusion == [[1, 0, 0, 0], [0, 1, 0, 0], [0, 1, 1, 0], [0, 0, 0, 0]]


# ---- end to end -----------------------------------------------------------------------

def _strip_run(doc: dict) -> dict:
    return {k: v for k, v in doc.items() if k != "run"}


def test_evaluate_writes_a_deterministic_report(tiny_model, tiny_dataset):
    report = evaluate_model(tiny_model, tiny_dataset, n_per_style=10, seed=0, **FAST)
    assert isinstance(report, EvalReport)
    out = storage.join(tiny_model, "eval", "val-00000001")
    assert report.files["report_json"] == storage.join(out, "report.json")
    doc = storage.read_json(report.files["report_json"])
    assert doc == storage.read_json(storage.join(tiny_model, "eval", "latest.json"))
    assert EvalReport.model_validate(doc) == report
    # counts: ≤ n_per_style real images per style (12 available), as many generated
    assert (report.n_real, report.n_generated) == (30, 30)
    assert [(s.style, s.n_real, s.n_generated, s.available_real) for s in report.per_style] == \
        [("alpha", 10, 10, 12), ("beta", 10, 10, 12), ("gamma", 10, 10, 12)]
    # the extractor is named, and random-cnn FIDs are marked as not comparable
    assert report.extractor.name == "random-cnn" and not report.extractor.comparable_with_published_fid
    assert any("NOT with published Inception FIDs" in n for n in report.notes)
    # an untrained generator is far from the data and copies nothing
    assert report.fid > 0 and report.kid.mean > 0
    assert report.precision is not None and 0 <= report.precision <= 1 and 0 <= report.coverage <= 1
    assert report.memorisation.verdict_space == "pixel" and not report.memorisation.flagged
    assert report.memorisation.near_copy_share < 0.5
    assert len(report.memorisation.worst_pairs) == 16
    assert report.classifier.val_accuracy is not None and report.classifier.val_images == 30
    assert set(report.summary()) >= {"fid", "kid_mean", "precision", "recall", "density", "coverage",
                                     "intra_fid_mean", "style_accuracy", "near_copy_share"}
    html = storage.read_bytes(report.files["report_html"]).decode()
    assert "data:image/png;base64," in html and "random-cnn" in html and "gamma" in html
    pairs = Image.open(io.BytesIO(storage.read_bytes(report.files["worst_pairs_png"])))
    assert pairs.size[0] < pairs.size[1]  # two columns, 16 rows
    grid_bytes = storage.read_bytes(report.files["samples_alpha"])
    table = report.summary_table()
    assert "not comparable with published Inception FIDs" in table and "memorisation not flagged" in table
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


def test_cli_evaluate(tiny_model, tiny_dataset, capsys, monkeypatch):
    from ray_gan.cli import _config, build_parser, main
    from ray_gan.config import EvalConfig

    a = build_parser().parse_args(["evaluate", "m", "--data", "d", "--n-per-style", "7", "--extractor", "random-cnn",
                                   "--truncation", "0.5", "--device", "cpu"])
    cfg = _config(EvalConfig, a)
    assert (cfg.model, cfg.data, cfg.split, cfg.n_per_style, cfg.extractor, cfg.truncation) == \
        ("m", "d", "val", 7, "random-cnn", 0.5)
    monkeypatch.delenv(INCEPTION_WEIGHTS_ENV, raising=False)
    assert main(["evaluate", tiny_model, "--data", tiny_dataset, "--extractor", "inception", "--device", "cpu"]) == 1
    assert "--inception-weights" in capsys.readouterr().err
    # (20 classifier steps instead of 300 keep the unit test fast)
    assert main(["evaluate", tiny_model, "--data", tiny_dataset, "--n-per-style", "4", "--device", "cpu",
                 "--classifier-steps", "20"]) == 0
    out = capsys.readouterr().out
    assert "FID" in out and "near-copies" in out
    assert storage.join(tiny_model, "eval", "val-00000001", "report.json") in out


def test_real_images_stop_reading_shards_once_the_limits_are_met(tmp_path):
    ds = write_tiny_dataset(str(tmp_path / "ds"), n_train=8, n_val=2, size=16)
    doc = storage.read_json(storage.join(ds, "dataset.json"))
    train = next(s for s in doc["shards"] if s["split"] == "train")
    doc["shards"].append({**train, "path": "train-00001.parquet"})  # listed, but never written
    storage.write_json(storage.join(ds, "dataset.json"), doc)
    info = read_dataset_info(ds)
    assert len(real_images(info, "train", {0: 0, 1: 1, 2: 2}, 16, limit=20).images) == 20
    assert len(real_images(info, "train", {0: 0, 1: 1, 2: 2}, 16, per_style=8).images) == 24
    with pytest.raises(storage.StorageError):
        real_images(info, "train", {0: 0, 1: 1, 2: 2}, 16)  # no limit: every shard is read
