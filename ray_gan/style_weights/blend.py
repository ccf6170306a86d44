"""``ray-gan blend A B --alpha 0.5 [--layers ...] --out MODEL``: interpolate or swap layers
between two compatible generators (e.g. a base model and its fine-tuned child).

Layer-wise blending (cf. Pinkney & Adler, 2020, "Resolution Dependent GAN
Interpolation"): every generator tensor belongs to a *group* — ``mapping`` or the
feature-map size it works at (``4``, ``8``, ... the output size). Tensors in the selected
groups become ``lerp(A, B, alpha)``; the others stay A's. ``alpha = 0`` reproduces A,
``alpha = 1`` with every group reproduces B, exactly (``torch.lerp`` is exact at its ends).
``coarse`` and ``fine`` select the lower and upper half of the sizes, as for style mixing:
e.g. B's textures on A's shapes is ``--alpha 1 --layers fine``.

Style tables (label embeddings, per-style mean latents) come whole from one parent
(``styles_from``, default A) together with its style names; when A and B have the same
styles they are blended like any other tensor.

The discriminator comes along where both parents have one of the same shape (trained
models do), so the blend can be fine-tuned further (``ray-gan finetune BLEND``): a
whole-model blend interpolates D with the same ``alpha``; a blend of some layer groups
keeps A's D (G keeps A's weights outside those groups). Style tables follow G's rule.
Otherwise the blend is generator-only, and ``model.json``'s ``blend.discriminator``
says why.
"""

from __future__ import annotations

from typing import Literal

import torch

from ray_gan import checkpoint as ckpt
from ray_gan.models import build_discriminator, build_generator
from ray_gan.models.stylegan import resolutions
from ray_gan.models.transfer import is_style_table


def layer_group(arch: str, resolution: int, name: str) -> str:
    """The blending group of a generator state-dict entry."""
    res = resolutions(resolution)
    head = name.split(".")[0]
    if arch == "stylegan":
        if head == "mapping":
            return "mapping"
        if head in ("const", "conv4", "rgb4"):
            return "4"
        if head == "blocks":
            return str(res[int(name.split(".")[1]) + 1])
        if head == "w_avg":
            return "mapping"
    elif arch == "dcgan":
        if head in ("fc", "bn0"):
            return "4"
        if head in ("ups", "bns"):
            return str(res[int(name.split(".")[1]) + 1])
        if head == "to_rgb":
            return str(resolution)
    raise ValueError(f"blending is not defined for {arch!r} tensor {name!r}")


def expand_layers(arch: str, resolution: int, layers: list[str] | None) -> set[str]:
    res = [str(r) for r in resolutions(resolution)]
    every = {"mapping", *res} if arch == "stylegan" else set(res)
    if not layers or layers == ["all"]:
        return every
    out: set[str] = set()
    half = (len(res) + 1) // 2
    for token in layers:
        if token == "coarse":
            out |= set(res[:half])
        elif token == "fine":
            out |= set(res[half:])
        elif token in every:
            out.add(token)
        else:
            raise ValueError(f"unknown layer group {token!r}; use {sorted(every, key=lambda t: (len(t), t))}, "
                             "coarse, fine or all")
    return out


def blend_models(a_uri: str, b_uri: str, out: str, alpha: float = 0.5, layers: list[str] | None = None,
                 styles_from: Literal["a", "b"] = "a") -> ckpt.ModelInfo:
    if not 0.0 <= alpha <= 1.0:
        raise ValueError("alpha must be between 0 and 1")
    Ga, ia = ckpt.load_generator(a_uri)
    Gb, ib = ckpt.load_generator(b_uri)
    ca, cb = ia.config, ib.config
    d_only = {"num_styles", "d_channels", "pack"}  # (num_styles: style rows are matched by name)
    shape_a, shape_b = ca.model_dump(exclude=d_only), cb.model_dump(exclude=d_only)
    if shape_a != shape_b:
        diff = {k: (shape_a[k], shape_b[k]) for k in shape_a if shape_a[k] != shape_b[k]}
        raise ValueError(f"the generators are not compatible: {diff}")
    groups = expand_layers(ca.arch, ca.resolution, layers)
    src_info, src_G = (ia, Ga) if styles_from == "a" else (ib, Gb)
    same_styles = ia.styles == ib.styles
    sa, sb = Ga.state_dict(), Gb.state_dict()
    out_state = {}
    for name, ta in sa.items():
        tb = sb[name]
        if is_style_table(Ga, name) and not same_styles:
            out_state[name] = src_G.state_dict()[name]
        elif layer_group(ca.arch, ca.resolution, name) in groups and ta.is_floating_point():
            out_state[name] = torch.lerp(ta, tb, alpha)
        else:
            out_state[name] = ta
    G = build_generator(src_info.config)
    G.load_state_dict(out_state)
    whole = groups == expand_layers(ca.arch, ca.resolution, None)
    D, d_how = _blend_discriminators(ia, ib, src_info, alpha if whole else 0.0, styles_from)
    blend = {"a": {"uri": ia.uri, "step": ia.step, "weights_sha256": ia.weights_sha256},
             "b": {"uri": ib.uri, "step": ib.step, "weights_sha256": ib.weights_sha256},
             "alpha": alpha, "layers": sorted(groups, key=lambda t: (len(t), t)), "styles_from": styles_from,
             "discriminator": d_how}
    return ckpt.write_generator_model(out, G.eval(), src_info.config, src_info.styles, step=0,
                                      extra={"blend": blend}, D=D)


def _blend_discriminators(ia: ckpt.ModelInfo, ib: ckpt.ModelInfo, src_info: ckpt.ModelInfo, alpha: float,
                          styles_from: str) -> tuple[torch.nn.Module | None, str]:
    """``lerp(D_A, D_B, alpha)`` (style tables from ``styles_from`` when the style lists
    differ), or None and the reason there is no D to blend."""
    states = {"a": ckpt.read_discriminator_state(ia.checkpoint), "b": ckpt.read_discriminator_state(ib.checkpoint)}
    missing = [k.upper() for k, v in states.items() if v is None]
    if missing:
        return None, f"none: {' and '.join(missing)} {'has' if len(missing) == 1 else 'have'} no discriminator"
    ca, cb = ia.config, ib.config
    if (ca.d_channels, ca.pack) != (cb.d_channels, cb.pack):
        return None, (f"none: the discriminators differ (d_channels {ca.d_channels} vs {cb.d_channels}, "
                      f"pack {ca.pack} vs {cb.pack})")
    D = build_discriminator(src_info.config)
    sa, sb, src = states["a"], states["b"], states[styles_from]
    if not set(sa) == set(sb) == set(D.state_dict()):
        return None, "none: the discriminators' layers differ (one was trained before a head was added)"
    same_styles = ia.styles == ib.styles
    D.load_state_dict({name: src[name] if is_style_table(D, name) and not same_styles
                       else torch.lerp(ta, sb[name], alpha) if ta.is_floating_point() else ta
                       for name, ta in sa.items()})
    return D.eval(), "A's" if alpha == 0.0 else f"lerp(A, B, {alpha:g})"
