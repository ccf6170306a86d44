"""Moving weights between models whose style lists differ (fine-tuning a base model
onto a new style's dataset).

Every architecture names its *style tables*: state-dict entries whose row ``i`` belongs
to style ``i`` (label embeddings, per-style BN gains, per-style mean latents). Rows are
matched by style *name*: a style the base model knows keeps its row, a new style starts
from the mean of the base's rows (the "average style", a neutral starting point). Every
other tensor is copied as is and must have the same shape.

An architecture may also name *optional heads*: entries a base model is allowed to lack
because it was trained before they existed (stylegan D's style classifier). They keep
their fresh initialisation and are counted as ``initialised``.
"""

from __future__ import annotations

from fnmatch import fnmatch

import torch
from torch import nn

from ray_gan import checkpoint as ckpt
from ray_gan import storage


def _matches(module: nn.Module, name: str, attr: str) -> bool:
    return any(fnmatch(name, pattern) for pattern in getattr(module, attr, ()))


def is_style_table(module: nn.Module, name: str) -> bool:
    return _matches(module, name, "style_tables")


def transfer_state(module: nn.Module, base_state: dict[str, torch.Tensor], base_styles: list[str],
                   styles: list[str]) -> dict[str, int]:
    """Load ``base_state`` into ``module`` (built for ``styles``); returns counts of
    copied tensors, of style rows copied / initialised from the mean, and of optional
    heads the base lacks (left as initialised)."""
    own = module.state_dict()
    out, counts = {}, {"copied": 0, "style_rows_copied": 0, "style_rows_new": 0, "initialised": 0}
    for name, target in own.items():
        if name not in base_state and _matches(module, name, "optional_heads"):
            out[name] = target
            counts["initialised"] += 1
            continue
        if name not in base_state:
            raise ValueError(f"the base model has no {name!r}: not the same architecture")
        src = base_state[name]
        if is_style_table(module, name) and src.shape[0] == len(base_styles):
            if src.shape[1:] != target.shape[1:]:
                raise ValueError(f"style table {name!r}: base rows {tuple(src.shape[1:])} != {tuple(target.shape[1:])}")
            rows = []
            for style in styles:
                if style in base_styles:
                    rows.append(src[base_styles.index(style)])
                    counts["style_rows_copied"] += 1
                else:
                    rows.append(src.float().mean(dim=0).to(src.dtype))
                    counts["style_rows_new"] += 1
            out[name] = torch.stack(rows)
        elif src.shape == target.shape:
            out[name] = src
            counts["copied"] += 1
        else:
            raise ValueError(f"{name!r}: base shape {tuple(src.shape)} != {tuple(target.shape)}; "
                             "the base model's architecture or size differs")
    module.load_state_dict(out)
    return counts


def init_from_base(G: nn.Module, D: nn.Module, init: dict, styles: list[str]) -> dict[str, dict[str, int]]:
    """``init``: ``{"checkpoint": URI, "styles": [...]}`` of the base model (see
    :func:`ray_gan.train.trainer.finetune`). G starts from the base's EMA generator.
    Returns :func:`transfer_state`'s counts for G and D."""
    from safetensors.torch import load as st_load

    cdir, base_styles = init["checkpoint"], list(init["styles"])
    d_state = ckpt.read_discriminator_state(cdir)
    if d_state is None:
        raise ValueError(f"{init['model']} has no discriminator weights (a generator-only model): "
                         "fine-tuning needs a model with a discriminator")
    return {"generator": transfer_state(G, st_load(storage.read_bytes(storage.join(cdir, "generator_ema.safetensors"))),
                                        base_styles, styles),
            "discriminator": transfer_state(D, d_state, base_styles, styles)}


def freeze_input_layers(D: nn.Module, n: int) -> int:
    """FreezeD (Mo et al. 2020, "Freeze the Discriminator"): hold the first ``n`` of D's
    input-side layers (``D.input_layers()``) at their current weights, so fine-tuning on a
    few hundred images adapts only the layers above them and the heads. Returns the number
    of parameter tensors frozen; a clear error when D has fewer such layers."""
    layers = D.input_layers()
    if n > len(layers):
        raise ValueError(f"freeze_d {n}: this discriminator has {len(layers)} input-side layers to freeze "
                         f"(its heads always train)")
    frozen = [p for layer in layers[:n] for p in layer.parameters()]
    for p in frozen:
        p.requires_grad_(False)
    return len(frozen)


__all__ = ["transfer_state", "init_from_base", "is_style_table", "freeze_input_layers"]
