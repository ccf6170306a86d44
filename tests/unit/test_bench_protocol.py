"""bench/protocol.py's frozen rules (issue #20): unequal style sizes that rotate with the
seed, halves that leave styles out, and the run-for-run claim."""

import pytest

from bench import protocol as p


def test_sizes_run_from_1_to_7_and_every_style_is_small_once_over_the_seeds():
    for n in (2, 3, 5):
        seen_small = set()
        for seed in range(n):
            sizes = p.style_sizes(n, seed)
            assert max(sizes) == p.LARGEST and max(sizes) / min(sizes) == pytest.approx(p.RATIO, rel=0.01)
            assert sorted(sizes) == sorted(p.style_sizes(n, 0))  # the same sizes, rotated
            seen_small.add(sizes.index(min(sizes)))
        assert seen_small == set(range(n))


def test_the_report_half_holds_styles_the_tune_half_never_saw():
    tuned = {(v.source, s) for v in p.HALVES["tune"] for s in v.styles}
    reported = {(v.source, s) for v in p.HALVES["report"] for s in v.styles}
    assert not any(v.fonts for v in p.HALVES["report"])  # the report half is the shared sets as they are
    assert {(v.source, s) for v in p.HALVES["tune"] for s in v.styles if not v.font(s)} < reported
    assert {s for src, s in reported - tuned} == {"openmoji", "long_cang", "zcool_xiaowei"}
    assert {v.source for v in p.HALVES["tune"]} == {v.source for v in p.HALVES["report"]} == {"emoji", "hanzi"}


def _smallest(variant, seed):
    sizes = p.style_sizes(len(variant.styles), seed)
    return variant.styles[sizes.index(min(sizes))]


def test_every_style_tuning_never_saw_is_the_smallest_in_one_report_run():
    tuned = {(v.source, s) for v in p.HALVES["tune"] for s in v.styles}
    unseen = {(v.source, s) for v in p.HALVES["report"] for s in v.styles} - tuned
    smallest = {(v.source, _smallest(v, seed)) for v in p.HALVES["report"] for seed in p.SEEDS["report"]}
    assert unseen <= smallest


def test_every_drawn_tune_font_is_the_smallest_in_one_tune_run():
    for v in p.HALVES["tune"]:
        assert {f.style for f in v.fonts} <= {_smallest(v, seed) for seed in p.SEEDS["tune"]}


def test_the_tune_half_has_a_set_as_wide_as_the_report_halfs_widest():
    # v3: the v2 default, tuned on 2 and 3 styles, failed its first 5-style report run
    assert max(len(v.styles) for v in p.HALVES["tune"]) >= max(len(v.styles) for v in p.HALVES["report"])


def test_the_halves_draw_their_subsets_from_their_own_seeds():
    assert not set(p.SEEDS["tune"]) & set(p.SEEDS["report"])
    assert not {0, 5} & set(p.SEEDS["report"])  # the draws v2 and v3 reported on have been looked at
    assert all(len(s) >= 3 for s in p.SEEDS.values())  # a claim counts over three seeds at least


def test_a_drawn_glyph_is_black_on_white_with_its_ink_centred():
    import numpy as np
    from PIL import ImageFont

    face = ImageFont.load_default(size=40)  # Pillow's own font: the recipe, not a protocol font
    im = np.asarray(p.draw_glyph(face, "H"))
    assert im.shape == (64, 64) and im.max() == 255 and im.min() < 64
    ys, xs = np.nonzero(im < 128)
    assert abs((ys.min() + ys.max()) / 2 - 31.5) <= 1 and abs((xs.min() + xs.max()) / 2 - 31.5) <= 1
    assert (np.asarray(p.draw_glyph(face, " ")) == 255).all()  # no ink: a blank tile, not an error


def test_a_font_file_that_is_not_the_frozen_one_is_refused(tmp_path):
    f = tmp_path / "font.ttf"
    f.write_bytes(b"not the font")
    with pytest.raises(SystemExit, match="not the file protocol"):
        p.load_font(p.Font("x", "fonts-x", str(f), "0" * 64))
    with pytest.raises(SystemExit, match="apt install fonts-x"):
        p.load_font(p.Font("x", "fonts-x", str(tmp_path / "missing.ttf"), "0" * 64))


def _run(acc, fids, covs, recalls, memorised=False):
    return {"style_accuracy": acc, "memorised": memorised,
            "per_style": {s: {"fid": f, "coverage": c, "recall": r}
                          for s, f, c, r in zip("ab", fids, covs, recalls)}}


def test_the_claim_needs_every_style_better_and_no_collapsed_style():
    ref = _run(0.5, [10, 20], [0.3, 0.2], [0.1, 0.1])
    assert all(p.beats(_run(0.9, [5, 15], [0.5, 0.4], [0.5, 0.4]), ref).values())
    worse_style = p.beats(_run(0.9, [5, 25], [0.5, 0.4], [0.5, 0.4]), ref)  # one style's FID above the reference's
    assert not worse_style["fid_every_style"] and worse_style["style_accuracy"]
    collapsed = p.beats(_run(0.9, [5, 15], [0.5, 0.4], [0.5, 0.29]), ref)
    assert not collapsed["recall_every_style"]
    assert not p.beats(_run(0.9, [5, 15], [0.5, 0.4], [0.5, 0.4], memorised=True), ref)["no_memorisation"]


def test_tables_count_run_for_run():
    rows = []
    for seed, (acc, fid) in enumerate([(0.9, 5), (0.4, 5)]):  # the second seed loses on style accuracy
        for model, run in (("stylegan", _run(acc, [fid, fid], [0.5, 0.5], [0.5, 0.5])),
                           ("reference", _run(0.5, [10, 10], [0.3, 0.3], [0.4, 0.4]))):
            rows.append({**run, "variant": "emoji-tune", "seed": seed, "model": model, "steps": 100, "fid": fid,
                         "coverage": 0.5})
    text = p.tables(rows, ["stylegan"])
    assert "does not hold** (1 of 2 runs)" in text


def test_tables_give_each_candidate_its_own_verdict():
    ref = _run(0.5, [10, 10], [0.3, 0.3], [0.4, 0.4])
    rows = [{**run, "variant": "hanzi-tune", "seed": 0, "model": model, "steps": 100, "fid": 5, "coverage": 0.5}
            for model, run in (("reference", ref), ("stylegan", _run(0.9, [5, 5], [0.5, 0.5], [0.5, 0.5])),
                               ("stylegan-sqrt", _run(0.4, [5, 5], [0.5, 0.5], [0.5, 0.5])))]
    text = p.tables(rows)
    assert "Claim for stylegan over the reference, run for run: **holds** (1 of 1 runs)" in text
    assert "Claim for stylegan-sqrt over the reference, run for run: **does not hold** (0 of 1 runs)" in text
    assert "Claim for reference" not in text


def test_rows_of_another_protocol_version_are_neither_resumed_nor_compared():
    rows = [{"protocol": "v1", "seed": 0}, {"protocol": p.VERSION, "seed": 1}, {"seed": 2}]
    assert p.current(rows) == [{"protocol": p.VERSION, "seed": 1}]


def test_ours_trains_at_the_defaults_but_for_the_machine_layout():
    from ray_gan.config import TrainConfig

    assert set(p.OURS) == {"workers", "cpus_per_worker"}  # v2: the batch is the default's
    assert TrainConfig.from_flat(dataset="d", out="o").scaling.batch_size == 16  # the one v2 tuned


def test_tables_say_when_rows_come_from_machines_of_different_speed():
    ref = _run(0.5, [10, 10], [0.3, 0.3], [0.4, 0.4])
    ours = _run(0.9, [5, 5], [0.5, 0.5], [0.5, 0.5])
    rows = [{**run, "variant": "hanzi-report", "seed": seed, "model": model, "steps": 100, "fid": 5, "coverage": 0.5,
             "machine": machine}
            for seed, machine in ((3, "EPYC [avx2]"), (4, "EPYC [avx2, avx512_bf16]"))
            for model, run in (("reference", ref), ("stylegan", ours))]
    text = p.tables(rows)
    assert "more than one machine" in text and "EPYC [avx2]: hanzi-report s3" in text
    assert "more than one machine" not in p.tables(rows[:2])
    assert p.machine().endswith("CPUs")


def test_a_half_whose_rows_are_all_in_the_results_file_only_tabulates(tmp_path, monkeypatch):
    import json

    ours = _run(0.9, [5, 5], [0.5, 0.5], [0.5, 0.5])
    rows = [{**ours, "protocol": p.VERSION, "half": "tune", "variant": "emoji-tune", "seed": 0, "model": m,
             "budget": p.BUDGET_S, "steps": 1, "fid": 5, "coverage": 0.5} for m in ("stylegan", "reference")]
    results = tmp_path / "rows.json"
    results.write_text(json.dumps(rows))
    monkeypatch.setattr(p, "materialise", lambda *a: pytest.fail("a finished run's data was prepared again"))
    got = p.run("tune", [0], ["stylegan", "reference"], tmp_path / "work", tmp_path / "grids", {}, None, False,
                variants=["emoji-tune"], results=results)
    assert [r["model"] for r in got] == ["stylegan", "reference"] and json.loads(results.read_text()) == rows


def _finished(tmp_path, settings):
    import json

    ours = _run(0.9, [5, 5], [0.5, 0.5], [0.5, 0.5])
    row = {**ours, "protocol": p.VERSION, "half": "tune", "variant": "emoji-tune", "seed": 0, "model": "stylegan",
           "budget": p.BUDGET_S, "steps": 1, "fid": 5, "coverage": 0.5, "code": "abc1234", "settings": settings}
    results = tmp_path / "rows.json"
    results.write_text(json.dumps([row]))
    return results


def _resume(tmp_path, results, monkeypatch, overrides=None, tag=None):
    monkeypatch.setattr(p, "materialise", lambda *a: pytest.fail("a finished run's data was prepared again"))
    return p.run("tune", [0], ["stylegan"], tmp_path / "work", tmp_path / "grids", overrides or {}, tag, False,
                 variants=["emoji-tune"], results=results)


def test_a_row_made_with_this_runs_settings_is_resumed(tmp_path, monkeypatch):
    from bench.quality import ours_settings

    results = _finished(tmp_path, ours_settings("stylegan", p.BUDGET_S, "cpu", p.OURS))
    assert [r["model"] for r in _resume(tmp_path, results, monkeypatch)] == ["stylegan"]


def test_a_row_made_under_another_default_is_not_taken_for_this_run(tmp_path, monkeypatch):
    """The trap that v4's tune rows set: the untagged rows were made before stylegan's
    default turned mode seeking on; a run at the new default must not skip them as done."""
    from bench.quality import ours_settings

    old_default = ours_settings("stylegan", p.BUDGET_S, "cpu", {**p.OURS, "mode_seeking": 0.0})
    results = _finished(tmp_path, old_default)
    with pytest.raises(SystemExit, match=r"optim\.mode_seeking: 0\.0 there, None now.*--tag.*Nothing was trained"):
        _resume(tmp_path, results, monkeypatch)
    # the same settings asked for explicitly are the same run
    assert _resume(tmp_path, results, monkeypatch, overrides={"mode_seeking": 0.0})[0]["model"] == "stylegan"


def test_settings_change_with_a_preset_and_with_an_override(monkeypatch):
    import dataclasses

    from bench.quality import ours_settings
    from ray_gan import config

    base = ours_settings("stylegan", p.BUDGET_S)
    assert base == ours_settings("stylegan", p.BUDGET_S)  # nothing random in it (no run name, no seed)
    assert ours_settings("stylegan", p.BUDGET_S, overrides={"model.pack": 1})["train"]["model"]["pack"] == 1
    preset = config.ARCH_PRESETS["stylegan"]
    monkeypatch.setitem(config.ARCH_PRESETS, "stylegan",
                        dataclasses.replace(preset, optim={**preset.optim, "mode_seeking": 0.5}))
    assert ours_settings("stylegan", p.BUDGET_S) != base


def test_a_new_row_records_its_settings_and_a_rerun_resumes_from_it(tmp_path, monkeypatch):
    import json

    from bench import quality

    trained = []
    scores = {**_run(0.9, [5, 5], [0.5, 0.5], [0.5, 0.5]), "fid": 5, "coverage": 0.5}
    monkeypatch.setattr(p, "materialise", lambda variant, seed, work: str(work / "data"))
    monkeypatch.setattr(quality, "train_ours", lambda arch, *a: trained.append(arch) or {"steps": 7, "uri": "m",
                                                                                       "renderer": None})
    monkeypatch.setattr(p, "score", lambda *a: scores)
    monkeypatch.setattr(p, "grid", lambda *a: None)
    results = tmp_path / "rows.json"
    args = ("tune", [0], ["stylegan"], tmp_path / "work", tmp_path / "grids", {"mode_seeking": 0.5}, "ms05", False)
    p.run(*args, variants=["emoji-tune"], results=results)
    row, = json.loads(results.read_text())
    assert row["model"] == "stylegan-ms05" and row["settings"]["train"]["optim"]["mode_seeking"] == 0.5
    p.run(*args, variants=["emoji-tune"], results=results)
    assert trained == ["stylegan"] and len(json.loads(results.read_text())) == 1


def test_a_mismatched_row_stops_the_run_before_anything_trains(tmp_path, monkeypatch):
    """Seed 1 is still to run, seed 0's row is from another default: nothing trains."""
    from bench import quality
    from bench.quality import ours_settings

    results = _finished(tmp_path, ours_settings("stylegan", p.BUDGET_S, "cpu", {**p.OURS, "mode_seeking": 0.0}))
    monkeypatch.setattr(p, "materialise", lambda *a: pytest.fail("data was prepared for a run that cannot finish"))
    monkeypatch.setattr(quality, "train_ours", lambda *a: pytest.fail("trained before the rows file was checked"))
    with pytest.raises(SystemExit, match="mode_seeking"):
        p.run("tune", [1, 0], ["stylegan"], tmp_path / "work", tmp_path / "grids", {}, None, False,
              variants=["emoji-tune"], results=results)


def test_a_setting_newer_than_the_row_is_named_as_such():
    row = {"variant": "v", "seed": 0, "model": "stylegan", "budget": 600.0, "settings": {"train": {"a": 1}}}
    with pytest.raises(SystemExit, match=r"train\.b \(now 2\) is a setting newer than the row.*changed shape"):
        p.check_settings(row, {"train": {"a": 1, "b": 2}})
    p.check_settings(row, {"train": {"a": 1}})  # the same: resumed
