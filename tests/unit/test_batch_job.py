"""ray_gan.batch.job: what a batch job checks before any work (and ``ray-gan generate``,
its local counterpart)."""

import pytest

from ray_gan import storage


def test_batch_and_generate_refuse_bad_controls_before_any_work(tiny_model, tiny_stylegan, tmp_path):
    from ray_gan.batch.job import BatchError, run_batch
    from ray_gan.config import BatchJobSpec
    from ray_gan.generate.controls import ControlError
    from ray_gan.generate.local import generate_images

    out = str(tmp_path / "batch")
    spec = dict(job_id="bad", model=tiny_stylegan, variants_per_style=2, output=out)
    for bad, needle in [({"edits": {"pc0": 1.0}}, "no edit directions"),
                        ({"mix": {"layers": "9:"}}, "selects none"),
                        ({"truncation": {"delta": 0.5}}, "unknown style")]:
        with pytest.raises(BatchError, match=needle):  # raised before Ray starts
            run_batch(BatchJobSpec(**spec, **bad), log=lambda s: None)
    with pytest.raises(BatchError, match="need a stylegan model"):
        run_batch(BatchJobSpec(**{**spec, "model": tiny_model}, mix={"layers": "coarse"}), log=lambda s: None)
    assert not storage.exists(storage.join(out, "job.json"))
    with pytest.raises(ControlError, match="finite"):  # `ray-gan generate --edit pc0=inf`
        generate_images(tiny_stylegan, None, 1, 0, 1.0, str(tmp_path / "g"), device="cpu", edits={"pc0": float("inf")})
    with pytest.raises(ControlError, match="between 0 and 2"):
        generate_images(tiny_stylegan, None, 1, 0, 2.5, str(tmp_path / "g"), device="cpu")


def test_work_units_cover_every_variant_once_and_blocks_stay_bounded():
    from ray_gan.batch.job import MAX_BLOCKS, ChunkPlan, _num_blocks

    plan = ChunkPlan(("a", "b"), (2, 0), variants_per_style=10, chunk_size=4)
    assert (plan.chunks_per_style, plan.total_chunks) == (3, 6)
    units = [plan.chunk(g) for g in range(plan.total_chunks)]
    assert units[2] == ("a", 2, 2, 8, 2) and units[3] == ("b", 0, 0, 0, 4)
    for style in ("a", "b"):
        variants = [v for s, _, _, start, n in units if s == style for v in range(start, start + n)]
        assert variants == list(range(10))  # each variant once, in order
    # A million images or a hundred million: the driver's dataset has at most MAX_BLOCKS
    # blocks; a small job gets a block per chunk.
    assert _num_blocks(6, 2) == 6
    assert _num_blocks(ChunkPlan(("a",) * 3, (0, 1, 2), 100_000_000, 64).total_chunks, 2) == MAX_BLOCKS
    assert 16 <= _num_blocks(1_000_000 // 64, 2) <= MAX_BLOCKS


def test_pack_tar_gives_each_member_a_byte_range_and_the_same_bytes_every_time():
    import io
    import tarfile

    from ray_gan.manifest import pack_tar

    members = [("a-00000000.png", b"first"), ("a-00000001.png", b""), ("b-" + "x" * 120 + ".png", b"\x00" * 700)]
    tar, offsets = pack_tar(members)
    assert pack_tar(members) == (tar, offsets)  # a unit written again is the same object
    for (name, data), off in zip(members, offsets):
        assert tar[off:off + len(data)] == data
    with tarfile.open(fileobj=io.BytesIO(tar)) as t:  # any tar reader unpacks it, long names included
        assert [(m.name, t.extractfile(m).read()) for m in t.getmembers()] == members


def test_a_tar_layout_unit_is_one_shard_whose_ranges_render_again_and_verify_checks_them(untrained_model, tmp_path):
    """``layout: tar``: a work unit's images go up as one tar object; each manifest row
    names its shard and byte range, which holds exactly the image its row renders again;
    ``ray-gan verify`` reads each shard once and reports a damaged or short one."""
    import hashlib

    from ray_gan.batch.job import ChunkPlan, _GenerateChunks
    from ray_gan.batch.report import write_report
    from ray_gan.batch.verify import verify_output
    from ray_gan.checkpoint import read_model_info
    from ray_gan.config import BatchJobSpec
    from ray_gan.generate.render import Renderer
    from ray_gan.images import encode
    from ray_gan.manifest import read_image, read_manifest, shard_uri

    styles = ["alpha", "beta"]
    model = untrained_model(str(tmp_path / "model"), styles, resolution=16, seed=3)
    out = str(tmp_path / "out")
    spec = BatchJobSpec(job_id="tar", model=model, variants_per_style=5, chunk_size=3, output=out, layout="tar",
                        seed_base=10)
    info = read_model_info(model)
    plan = ChunkPlan(tuple(styles), (0, 1), spec.variants_per_style, spec.chunk_size)
    replica = _GenerateChunks(spec.model_dump(), out, info.weights_sha256, False, plan, 2)
    for g in range(plan.total_chunks):
        assert replica._run_chunk(g)["written"] == (3 if g % 2 == 0 else 2)
    assert not storage.exists(storage.join(out, "images"))  # no object per image
    shards = sorted(e.key for e in storage.list_files(storage.join(out, "shards")))
    assert shards == ["alpha/alpha-c0000000.tar", "alpha/alpha-c0000001.tar", "beta/beta-c0000000.tar",
                      "beta/beta-c0000001.tar"]
    rows = read_manifest(out).to_pylist()
    assert len(rows) == 10
    r = Renderer(model, device="cpu")
    for row in rows:
        chunk = row["variant"] // 3
        assert row["image_uri"] == shard_uri(out, row["style"], chunk) and row["image_offset"] > 0
        data = read_image(row)
        assert len(data) == row["image_size"] and hashlib.sha256(data).hexdigest() == row["image_sha256"]
        img = r.render([styles.index(row["style"])], [row["seed"]])[0]  # a function of its row
        assert data == encode(img)
    first = storage.read_bytes(shard_uri(out, "beta", 1))
    storage.delete(storage.join(out, "manifest", "part-s001-c0000001.parquet"))  # interrupted before the part
    replica._run_chunk(3)
    assert storage.read_bytes(shard_uri(out, "beta", 1)) == first  # written again, the same bytes

    storage.write_json(storage.join(out, "job.json"), {"spec": spec.model_dump(), "styles": styles,
                                                       "weights_sha256": info.weights_sha256, "status": "complete"})
    report = verify_output(out)
    assert report.ok and report.rows == report.objects_checked == 10, report.summary()
    page = storage.read_bytes(write_report(out, storage.read_json(storage.join(out, "job.json")))).decode()
    assert page.count("<h3>alpha</h3><img") == 1 and page.count("<h3>beta</h3><img") == 1  # grids from the shards

    damaged = bytearray(first)
    victim = next(row for row in rows if row["style"] == "beta" and row["variant"] == 4)
    damaged[victim["image_offset"] + 10] ^= 0xFF
    storage.write_bytes(shard_uri(out, "beta", 1), bytes(damaged))
    report = verify_output(out)
    assert not report.ok and len(report.problems) == 1 and "beta-00000004" in report.problems[0] \
        and "sha256" in report.problems[0], report.summary()
    storage.write_bytes(shard_uri(out, "beta", 1), first[:victim["image_offset"]])
    report = verify_output(out)
    assert not report.ok and any("beyond the shard" in p for p in report.problems), report.summary()
    storage.delete(shard_uri(out, "alpha", 0))
    assert any("missing" in p for p in verify_output(out).problems)
    # The contact sheet is still written, with what can be read, and says what could not.
    page = storage.read_bytes(write_report(out, storage.read_json(storage.join(out, "job.json")))).decode()
    assert page.count("<h3>alpha</h3><img") == 1 and "3 of these images could not be read back" in page
    assert "1 of these images could not be read back" in page  # beta-00000004, cut off its shard


def test_a_job_started_before_a_spec_field_existed_is_completed_and_a_changed_layout_refused(tiny_stylegan,
                                                                                             tmp_path):
    from ray_gan.batch.job import BatchError, _check_job_json
    from ray_gan.checkpoint import read_model_info
    from ray_gan.config import BatchJobSpec

    out = str(tmp_path / "out")
    spec = BatchJobSpec(job_id="old", model=tiny_stylegan, variants_per_style=4, output=out)
    sha = read_model_info(tiny_stylegan).weights_sha256
    old = spec.model_copy(update={"chunk_size": 64}).model_dump()  # as run_batch records it: settled
    del old["layout"]  # job.json of a job started before `layout`: it wrote files
    storage.write_json(storage.join(out, "job.json"), {"spec": old, "weights_sha256": sha})
    assert _check_job_json(out, spec, sha)["spec"] == old
    with pytest.raises(BatchError, match="different layout"):
        _check_job_json(out, spec.model_copy(update={"layout": "tar"}), sha)


def test_an_unset_chunk_size_follows_the_model_for_a_new_job_and_the_job_on_a_re_run(tiny_stylegan, tmp_path):
    from ray_gan.batch.job import BatchError, _check_job_json, _with_chunk_size
    from ray_gan.checkpoint import read_model_info
    from ray_gan.config import BatchJobSpec

    out = str(tmp_path / "out")
    spec = BatchJobSpec(job_id="chunks", model=tiny_stylegan, variants_per_style=4, output=out)
    assert spec.chunk_size is None
    assert _with_chunk_size(spec, None, 32).chunk_size == 256  # small images: fewer requests per image
    assert _with_chunk_size(spec, None, 64).chunk_size == 256
    assert _with_chunk_size(spec, None, 128).chunk_size == 64  # bounds the bytes a unit holds
    explicit = spec.model_copy(update={"chunk_size": 16})
    assert _with_chunk_size(explicit, None, 32).chunk_size == 16
    gated = BatchJobSpec(job_id="g", model=tiny_stylegan, variants_per_style=4, output=out,
                         gates={"near_duplicates": {}})  # compares each image with its unit's: kept small
    assert _with_chunk_size(gated, None, 32).chunk_size == 64
    # A job started when the default was 64 (or with 64 set): a re-run that leaves it unset keeps 64 …
    sha = read_model_info(tiny_stylegan).weights_sha256
    started = spec.model_copy(update={"chunk_size": 64}).model_dump()
    storage.write_json(storage.join(out, "job.json"), {"spec": started, "weights_sha256": sha})
    prev = _check_job_json(out, spec, sha)
    assert _with_chunk_size(spec, prev, 32).chunk_size == 64
    del started["chunk_size"]  # a job.json without it: the job ran with the old default, 64
    storage.write_json(storage.join(out, "job.json"), {"spec": started, "weights_sha256": sha})
    assert _with_chunk_size(spec, _check_job_json(out, spec, sha), 32).chunk_size == 64
    assert _check_job_json(out, spec.model_copy(update={"chunk_size": 64}), sha) is not None
    # … and one that sets another is refused: its units would not match the job's parts.
    with pytest.raises(BatchError, match="different chunk_size"):
        _check_job_json(out, spec.model_copy(update={"chunk_size": 256}), sha)
