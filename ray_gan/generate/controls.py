"""One validation of the generation controls — truncation, style mixing, edit directions —
for every way of asking for images: the batch job spec (``ray-gan batch``: a
``BatchError`` before any work starts), the HTTP body (``POST /v1/variants``: a 422) and
``ray-gan generate``.

The values alone (truncation range, seed bounds, ``mix.layers`` syntax, edit names and
finite, bounded strengths) are the config models' rules (:mod:`ray_gan.config`:
``MixSpec``, ``check_truncation``, ``check_edits``), so a bad spec or body fails as it
is parsed. :func:`check_controls` applies the same value rules again (for callers
without a config model) and adds what depends on the model: the styles it knows,
whether it has a mapping network (stylegan), how many style inputs ``mix.layers`` can
select from, and which edit directions it has stored.

The model side is a :class:`ModelControls`: a small picklable summary, so the Serve
ingress checks a request against the one it got from the generator replica without
loading the model (this module does not import torch).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ray_gan import storage
from ray_gan.config import MixSpec, Truncation, check_edits, check_truncation

if TYPE_CHECKING:
    from ray_gan.checkpoint import ModelInfo


class ControlError(ValueError):
    """A control value that is invalid, or that this model cannot apply (the message says which)."""


@dataclass(frozen=True)
class ModelControls:
    """What one model accepts."""

    uri: str
    arch: str
    styles: list[str]
    num_ws: int  # style inputs that mix.layers selects from (0 without a mapping network)
    directions: list[str]  # names of the stored edit directions
    directions_problem: str | None = None  # why edits cannot be applied (none stored, stale), if so


def model_controls(info: ModelInfo, generator: Any = None, directions: bool = True, renderer: Any = None
                   ) -> ModelControls:
    """The controls of ``info``'s model. ``generator``: its loaded generator (otherwise its
    style inputs are counted from the config). ``directions``: read the stored edit
    directions; without them :func:`check_controls` refuses any edit. ``renderer``: a
    :class:`~ray_gan.generate.render.Renderer` of the model, whose directions (read once,
    kept) are used, so rendering later reads them no second time."""
    if info.config.arch != "stylegan":
        return ModelControls(info.uri, info.config.arch, list(info.styles), 0, [])
    if generator is not None:
        num_ws = int(generator.num_ws)
    else:
        from ray_gan.models.stylegan import style_inputs

        num_ws = style_inputs(info.config.resolution)
    names: list[str] = []
    problem: str | None = "the model's edit directions were not read"
    if directions:
        from ray_gan.generate.directions import load_directions

        try:
            found = renderer.directions() if renderer is not None else load_directions(info)
            names, problem = found.names, None
        except (ValueError, storage.StorageError) as e:  # none stored, stale, or damaged: refuse edits only
            problem = str(e)
    return ModelControls(info.uri, info.config.arch, list(info.styles), num_ws, names, problem)


def check_controls(model: ModelControls, truncation: Truncation = 1.0, mix: MixSpec | None = None,
                   edits: dict[str, float] | None = None) -> None:
    """Raise :class:`ControlError` unless ``model`` can render with these controls."""
    try:
        check_truncation(truncation)
        check_edits(edits or {})
    except ValueError as e:
        raise ControlError(str(e)) from None
    if isinstance(truncation, dict):
        unknown = [s for s in truncation if s not in model.styles]
        if unknown:
            raise ControlError(f"truncation for unknown style(s) {unknown}; this model has {model.styles}")
    if (mix is not None or edits) and model.arch != "stylegan":
        raise ControlError(f"style mixing and edit directions need a stylegan model (a mapping network); "
                           f"{model.uri} is {model.arch!r}")
    if mix is not None:
        if mix.style and mix.style not in model.styles:
            raise ControlError(f"mix.style {mix.style!r} is not a style of this model; it has {model.styles}")
        if ":" in mix.layers:
            try:
                a, b = (int(v) if v else None for v in mix.layers.split(":", 1))
            except ValueError:
                raise ControlError(f"mix.layers {mix.layers!r} is not coarse, fine, all or A:B") from None
            if not range(model.num_ws)[slice(a, b)]:
                raise ControlError(f"mix.layers {mix.layers!r} selects none of the {model.num_ws} style inputs")
    if edits:
        if model.directions_problem:
            raise ControlError(model.directions_problem)
        unknown = sorted(set(edits) - set(model.directions))
        if unknown:
            raise ControlError(f"unknown edit direction(s) {unknown}; this model has {model.directions}")
