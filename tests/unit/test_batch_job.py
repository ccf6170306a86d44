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
