"""Quality gates of batch runs (ray_gan.batch.gates), applied by a generator replica's work
unit in this process (no Ray): rejected candidates are replaced by the variant's next seeds,
deterministically, and the manifest says why each seed was skipped."""

import io
import itertools

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ray_gan import storage
from ray_gan.batch.gates import calibrate, hamming, phash
from ray_gan.batch.job import BatchError, ChunkPlan, _GenerateChunks, part_name
from ray_gan.checkpoint import read_model_info
from ray_gan.config import BatchJobSpec
from ray_gan.data.prepare import PARQUET_SCHEMA
from ray_gan.generate.render import Renderer
from ray_gan.images import encode
from ray_gan.manifest import MANIFEST_DIR

pytestmark = pytest.mark.usefixtures("one_torch_thread")

STYLES = ["alpha", "beta", "gamma"]


def _write_dataset(uri: str, splits: dict[str, list[tuple[int, np.ndarray]]], size: int) -> str:
    """A prepared dataset (the layout ``ray-gan prepare`` writes) of the given images."""
    shards, counts = [], {}
    for split, items in splits.items():
        rows = [{"image": encode(img), "style": s, "style_name": STYLES[s], "source_key": f"{split}/{i}",
                 "sha256": f"{i:064x}", "width": size, "height": size} for i, (s, img) in enumerate(items)]
        buf = io.BytesIO()
        pq.write_table(pa.Table.from_pylist(rows, schema=PARQUET_SCHEMA), buf)
        storage.write_bytes(storage.join(uri, f"{split}-00000.parquet"), buf.getvalue())
        shards.append({"path": f"{split}-00000.parquet", "split": split, "rows": len(rows), "bytes": buf.tell()})
        counts[split] = {"total": len(rows), "per_style": {n: sum(s == k for s, _ in items)
                                                           for k, n in enumerate(STYLES)}}
    storage.write_json(storage.join(uri, "dataset.json"),
                       {"schema_version": 1, "styles": STYLES, "resolution": size, "channels": 3, "counts": counts,
                        "shards": shards, "split_seed": 0, "val_fraction": 0.2, "skipped": {}})
    return uri


def _replica(spec: BatchJobSpec, model: str) -> tuple[_GenerateChunks, ChunkPlan]:
    info = read_model_info(model)
    plan = ChunkPlan(tuple(STYLES), (0, 1, 2), spec.variants_per_style, spec.chunk_size)
    models = calibrate(spec.gates, info, spec.output, log=lambda m: None) if spec.gates else None
    return _GenerateChunks(spec.model_dump(), spec.output, info.weights_sha256, False, plan, 2, models), plan


def _part(out: str, style: int, chunk: int) -> list[dict]:
    data = storage.read_bytes(storage.join(out, MANIFEST_DIR, part_name(style, chunk)))
    return pq.read_table(io.BytesIO(data)).to_pylist()


def test_phash_is_stable_close_for_small_changes_and_far_for_other_images():
    rng = np.random.default_rng(0)
    base = (rng.random((4, 32, 32, 3)) * 255).astype(np.uint8)
    fy, fx = np.meshgrid(np.fft.fftfreq(32), np.fft.fftfreq(32), indexing="ij")
    amplitude = 1.0 / np.maximum(np.hypot(fy, fx), 1 / 32) ** 1.5  # a natural image's falling spectrum

    def picture() -> np.ndarray:
        f = np.fft.ifft2(amplitude * np.exp(2j * np.pi * rng.random((32, 32)))).real
        f = (f - f.min()) / (f.max() - f.min())
        return np.repeat(f[..., None] * 255, 3, axis=2)

    smooth = np.stack([picture() for _ in range(8)]).astype(np.uint8)
    h = phash(smooth)
    assert h.dtype == np.uint64 and len(set(h.tolist())) == len(h)  # different images, different hashes
    assert np.array_equal(phash(smooth), h)
    noisy = np.clip(smooth.astype(int) + rng.integers(-3, 4, smooth.shape), 0, 255).astype(np.uint8)
    near = [int(hamming(a, np.array([b], np.uint64))[0]) for a, b in zip(h, phash(noisy))]
    far = [int(hamming(a, np.array([b], np.uint64))[0]) for a, b in itertools.combinations(h, 2)]
    assert max(near) <= 6 < np.median(far), (near, far)
    # hamming against a bit count done another way
    a, b = phash(base)[:2]
    assert hamming(a, np.array([b], np.uint64))[0] == bin(int(a) ^ int(b)).count("1")


def test_a_model_that_replays_its_training_images_gets_every_copy_replaced_by_the_next_seed(untrained_model,
                                                                                             tmp_path):
    """The training set *is* the model's images for seeds 0…5 of every style (a model that
    memorised its data): each of those candidates is a copy and is replaced by the
    variant's next seed, and the manifest row says which seed was skipped and why."""
    model = untrained_model(str(tmp_path / "model"), STYLES, resolution=16, seed=2)
    r = Renderer(model, device="cpu")
    v = 6
    copies = {s: r.render([s] * v, list(range(v))) for s in range(3)}
    fresh = {s: r.render([s] * 12, list(range(10_000, 10_012))) for s in range(3)}
    data = _write_dataset(str(tmp_path / "ds"), {
        "train": [(s, img) for s in range(3) for img in np.concatenate([copies[s], fresh[s][:6]])],
        "val": [(s, img) for s in range(3) for img in fresh[s][6:]]}, 16)
    spec = BatchJobSpec(job_id="copy", model=model, variants_per_style=v, output=str(tmp_path / "out"),
                        chunk_size=v, gates={"training_copies": {"quantile": 0.05, "relative_k": 3}, "data": data})
    replica, plan = _replica(spec, model)
    result = replica._run_chunk(0)  # style alpha, variants 0…5
    assert result["rejected_training_copy"] >= v and result["written"] == v
    rows = _part(spec.output, 0, 0)
    assert [row["variant"] for row in rows] == list(range(v))
    for row in rows:
        assert row["attempt"] >= 1 and row["seed"] == spec.seed(row["variant"], row["attempt"])
        first = row["skipped"][0]
        assert first["seed"] == row["variant"] and first["reason"].startswith("training-copy: score 0.0000")
        assert [s["seed"] for s in row["skipped"]] == [spec.seed(row["variant"], a) for a in range(row["attempt"])]
        assert row["train_score"] > replica.checker.models.limits[0]
        # the row renders its image again
        img = r.render([0], [row["seed"]])[0]
        assert storage.read_bytes(row["image_uri"]) == encode(img)
    # calibration is stored with the output: a re-run (another replica) applies the same gates
    again = calibrate(spec.gates, read_model_info(model), spec.output, log=lambda m: None)
    assert np.array_equal(again.limits, replica.checker.models.limits)
    assert storage.exists(storage.join(spec.output, "gates.safetensors"))
    # the contact sheet counts the rejections from the manifest and shows the delivered images
    from ray_gan.batch.report import write_report

    page = storage.read_bytes(write_report(spec.output, {"spec": spec.model_dump(), "styles": STYLES})).decode()
    rejected = sum(len(row["skipped"]) for row in rows)
    assert f"<tr><td>alpha</td><td>{v}</td><td>0</td><td>{rejected}</td><td>0</td><td>1</td>" in page
    assert page.count("<h3>alpha</h3><img") == 1 and "<h3>beta</h3>" not in page  # only what was delivered


def test_near_duplicates_are_replaced_in_variant_order_and_the_unit_renders_the_same_again(untrained_model,
                                                                                          tmp_path):
    model = untrained_model(str(tmp_path / "model"), STYLES, resolution=16, seed=4)
    v = 12
    r = Renderer(model, device="cpu")
    h = phash(r.render([1] * v, list(range(v))))
    pairwise = sorted(int(hamming(a, np.array([b], np.uint64))[0]) for a, b in itertools.combinations(h, 2))
    limit = pairwise[len(pairwise) // 10]  # a tenth of the unit's pairs are near-duplicates at this distance
    spec = BatchJobSpec(job_id="dup", model=model, variants_per_style=v, output=str(tmp_path / "a"),
                        chunk_size=v, gates={"near_duplicates": {"max_hamming": limit, "max_rms": 0.0}, "max_attempts": 64})
    replica, _ = _replica(spec, model)
    result = replica._run_chunk(1)  # style beta
    assert result["rejected_near_duplicate"] > 0
    rows = _part(spec.output, 1, 0)
    hashes = np.array([row["phash"] for row in rows], np.uint64)
    for i, row in enumerate(rows):
        assert row["phash"] == int(phash(r.render([1], [row["seed"]]))[0])
        if i:
            assert hamming(hashes[i], hashes[:i]).min() > limit  # no near-duplicate delivered
        for s in row["skipped"]:
            assert s["reason"].startswith("near-duplicate: pHash distance")
            earlier = s["reason"].rsplit(" of ", 1)[1]
            assert earlier in {x["image_id"] for x in rows[:i]}  # decided against earlier variants only
    other = spec.model_copy(update={"output": str(tmp_path / "b")})
    replica_b, _ = _replica(other, model)
    replica_b._run_chunk(1)
    assert [(x["seed"], x["image_sha256"]) for x in _part(other.output, 1, 0)] == \
        [(x["seed"], x["image_sha256"]) for x in rows]


def test_a_collapsed_model_fails_on_near_duplicates_instead_of_delivering_copies(untrained_model, tmp_path):
    """An untrained generator draws nearly the same flat picture for every seed: pHash bits
    of flat images are noise, the pixel difference is not."""
    model = untrained_model(str(tmp_path / "model"), STYLES, resolution=16, seed=1)
    spec = BatchJobSpec(job_id="flat", model=model, variants_per_style=4, output=str(tmp_path / "out"),
                        chunk_size=4, gates={"near_duplicates": {}, "max_attempts": 5})
    replica, _ = _replica(spec, model)
    with pytest.raises(BatchError, match=r"all 5 seeds tried.*near-duplicate: pixel RMS difference 0\.0"):
        replica._run_chunk(0)


def test_a_gate_no_seed_can_pass_fails_the_job_with_the_reasons(untrained_model, tiny_dataset, tmp_path):
    model = untrained_model(str(tmp_path / "model"), STYLES, resolution=16, seed=1)
    spec = BatchJobSpec(job_id="strict", model=model, variants_per_style=4, output=str(tmp_path / "out"),
                        chunk_size=4, gates={"style_confidence": {"min_confidence": 0.9999, "classifier_steps": 20},
                                             "data": tiny_dataset, "max_attempts": 3})
    replica, _ = _replica(spec, model)
    with pytest.raises(BatchError, match=r"all 3 seeds tried were rejected.*style-confidence: 0\.\d+ < 1\.000"):
        replica._run_chunk(0)
    assert not storage.exists(storage.join(spec.output, MANIFEST_DIR, part_name(0, 0)))


def test_gates_are_part_of_the_jobs_identity_and_seeds_must_fit():
    from ray_gan.batch.job import IDENTITY_FIELDS

    assert "gates" in IDENTITY_FIELDS
    spec = BatchJobSpec(job_id="j", model="m", variants_per_style=10, output="o", seed_base=7,
                        gates={"near_duplicates": {}})
    assert [spec.seed(3, a) for a in range(3)] == [10, 20, 30]
    with pytest.raises(ValueError, match="max_attempts"):
        BatchJobSpec(job_id="j", model="m", variants_per_style=10**8, output="o", seed_base=2**62 - 10**8,
                     gates={"near_duplicates": {}})
