"""Every style control has an effect test: truncation, per-style truncation, mixing,
edit directions, interpolation, blending, projection, ONNX export, weight transfer."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ray_gan import checkpoint as ckpt
from ray_gan import storage
from ray_gan.checkpoint import load_generator, read_model_info
from ray_gan.config import MixSpec, ModelConfig
from ray_gan.generate.directions import compute_directions, load_directions, rename_directions, save_directions
from ray_gan.generate.interpolate import Endpoint, interpolate, write_interpolation
from ray_gan.generate.render import Renderer
from ray_gan.models import build_generator
from ray_gan.models.transfer import transfer_state

SEEDS = list(range(24))


def diversity(images: np.ndarray) -> float:
    x = images.reshape(len(images), -1).astype(np.float64)
    d = np.abs(x[:, None] - x[None]).mean(axis=2)
    return float(d[np.triu_indices(len(x), 1)].mean())


def low_pass(images: np.ndarray) -> np.ndarray:
    return F.avg_pool2d(torch.from_numpy(images).permute(0, 3, 1, 2).float(), 4).numpy()


@pytest.mark.parametrize("fixture", ["tiny_stylegan", "tiny_model"])
def test_truncation_lowers_diversity(fixture, request):
    r = Renderer(request.getfixturevalue(fixture), "cpu")
    d = [diversity(r.render([0] * len(SEEDS), SEEDS, psi)) for psi in (1.0, 0.6, 0.3, 0.0)]
    assert d[0] > d[1] > d[2] > d[3]
    assert d[3] == 0.0  # psi 0: every seed gives the mean image


def test_truncation_is_per_style_towards_that_styles_mean(tiny_stylegan):
    r = Renderer(tiny_stylegan, "cpu")
    means = r.render([0, 1, 2], [0, 0, 0], 0.0)
    assert len({m.tobytes() for m in means}) == 3  # each style has its own mean image
    assert np.array_equal(r.render([1], [123], 0.0)[0], means[1])
    mixed = r.render([0, 1], [5, 5], [1.0, 0.0])  # per-image values
    assert np.array_equal(mixed[0], r.render([0], [5], 1.0)[0]) and np.array_equal(mixed[1], means[1])


def test_mixing_coarse_takes_structure_fine_keeps_it(tiny_stylegan):
    r = Renderer(tiny_stylegan, "cpu")
    a = r.render([0] * 24, SEEDS)
    b = r.render([0] * 24, [s + 500 for s in SEEDS])
    coarse = r.render([0] * 24, SEEDS, mix=MixSpec(layers="coarse", seed_offset=500))
    fine = r.render([0] * 24, SEEDS, mix=MixSpec(layers="fine", seed_offset=500))
    la, lb = low_pass(a), low_pass(b)
    # coarse layers from B: the low-frequency structure follows B; fine from B: it stays A's
    assert np.abs(low_pass(coarse) - lb).mean() < np.abs(low_pass(coarse) - la).mean()
    assert np.abs(low_pass(fine) - la).mean() < np.abs(low_pass(fine) - lb).mean()
    all_b = r.render([0] * 24, SEEDS, mix=MixSpec(layers="all", seed_offset=500))
    assert np.array_equal(all_b, b)
    # another style for the mixed layers, explicit seed
    other = r.render([0] * 4, SEEDS[:4], mix=MixSpec(layers="fine", style="beta", seed=7))
    assert not np.array_equal(other, a[:4])


def test_mixing_and_edits_need_a_mapping_network(tiny_model):
    r = Renderer(tiny_model, "cpu")
    with pytest.raises(ValueError, match="mapping network"):
        r.render([0], [0], mix=MixSpec())


def test_edit_directions_are_pca_of_w_stored_with_the_model(tiny_stylegan):
    G, info = load_generator(tiny_stylegan)
    d, mean = compute_directions(G, len(info.styles), components=4, samples=3000)
    assert torch.allclose(d.components @ d.components.T, torch.eye(4), atol=1e-4)  # orthonormal
    assert d.explained_variance_ratio == sorted(d.explained_variance_ratio, reverse=True)
    save_directions(info, d, mean, 3000)
    r = Renderer(tiny_stylegan, "cpu")
    base = r.render([0] * 8, SEEDS[:8])
    assert np.array_equal(r.render([0] * 8, SEEDS[:8], edits={"pc0": 0.0}), base)
    plus = r.render([0] * 8, SEEDS[:8], edits={"pc0": 3.0})
    minus = r.render([0] * 8, SEEDS[:8], edits={"pc0": -3.0})
    assert np.abs(plus.astype(float) - base).mean() > 1.0
    assert np.abs(plus.astype(float) - minus).mean() > np.abs(plus.astype(float) - base).mean()
    with pytest.raises(ValueError, match="unknown edit"):
        r.render([0], [0], edits={"nope": 1.0})
    assert rename_directions(info, {"pc0": "thickness"})[0] == "thickness"
    assert load_directions(read_model_info(tiny_stylegan)).names[0] == "thickness"


def test_edit_directions_go_stale_when_weights_change(tmp_path, untrained_model):
    uri = untrained_model(str(tmp_path / "m"), ["a", "b"], arch="stylegan")
    G, info = load_generator(uri)
    d, mean = compute_directions(G, 2, components=2, samples=500)
    save_directions(info, d, mean, 500)
    doc = storage.read_json(storage.join(uri, "model.json"))
    doc["weights_sha256"]["generator_ema"] = "0" * 64
    doc["step"] = 99
    storage.write_json(storage.join(uri, "model.json"), doc)
    with pytest.raises(ValueError, match="run `ray-gan directions"):
        load_directions(read_model_info(uri))


def test_interpolation_ends_at_its_endpoints_and_moves_smoothly(tiny_stylegan, tmp_path):
    r = Renderer(tiny_stylegan, "cpu")
    frames = interpolate(r, Endpoint("alpha", 3), Endpoint("beta", 9), steps=6)
    ends = r.render([0, 1], [3, 9])
    assert np.abs(frames[0].astype(int) - ends[0]).max() <= 1
    assert np.abs(frames[-1].astype(int) - ends[1]).max() <= 1
    steps = [np.abs(frames[i + 1].astype(float) - frames[i]).mean() for i in range(5)]
    assert max(steps) < np.abs(frames[-1].astype(float) - frames[0]).mean()  # no jumps
    uris = write_interpolation(frames, str(tmp_path / "interp"))
    from PIL import Image

    gif = Image.open(uris["gif"])
    assert gif.n_frames == 2 * 6 - 2 and Image.open(uris["strip"]).size[0] > 6 * 16


def test_dcgan_interpolates_seeds_within_a_style_only(tiny_model):
    r = Renderer(tiny_model, "cpu")
    frames = interpolate(r, Endpoint("alpha", 1), Endpoint("alpha", 2), steps=4)
    assert np.abs(frames[0].astype(int) - r.render([0], [1])[0]).max() <= 1
    with pytest.raises(ValueError, match="mapping network"):
        interpolate(r, Endpoint("alpha", 1), Endpoint("beta", 2))
    with pytest.raises(ValueError, match="STYLE:SEED"):
        Endpoint.parse("alpha")


def test_blend_alpha_0_and_1_reproduce_the_parents(tmp_path, untrained_model):
    from ray_gan.style_weights.blend import blend_models

    a = untrained_model(str(tmp_path / "a"), ["x", "y"], arch="stylegan", seed=1)
    b = untrained_model(str(tmp_path / "b"), ["x", "y"], arch="stylegan", seed=2)
    img = {k: Renderer(u, "cpu").render([0, 1, 1], [1, 2, 3]) for k, u in (("a", a), ("b", b))}
    out0 = blend_models(a, b, str(tmp_path / "o0"), alpha=0.0)
    out1 = blend_models(a, b, str(tmp_path / "o1"), alpha=1.0)
    half = blend_models(a, b, str(tmp_path / "h"), alpha=0.5)
    assert np.array_equal(Renderer(out0.uri, "cpu").render([0, 1, 1], [1, 2, 3]), img["a"])
    assert np.array_equal(Renderer(out1.uri, "cpu").render([0, 1, 1], [1, 2, 3]), img["b"])
    mid = Renderer(half.uri, "cpu").render([0, 1, 1], [1, 2, 3])
    assert not np.array_equal(mid, img["a"]) and not np.array_equal(mid, img["b"])
    # layer swap: only the fine layers from B
    fine = blend_models(a, b, str(tmp_path / "f"), alpha=1.0, layers=["fine"])
    Ga, _ = load_generator(a)
    Gb, _ = load_generator(b)
    Gf, _ = load_generator(fine.uri)
    assert torch.equal(Gf.blocks[-1].conv1.conv.weight, Gb.blocks[-1].conv1.conv.weight)
    assert torch.equal(Gf.conv4.conv.weight, Ga.conv4.conv.weight)
    assert torch.equal(Gf.mapping.layers[0].weight, Ga.mapping.layers[0].weight)
    assert fine.raw["blend"]["layers"] == ["16"]  # 16 px model: coarse = 4, 8; fine = 16


@pytest.mark.parametrize("arch", ["stylegan", "dcgan"])
def test_blend_carries_the_discriminators_so_the_blend_can_be_fine_tuned(tmp_path, untrained_model, arch):
    from ray_gan.style_weights.blend import blend_models

    a = untrained_model(str(tmp_path / "a"), ["x", "y"], arch=arch, seed=1, discriminator=True)
    b = untrained_model(str(tmp_path / "b"), ["x", "y"], arch=arch, seed=2, discriminator=True)
    d = {k: ckpt.read_discriminator_state(read_model_info(u).checkpoint) for k, u in (("a", a), ("b", b))}
    floats = [n for n, t in d["a"].items() if t.is_floating_point() and not torch.equal(t, d["b"][n])]
    assert floats  # the parents' discriminators differ

    def blended_d(info):
        return ckpt.read_discriminator_state(info.checkpoint)

    ends = {alpha: blend_models(a, b, str(tmp_path / f"o{alpha}"), alpha=alpha) for alpha in (0.0, 0.25, 1.0)}
    for alpha, parent in ((0.0, "a"), (1.0, "b")):  # the ends are the parents' Ds, bit for bit
        assert all(torch.equal(t, d[parent][n]) for n, t in blended_d(ends[alpha]).items())
    quarter = blended_d(ends[0.25])
    assert all(torch.allclose(quarter[n], d["a"][n] + 0.25 * (d["b"][n] - d["a"][n]), atol=1e-6) for n in floats)
    assert ends[0.25].raw["blend"]["discriminator"] == "lerp(A, B, 0.25)"
    assert ends[0.25].raw["weights_sha256"]["discriminator"]  # recorded and checked on read
    # a blend of some layer groups keeps A's D
    fine = blend_models(a, b, str(tmp_path / "f"), alpha=1.0, layers=["fine"])
    assert all(torch.equal(t, d["a"][n]) for n, t in blended_d(fine).items())
    assert fine.raw["blend"]["discriminator"] == "A's"
    # a parent without a D: a generator-only blend that says why
    g_only = untrained_model(str(tmp_path / "g"), ["x", "y"], arch=arch, seed=3)
    plain = blend_models(a, g_only, str(tmp_path / "p"), alpha=0.5)
    assert blended_d(plain) is None and plain.raw["blend"]["discriminator"] == "none: B has no discriminator"
    # a corrupted D is refused, not loaded
    uri = storage.join(ends[0.25].checkpoint, ckpt.DISCRIMINATOR_FILE)
    data = bytearray(storage.read_bytes(uri))
    data[-1] ^= 1
    storage.write_bytes(uri, bytes(data))
    with pytest.raises(storage.StorageError, match="do not match"):
        blended_d(ends[0.25])


def test_blend_refuses_incompatible_generators(tmp_path, untrained_model):
    from ray_gan.style_weights.blend import blend_models

    a = untrained_model(str(tmp_path / "a"), ["x"], arch="stylegan", resolution=16)
    b = untrained_model(str(tmp_path / "b"), ["x"], arch="stylegan", resolution=32)
    with pytest.raises(ValueError, match="not compatible"):
        blend_models(a, b, str(tmp_path / "o"))


def test_transfer_state_matches_style_rows_by_name():
    cfg = ModelConfig(arch="stylegan", resolution=8, num_styles=3, g_channels=8, z_dim=8, w_dim=8, embed_dim=4,
                      mapping_layers=1, max_channels=16)
    base = build_generator(cfg)
    child = build_generator(cfg.model_copy(update={"num_styles": 2}))
    counts = transfer_state(child, base.state_dict(), ["a", "b", "c"], ["c", "new"])
    emb, base_emb = child.mapping.embed.weight, base.mapping.embed.weight
    assert torch.equal(emb[0], base_emb[2])  # "c" keeps its row
    assert torch.allclose(emb[1], base_emb.mean(dim=0))  # a new style starts at the mean
    assert counts["style_rows_copied"] == 2 and counts["style_rows_new"] == 2  # embed + w_avg
    assert torch.equal(child.const, base.const)


def test_transfer_state_starts_a_head_the_base_lacks_fresh_but_refuses_other_gaps():
    from ray_gan.models import build_discriminator

    cfg = ModelConfig(arch="stylegan", resolution=8, num_styles=2, d_channels=8, max_channels=16)
    base, child = build_discriminator(cfg), build_discriminator(cfg)
    before = child.classify.weight.detach().clone()
    old = {k: v for k, v in base.state_dict().items() if not k.startswith("classify.")}  # pre-style-head base
    counts = transfer_state(child, old, ["a", "b"], ["a", "b"])
    assert counts["initialised"] == 2  # classify.weight, classify.bias
    assert torch.equal(child.classify.weight, before)
    assert torch.equal(child.embed.weight, base.embed.weight)
    del old["out.weight"]  # anything else missing is a different architecture
    with pytest.raises(ValueError, match="out.weight"):
        transfer_state(child, old, ["a", "b"], ["a", "b"])


def test_projection_recovers_a_generated_image_and_its_style(tiny_stylegan):
    from ray_gan.generate.project import project

    r = Renderer(tiny_stylegan, "cpu")
    target = r.render([1], [42])[0]
    p = project(r, target, steps=120, restarts=4, seed=0)
    assert p.style == "beta"
    others = r.render([1] * 16, list(range(100, 116)))  # what a random latent gives
    chance = np.mean([10 * np.log10(255**2 / ((o.astype(float) - target) ** 2).mean()) for o in others])
    assert p.psnr_db > chance + 4.0
    assert set(p.restyled) == {"alpha", "beta", "gamma"}
    assert np.array_equal(p.restyled["beta"], p.reconstruction)


def test_projection_refines_in_w_where_z_falls_short(tiny_stylegan):
    from ray_gan.generate.project import project

    r = Renderer(tiny_stylegan, "cpu")
    a, b = r.render([1, 1], [42, 7])
    target = ((a.astype(np.float64) + b) / 2).round().astype(np.uint8)  # no single latent draws this
    z_only = project(r, target, style="beta", steps=60, restarts=2, seed=0, refine_steps=0)
    refined = project(r, target, style="beta", steps=60, restarts=2, seed=0, refine_steps=80)
    assert z_only.w_offset is None and z_only.z == refined.z  # the same z search
    assert refined.w_offset is not None and refined.mse < 0.9 * z_only.mse
    assert np.array_equal(refined.restyled["beta"], refined.reconstruction)
    # every style gets the same offset: the other styles change too
    assert not np.array_equal(refined.restyled["alpha"], z_only.restyled["alpha"])


@pytest.mark.parametrize("fixture", ["tiny_stylegan", "tiny_model"])
def test_onnx_export_matches_torch(fixture, request, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    from ray_gan.export import ExportableGenerator, export_onnx
    from ray_gan.generate.render import latents_from_seeds

    uri = request.getfixturevalue(fixture)
    out = export_onnx(uri, str(tmp_path / "onnx"))
    G, info = load_generator(uri)
    z = latents_from_seeds([1, 2, 3, 4, 5], info.config.z_dim).numpy()
    s = np.array([0, 1, 2, 0, 1], dtype=np.int64)
    psi = np.array([1.0, 0.7, 0.5, 0.0, 1.3], dtype=np.float32)
    got = ort.InferenceSession(out["onnx"]).run(None, {"z": z, "style": s, "truncation": psi})[0]
    with torch.no_grad():
        want = ExportableGenerator(G)(torch.from_numpy(z), torch.from_numpy(s), torch.from_numpy(psi)).numpy()
    assert got.shape == (5, 3, 16, 16)
    assert np.abs(got - want).max() < 1e-4
    # and the torch side is what the renderer draws
    assert np.abs(((want + 1) * 127.5).round() - Renderer(uri, "cpu").render(list(s), [1, 2, 3, 4, 5], list(psi))
                  .transpose(0, 3, 1, 2)).max() <= 1
    assert storage.read_json(out["json"])["styles"] == info.styles


# ---- one validation of the controls (ray_gan.generate.controls), for batch, HTTP and generate ----

def test_control_values_are_bounded_where_specs_and_bodies_are_parsed():
    from pydantic import ValidationError

    from ray_gan.config import BatchJobSpec, VariantsRequest

    for layers in ("-:", ":-", "-:-", "1:2:3", "12345:", "middle"):
        with pytest.raises(ValidationError):  # "-:" was a 500 (int("-")) in the HTTP route
            MixSpec(layers=layers)
    for layers in ("coarse", "fine", "all", ":", "1:", ":-1", "-2:", "0:3"):
        assert MixSpec(layers=layers).layers == layers
    assert MixSpec(seed=2**62).seed == 2**62
    for bad in ({"seed": 10**23}, {"seed": 2**62 + 1}, {"seed_offset": 2**62}):  # seeds overflowed torch / int64
        with pytest.raises(ValidationError):
            MixSpec(**bad)
    body = {"styles": ["a"]}
    spec = {"job_id": "j", "model": "m", "variants_per_style": 1, "output": "o"}
    with pytest.raises(ValidationError):
        BatchJobSpec(**spec, seed_base=2**62 + 1)
    for model, base in ((VariantsRequest, body), (BatchJobSpec, spec)):
        assert model(**base, edits={"pc0": -100, "thick.ness_2": 100}).edits["pc0"] == -100
        for edits in ({"pc0": float("inf")}, {"pc0": float("nan")}, {"pc0": -1e3}, {"bad name": 1.0}, {"": 1.0},
                      {"x" * 129: 1.0}, {f"pc{i}": 1.0 for i in range(33)}):
            with pytest.raises(ValidationError):
                model(**base, edits=edits)
    # JSON as FastAPI reads a body: Infinity and NaN are numbers to Python's json module
    import json

    with pytest.raises(ValidationError, match="finite"):
        VariantsRequest(**json.loads('{"styles": ["a"], "edits": {"pc0": Infinity}}'))


def test_check_controls_refuses_what_the_model_cannot_apply(untrained_model, tmp_path):
    import pickle

    from ray_gan.generate.controls import ControlError, check_controls, model_controls

    sg = untrained_model(str(tmp_path / "sg"), ["alpha", "beta"], arch="stylegan")
    info = read_model_info(sg)
    bare = model_controls(info)  # no directions stored yet
    assert bare.num_ws == 6 and bare.styles == ["alpha", "beta"] and bare.directions == []
    assert pickle.loads(pickle.dumps(bare)) == bare  # crosses from the generator replica to the ingress
    check_controls(bare, {"alpha": 0.5}, MixSpec(layers="1:3", style="beta"))
    check_controls(bare, 1.0, MixSpec(layers=":"))
    for args, needle in [
        (({"delta": 0.5},), "truncation for unknown style"),
        ((3.0,), "between 0 and 2"),
        ((float("nan"),), "between 0 and 2"),
        ((1.0, MixSpec(style="delta")), "mix.style 'delta' is not a style"),
        ((1.0, MixSpec(layers="6:")), "selects none of the 6 style inputs"),
        ((1.0, MixSpec(layers="3:1")), "selects none"),
        ((1.0, MixSpec.model_construct(layers="-:", style=None, seed=None, seed_offset=1)), "is not coarse, fine"),
        ((1.0, None, {"pc0": 1.0}), "no edit directions"),
        ((1.0, None, {"pc0": float("inf")}), "finite"),
    ]:
        with pytest.raises(ControlError, match=needle):
            check_controls(bare, *args)
    G, _ = load_generator(sg)
    d, mean = compute_directions(G, 2, components=2, samples=200)
    save_directions(info, d, mean, 200)
    controls = model_controls(info, G)
    assert controls.directions == ["pc0", "pc1"] and controls.directions_problem is None
    check_controls(controls, 1.0, None, {"pc1": -2.5})
    with pytest.raises(ControlError, match=r"unknown edit direction\(s\) \['nope'\]"):
        check_controls(controls, 1.0, None, {"nope": 1.0})
    with pytest.raises(ControlError, match="not read"):
        check_controls(model_controls(info, G, directions=False), 1.0, None, {"pc0": 1.0})
    with pytest.raises(ValueError, match="names must be"):
        rename_directions(info, {"pc0": "stroke width"})  # a name no edit could use
    dc = model_controls(read_model_info(untrained_model(str(tmp_path / "dc"), ["alpha"])))
    assert dc.num_ws == 0
    for mix, edits in ((MixSpec(), None), (None, {"pc0": 1.0})):
        with pytest.raises(ControlError, match="need a stylegan model"):
            check_controls(dc, 1.0, mix, edits)
    assert issubclass(ControlError, ValueError)


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
