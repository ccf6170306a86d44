"""ray_gan.generate.controls: the one validation of truncation, style mixing and edits
against a model (used by batch, HTTP and ``ray-gan generate``)."""

import pytest

from ray_gan.checkpoint import load_generator, read_model_info
from ray_gan.config import MixSpec
from ray_gan.generate.directions import compute_directions, rename_directions, save_directions


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
