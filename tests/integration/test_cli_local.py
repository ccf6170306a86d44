"""The `ray-gan` CLI end to end on local storage, as a user runs it (subprocesses
attached to the session's Ray cluster through RAY_ADDRESS)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

pytestmark = pytest.mark.integration


def _run(args, env, cwd):
    proc = subprocess.run([sys.executable, "-m", "ray_gan.cli", *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def test_cli_demo_data_prepare_train_generate_batch(tmp_path, ray_cluster):
    env = dict(os.environ, RAY_ADDRESS=ray_cluster["address"], RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0")
    out = _run(["demo-data", "raw", "--per-style", "24", "--size", "32"], env, tmp_path)
    assert "96 images in 4 styles" in out

    (tmp_path / "raw" / "flat" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    out = _run(["prepare", "raw", "ds", "--resolution", "16", "--val-fraction", "0.25"], env, tmp_path)
    assert "skipped corrupt=1" in out
    doc = json.loads((tmp_path / "ds" / "dataset.json").read_text())
    assert doc["styles"] == ["flat", "gradient", "outline", "stripes"]
    assert doc["channels"] == 3  # colour images (a set of grey ones: 1, and one-channel models)
    assert doc["counts"]["train"]["total"] + doc["counts"]["val"]["total"] == 96

    _run(["train", "ds", "--out", "model", "--workers", "2", "--steps", "3", "--batch-size", "8",
          "--checkpoint-every", "3", "--g-channels", "8", "--d-channels", "8"], env, tmp_path)
    model = json.loads((tmp_path / "model" / "model.json").read_text())
    assert model["step"] == 3 and model["model_config"]["resolution"] == 16
    assert model["model_config"]["arch"] == "stylegan"  # the default architecture
    assert (tmp_path / "model" / "samples" / "step-00000003.png").exists()

    # Vanilla: the classic MLP on the same data (28×28 grayscale).
    _run(["train", "ds", "--out", "vanilla", "--arch", "vanilla", "--workers", "2", "--steps", "2",
          "--batch-size", "8"], env, tmp_path)
    assert json.loads((tmp_path / "vanilla" / "model.json").read_text())["model_config"]["z_dim"] == 100

    out = _run(["generate", "model", "--styles", "flat,stripes", "--n", "3", "--seed", "5", "--out", "gen"], env,
               tmp_path)
    assert sorted(p.name for p in (tmp_path / "gen" / "stripes").iterdir()) == [
        "stripes-00000005.png", "stripes-00000006.png", "stripes-00000007.png"]
    assert (tmp_path / "gen" / "grid.png").exists()

    (tmp_path / "job.yaml").write_text(
        "job_id: cli\nmodel: model\nstyles: all\nvariants_per_style: 5\nseed_base: 5\ntruncation: 1.0\n"
        "output: batch\nchunk_size: 2\nreplicas: 1\n")
    out = _run(["batch", "job.yaml"], env, tmp_path)
    assert f"contact sheet → {tmp_path / 'batch' / 'report.html'}" in out
    assert "<h3>stripes</h3><img" in (tmp_path / "batch" / "report.html").read_text()
    _run(["verify", "batch"], env, tmp_path)  # exits non-zero on any problem
    table = pq.read_table(tmp_path / "batch" / "manifest")
    assert table.num_rows == 20
    # generate and batch agree byte for byte on (style, seed, truncation).
    assert (tmp_path / "batch" / "images" / "stripes" / "stripes-00000001.png").read_bytes() == \
        (tmp_path / "gen" / "stripes" / "stripes-00000006.png").read_bytes()
    # --compact: the complete job's 12 parts (4 styles × 3 chunks) become one file per style
    out = _run(["batch", "job.yaml", "--compact"], env, tmp_path)
    assert "12 parts merged into 4 range files" in out
    assert sorted(p.name for p in (tmp_path / "batch" / "manifest").iterdir()) == [
        f"range-s{s:03d}-c0000000-c0001023.parquet" for s in range(4)]
    _run(["verify", "batch"], env, tmp_path)
    assert pq.read_table(tmp_path / "batch" / "manifest").num_rows == 20
