"""Every stage against a real S3 server (SeaweedFS) and a local Ray cluster:
prepare → train → resume → batch (incl. a killed run); serving: test_serve.py."""

from __future__ import annotations

import hashlib
import io
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml
from PIL import Image

from ray_gan import checkpoint as ckpt
from ray_gan import storage
from ray_gan.batch.job import BatchError, read_manifest, run_batch
from ray_gan.checkpoint import read_model_info
from ray_gan.config import BatchJobSpec, PrepareConfig, TrainConfig
from ray_gan.data.dataset import read_dataset_info
from ray_gan.data.prepare import prepare
from ray_gan.generate.render import Renderer
from ray_gan.manifest import part_name, read_image
from ray_gan.train.trainer import TrainError, train

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def s3_dataset(ray_cluster, bucket, multistyle_on_s3) -> dict:
    dst = f"s3://{bucket}/datasets/shapes32"
    doc = prepare(PrepareConfig(src=multistyle_on_s3["uri"], dst=dst, resolution=32, val_fraction=0.2, seed=0,
                                shard_rows=64))
    return {"uri": dst, "doc": doc}


@pytest.fixture(scope="module")
def s3_model(s3_dataset, bucket) -> str:
    out = f"s3://{bucket}/models/shapes-dcgan"
    train(TrainConfig.from_flat(dataset=s3_dataset["uri"], out=out, arch="dcgan", workers=2, steps=4, batch_size=8,
                      checkpoint_every=2, log_every=1, g_channels=8, d_channels=8, style_balance="uniform"))
    return out


def test_prepare_reads_s3_skips_bad_files_and_writes_shards(s3_dataset, multistyle_on_s3):
    doc = s3_dataset["doc"]
    assert doc["styles"] == ["flat", "outline", "stripes"]
    n_good = multistyle_on_s3["n_good"]
    assert doc["counts"]["train"]["total"] + doc["counts"]["val"]["total"] == n_good
    assert doc["skipped"] == {"corrupt": 1, "not_image": 1, "duplicate": 1}
    assert 0 < doc["counts"]["val"]["total"] < n_good * 0.4

    info = read_dataset_info(s3_dataset["uri"])
    rows = 0
    for shard in info.shards:
        table = pq.read_table(io.BytesIO(storage.read_bytes(storage.join(info.uri, shard["path"]))))
        assert table.num_rows == shard["rows"]
        assert set(table.column_names) >= {"image", "style", "style_name", "source_key", "sha256", "width", "height"}
        img = Image.open(io.BytesIO(table.column("image")[0].as_py()))
        assert img.size == (32, 32) and img.mode == "RGB"
        rows += table.num_rows
    assert rows == n_good


def test_split_is_the_same_on_every_run(s3_dataset, multistyle_on_s3, bucket):
    again = f"s3://{bucket}/datasets/shapes32-again"
    prepare(PrepareConfig(src=multistyle_on_s3["uri"], dst=again, resolution=32, val_fraction=0.2, seed=0,
                          shard_rows=50))

    def val_keys(uri):
        info = read_dataset_info(uri)
        keys = set()
        for u in info.shard_uris("val"):
            keys |= set(pq.read_table(io.BytesIO(storage.read_bytes(u))).column("source_key").to_pylist())
        return keys

    assert val_keys(again) == val_keys(s3_dataset["uri"])


def test_train_writes_checkpoints_to_s3_and_resumes(s3_model, s3_dataset):
    info = read_model_info(s3_model)
    assert info.step == 4 and info.styles == ["flat", "outline", "stripes"]
    assert [h["step"] for h in info.raw["history"]] == [2, 4]
    assert info.raw["history"][-1]["d_val_real_loss"] is not None
    # D's accuracy per style, over both workers' steps since the last checkpoint (issue #20)
    by_style = info.raw["history"][-1]["d_accuracy_by_style"]
    assert set(by_style) <= set(info.styles) and len(by_style) >= 2 and all(0 <= a <= 1 for a in by_style.values())
    assert info.raw["train_config"]["optim"]["style_balance"] == "uniform"
    assert info.raw["dataset"]["checksum"] == read_dataset_info(s3_dataset["uri"]).checksum
    for name in (*ckpt.WEIGHTS.values(), ckpt.OPTIMIZER_FILE, ckpt.rng_file(0), ckpt.rng_file(1)):
        assert storage.exists(storage.join(info.checkpoint, name)), name
    assert storage.exists(storage.join(s3_model, "samples", "step-00000004.png"))

    with pytest.raises(TrainError, match="--resume"):
        train(TrainConfig.from_flat(dataset=s3_dataset["uri"], out=s3_model, arch="dcgan", workers=2, steps=6, batch_size=8))
    # a setting the arch cannot take is refused by the driver, before any Ray work
    with pytest.raises(TrainError, match="style_loss needs a conditional stylegan"):
        train(TrainConfig.from_flat(dataset=s3_dataset["uri"], out=f"{s3_model}-bad", arch="dcgan", style_loss=1.0,
                          workers=2, batch_size=8))

    resumed = f"{s3_model}-resumed"
    # Copy the run so far, then continue it to step 6.
    for e in storage.list_files(s3_model):
        storage.write_bytes(storage.join(resumed, e.key), storage.read_bytes(storage.join(s3_model, e.key)))
    train(TrainConfig.from_flat(dataset=s3_dataset["uri"], out=resumed, arch="dcgan", workers=2, steps=6, batch_size=8,
                      checkpoint_every=2, g_channels=8, d_channels=8, resume=True))
    after = read_model_info(resumed)
    assert after.step == 6
    assert [h["step"] for h in after.raw["history"]] == [2, 4, 6]
    assert after.raw["history"][:2] == info.raw["history"]
    assert after.weights_sha256 != info.weights_sha256

    # A loss over the divergence limit stops the run with a clear message; the last
    # good checkpoint stays the model.
    with pytest.raises(TrainError, match=r"diverged at step 7.*last good checkpoint \(step 6\)"):
        train(TrainConfig.from_flat(dataset=s3_dataset["uri"], out=resumed, arch="dcgan", workers=2, steps=10, batch_size=8,
                          checkpoint_every=2, max_loss=1e-3, resume=True))
    kept = read_model_info(resumed)
    assert kept.step == 6 and kept.weights_sha256 == after.weights_sha256
    assert not storage.exists(storage.join(resumed, "checkpoints", "step-00000008", "model.json"))


def _check_manifest(output: str, expected_rows: int, weights_sha: str) -> None:
    from ray_gan.batch.verify import verify_output

    report = verify_output(output)  # ray-gan verify: objects, sha256, duplicates, count
    assert report.ok and report.rows == expected_rows, report.summary()
    m = read_manifest(output).to_pylist()
    assert len(m) == expected_rows
    assert len({r["image_id"] for r in m}) == expected_rows  # no duplicate
    for r in m:
        data = read_image(r)  # every row's object (or shard range) exists …
        assert hashlib.sha256(data).hexdigest() == r["image_sha256"]  # … with the recorded bytes
        assert r["weights_sha256"] == weights_sha


def test_batch_to_s3_is_deterministic_and_rerun_writes_nothing(s3_model, bucket):
    spec = BatchJobSpec(job_id="b1", model=s3_model, styles=["flat", "stripes"], variants_per_style=10,
                        seed_base=100, truncation=0.7, output=f"s3://{bucket}/batch/b1", chunk_size=4, replicas=2)
    res = run_batch(spec)
    assert (res.images, res.chunks_run, res.images_written) == (20, 6, 20)
    info = read_model_info(s3_model)
    _check_manifest(spec.output, 20, info.weights_sha256)
    rows = {r["image_id"]: r for r in read_manifest(spec.output).to_pylist()}
    row = rows["stripes-00000003"]
    assert (row["seed"], row["style"], row["truncation"], row["width"]) == (103, "stripes", 0.7, 32)
    assert row["image_uri"] == f"s3://{bucket}/batch/b1/images/stripes/stripes-00000003.png"

    # Reproducible from its manifest row alone.
    r = Renderer(row["model_uri"], device="cpu")
    img = r.render([r.info.styles.index(row["style"])], [row["seed"]], row["truncation"])[0]
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(storage.read_bytes(row["image_uri"])))), img)

    again = run_batch(spec)
    assert (again.chunks_run, again.chunks_skipped, again.images_written) == (0, 6, 0)
    _check_manifest(spec.output, 20, info.weights_sha256)

    other = spec.model_copy(update={"output": f"s3://{bucket}/batch/b1-copy"})
    run_batch(other)
    for e in storage.list_files(storage.join(spec.output, "images")):
        a = storage.read_bytes(storage.join(spec.output, "images", e.key))
        assert a == storage.read_bytes(storage.join(other.output, "images", e.key))

    with pytest.raises(BatchError, match="different variants_per_style"):
        run_batch(spec.model_copy(update={"variants_per_style": 11}))


def test_killed_batch_is_completed_by_a_rerun_without_duplicates(s3_model, bucket, ray_cluster, s3_server, tmp_path):
    output = f"s3://{bucket}/batch/killed"
    spec = dict(job_id="killed", model=s3_model, styles="all", variants_per_style=300, seed_base=0, truncation=1.0,
                output=output, chunk_size=3, replicas=2)
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(spec))
    env = dict(os.environ, RAY_ADDRESS=ray_cluster["address"], RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0")
    proc = subprocess.Popen([sys.executable, "-m", "ray_gan.cli", "batch", str(path)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    total_parts = 3 * 100
    client, prefix = s3_server["client"], "batch/killed/manifest/"
    deadline = time.monotonic() + 240
    try:
        while True:  # wait until the job is visibly under way, then kill it hard
            n = client.list_objects_v2(Bucket=bucket, Prefix=prefix).get("KeyCount", 0)
            if n >= 5:
                break
            assert proc.poll() is None, "batch exited before it could be interrupted"
            assert time.monotonic() < deadline, "batch made no progress"
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    n_parts = len(storage.list_files(storage.join(output, "manifest")))
    assert 5 <= n_parts < total_parts, "the run was not interrupted midway"
    partial = read_manifest(output)
    assert len(partial) == 3 * n_parts or len(partial) >= 3 * 5

    res = run_batch(BatchJobSpec(**spec))
    assert res.chunks_skipped >= n_parts
    assert res.chunks_run + res.chunks_skipped == total_parts
    _check_manifest(output, 900, read_model_info(s3_model).weights_sha256)
    assert len(storage.list_files(storage.join(output, "images"))) == 900


def test_batch_with_quality_gates_on_s3_calibrates_once_and_writes_a_contact_sheet(s3_model, bucket, s3_dataset):
    """All three gates through Ray and S3: the training data is the dataset model.json names,
    the calibration is stored beside the output and reused by a re-run, every row carries
    what the gates measured, and the contact sheet shows every style."""
    gates = {"training_copies": {"quantile": 0.05}, "style_confidence": {"min_confidence": 1e-6, "classifier_steps": 20},
             "near_duplicates": {"max_hamming": 0, "max_rms": 0.0}}
    spec = BatchJobSpec(job_id="gated", model=s3_model, styles="all", variants_per_style=6, seed_base=7,
                        output=f"s3://{bucket}/batch/gated", chunk_size=3, replicas=2, gates=gates)
    res = run_batch(spec)
    info = read_model_info(s3_model)
    _check_manifest(spec.output, 6 * len(info.styles), info.weights_sha256)
    doc = storage.read_json(storage.join(spec.output, "job.json"))
    assert doc["gates"]["dataset"] == s3_dataset["uri"] and doc["gates"]["train_images"] > 0
    assert set(doc["gates"]["near_copy_thresholds"]) == set(info.styles)
    calibration = storage.read_bytes(storage.join(spec.output, "gates.safetensors"))
    for r in read_manifest(spec.output).to_pylist():
        assert r["train_score"] is not None and r["style_confidence"] is not None and r["phash"] is not None
        assert r["seed"] == spec.seed(r["variant"], r["attempt"]) and len(r["skipped"]) == r["attempt"]
    assert res.report == storage.join(spec.output, "report.html")
    page = storage.read_bytes(res.report).decode()
    assert all(f"<h3>{s}</h3><img" in page for s in info.styles) and "rejected: training copy" in page
    again = run_batch(spec.model_copy(update={"replicas": 1}))  # not part of the job's identity
    assert again.images_written == 0
    assert storage.read_bytes(storage.join(spec.output, "gates.safetensors")) == calibration
    with pytest.raises(BatchError, match="different gates"):
        run_batch(BatchJobSpec(**{**spec.model_dump(), "gates": {**gates, "training_copies": {"quantile": 0.1}}}))


def test_a_tar_layout_batch_on_s3_resumes_and_verifies(s3_model, bucket):
    """``layout: tar`` through Ray and S3: one shard per work unit; a run interrupted after
    some shards (one unit with its shard but no part, one with neither) is completed by a
    re-run that writes only those units, the same bytes again; each row's byte range is its
    image; the contact sheet's grids come from the shards."""
    spec = BatchJobSpec(job_id="tar", model=s3_model, styles=["flat", "stripes"], variants_per_style=10,
                        seed_base=5, output=f"s3://{bucket}/batch/tar", chunk_size=4, replicas=2, layout="tar")
    run_batch(spec)
    shards = sorted(e.key for e in storage.list_files(storage.join(spec.output, "shards")))
    assert shards == [f"{s}/{s}-c{c:07d}.tar" for s in ("flat", "stripes") for c in range(3)]
    assert not storage.exists(storage.join(spec.output, "images"))
    kept = storage.read_bytes(storage.join(spec.output, "shards", "flat", "flat-c0000001.tar"))
    # as a killed driver leaves it: job.json running, a unit whose shard is up but not its
    # part, a unit with neither
    doc = storage.read_json(storage.join(spec.output, "job.json"))
    storage.write_json(storage.join(spec.output, "job.json"), {**doc, "status": "running"})
    styles = read_model_info(s3_model).styles  # parts are named by the model's style index
    storage.delete(storage.join(spec.output, "manifest", part_name(styles.index("flat"), 1)))
    storage.delete(storage.join(spec.output, "manifest", part_name(styles.index("stripes"), 2)))
    storage.delete(storage.join(spec.output, "shards", "stripes", "stripes-c0000002.tar"))
    res = run_batch(spec)
    assert (res.chunks_run, res.chunks_skipped, res.images_written) == (2, 4, 6)
    assert storage.read_bytes(storage.join(spec.output, "shards", "flat", "flat-c0000001.tar")) == kept
    _check_manifest(spec.output, 20, read_model_info(s3_model).weights_sha256)
    row = next(r for r in read_manifest(spec.output).to_pylist() if r["image_id"] == "stripes-00000009")
    assert row["image_uri"] == f"s3://{bucket}/batch/tar/shards/stripes/stripes-c0000002.tar"
    r = Renderer(row["model_uri"], device="cpu")
    img = r.render([r.info.styles.index("stripes")], [row["seed"]], row["truncation"])[0]
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(read_image(row)))), img)
    page = storage.read_bytes(res.report).decode()
    assert page.count("<h3>flat</h3><img") == 1 and page.count("<h3>stripes</h3><img") == 1
