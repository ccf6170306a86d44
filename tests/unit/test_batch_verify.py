"""ray_gan.batch.verify (``ray-gan verify``): an output passes only when every manifest row's
object exists with its sha256, ids are unique, rows belong to the job, seeds follow the
job's seed rule (replacements listed with reasons), and the count matches the spec."""

import hashlib

import pytest

from ray_gan import storage
from ray_gan.batch.verify import verify_output
from ray_gan.cli import main
from ray_gan.manifest import image_uri, manifest_row, write_part

SHA = "ab" * 32


def _job(out: str, styles=("flat", "stripes"), per_style: int = 3) -> list[dict]:
    """A finished job's output, written by hand: job.json, images, one manifest part per style."""
    storage.write_json(storage.join(out, "job.json"), {
        "spec": {"job_id": "j1", "variants_per_style": per_style, "seed_base": 0}, "weights_sha256": SHA, "styles": list(styles),
        "status": "complete"})
    rows = []
    for s_idx, style in enumerate(styles):
        part = []
        for v in range(per_style):
            data = f"{style}-{v}".encode()
            iid = f"{style}-{v:08d}"
            uri = image_uri(out, style, iid, "png")
            storage.write_bytes(uri, data)
            part.append(manifest_row(job_id="j1", image_id=iid, style=style, style_index=s_idx, variant=v, seed=v,
                                     truncation=1.0, mix=None, edits=None, model_uri="/m", weights_sha256=SHA,
                                     uri=uri, data=data, fmt="png", resolution=32, device="cpu"))
        write_part(out, f"part-s{s_idx:03d}.parquet", part)
        rows += part
    return rows


def test_a_complete_output_passes(tmp_path, capsys):
    out = str(tmp_path / "out")
    _job(out)
    report = verify_output(out)
    assert report.ok and report.rows == 6 and report.objects_checked == 6 and report.expected == 6, report.summary()
    assert main(["verify", out]) == 0
    assert "OK" in capsys.readouterr().out


@pytest.mark.parametrize("damage, needle", [
    ("delete", "missing"),
    ("corrupt", "sha256"),
    ("duplicate", "duplicate image id"),
    ("short", "the spec asks for 6"),
    ("running", "not 'complete'"),
    ("foreign", "job_id"),
    ("seed", "is not candidate 0 of variant 1"),
    ("unexplained", "do not account for attempt 1"),
])
def test_each_kind_of_damage_is_reported_and_fails_the_command(tmp_path, capsys, damage, needle):
    out = str(tmp_path / "out")
    rows = _job(out)
    if damage == "delete":
        storage.delete(rows[1]["image_uri"])
    elif damage == "corrupt":
        storage.write_bytes(rows[2]["image_uri"], b"other bytes")
    elif damage == "duplicate":
        write_part(out, "part-extra.parquet", [rows[0]])
    elif damage == "short":
        storage.delete(storage.join(out, "manifest", "part-s001.parquet"))
    elif damage == "running":
        doc = storage.read_json(storage.join(out, "job.json"))
        storage.write_json(storage.join(out, "job.json"), {**doc, "status": "running"})
    elif damage in ("seed", "unexplained"):  # a row whose seed the seed rule does not give
        row = {**rows[1], "seed": 99} if damage == "seed" else {**rows[1], "seed": 1 + 3, "attempt": 1}
        write_part(out, "part-s000.parquet", [rows[0], row, rows[2]])
    elif damage == "foreign":
        data = b"x"
        uri = image_uri(out, "flat", "flat-x", "png")
        storage.write_bytes(uri, data)
        write_part(out, "part-foreign.parquet", [{**rows[0], "job_id": "other", "image_id": "flat-x",
                                                  "image_uri": uri, "image_sha256": hashlib.sha256(data).hexdigest()}])
    report = verify_output(out)
    assert not report.ok and any(needle in p for p in report.problems), report.summary()
    assert main(["verify", out]) == 1
    assert needle in capsys.readouterr().out


def test_an_output_without_job_json_is_checked_row_by_row(tmp_path):
    """A served request's output directory has a manifest but no job.json."""
    out = str(tmp_path / "out")
    rows = _job(out)
    storage.delete(storage.join(out, "job.json"))
    assert verify_output(out).ok
    storage.delete(rows[0]["image_uri"])
    assert not verify_output(out).ok


def test_compaction_merges_parts_by_style_and_chunk_range_and_an_interrupted_one_loses_nothing(tmp_path):
    from ray_gan.manifest import compact_manifest, manifest_files, part_name, range_name, read_manifest

    out = str(tmp_path / "out")
    rows = _job(out, per_style=10)
    for name in ("part-s000.parquet", "part-s001.parquet"):
        storage.delete(storage.join(out, "manifest", name))
    for r in rows:  # one part per chunk of 2 variants, as a batch job writes them
        if r["variant"] % 2 == 0:
            write_part(out, part_name(r["style_index"], r["variant"] // 2), [r, rows[rows.index(r) + 1]])
    assert len(manifest_files(out)) == 10 and verify_output(out).ok
    # interrupted: the first range of style 0 written, its parts not yet removed
    write_part(out, range_name(0, 0, 1), rows[:4])
    assert len(manifest_files(out)) == 9 and read_manifest(out).num_rows == 20 and verify_output(out).ok
    assert compact_manifest(out, span=2) == (6, 10)  # 2 styles × chunks {0,1}, {2,3}, {4}
    names = sorted(u.rsplit("/", 1)[-1] for u in manifest_files(out))
    assert names == sorted(range_name(s, a, a + 1) for s in (0, 1) for a in (0, 2, 4))
    report = verify_output(out)
    assert report.ok and report.rows == 20, report.summary()
    table = read_manifest(out)
    assert sorted(table.column("image_id").to_pylist()) == sorted(r["image_id"] for r in rows)
