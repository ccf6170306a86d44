"""Pure state-dict transforms between models whose style lists differ (used by fine-tuning,
:mod:`ray_gan.train.finetune`, and blending, :mod:`ray_gan.style_weights.blend`).

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


__all__ = ["transfer_state", "is_style_table"]
