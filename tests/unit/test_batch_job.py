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
