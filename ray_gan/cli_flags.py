"""Command-line flags generated from the pydantic configs in :mod:`ray_gan.config`.

One flag per leaf field, nested groups flattened (``TrainConfig.optim.lr_g`` is
``--lr-g``): the flag comes from the field name (or the field's ``json_schema_extra``
``cli`` entry, where a flag kept an older name), choices from a ``Literal``, help from
the ``description``, and the default from the model alone: an unset flag is absent
from the parsed namespace, so pydantic applies its own default. Booleans get
``--name/--no-name``.
"""

from __future__ import annotations

import argparse
import types
import typing
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from ray_gan.config import Leaf, leaves, nest


def _flag(leaf: Leaf) -> str:
    extra = leaf.field.json_schema_extra
    if isinstance(extra, dict) and extra.get("cli"):
        return str(extra["cli"])
    return "--" + leaf.name.replace("_", "-")


def _scalar(annotation: Any) -> Any:
    """``int | None`` → ``int``; other unions are left as they are."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return args[0] if len(args) == 1 else annotation
    return annotation


def _default_text(field: FieldInfo) -> str:
    if field.default is PydanticUndefined or field.default is None:
        return ""
    return f" (default: {field.default})"


def add_flags(parser: argparse.ArgumentParser, model: type[BaseModel], positional: tuple[str, ...] = (),
              skip: tuple[str, ...] = ()) -> None:
    """``--config FILE.yaml`` and flags for ``model``'s leaves on ``parser``: fields named in
    ``positional`` become positional arguments (in that order), and fields named in
    ``skip`` are left out (set by the command itself). A required field may come from the
    file instead of the command line: pydantic says which are missing."""
    parser.add_argument("--config", metavar="FILE.yaml",
                        help=f"a YAML file of {model.__name__} fields (the command line's values override it)")
    by_name = {leaf.name: leaf for leaf in leaves(model)}
    for name in positional:
        leaf = by_name[name]
        parser.add_argument(name, nargs="?", default=argparse.SUPPRESS, type=_scalar(leaf.field.annotation),
                            help=leaf.field.description)
    for leaf in by_name.values():
        if leaf.name in positional or leaf.name in skip:
            continue
        field, typ = leaf.field, _scalar(leaf.field.annotation)
        kw: dict[str, Any] = {"dest": leaf.name, "default": argparse.SUPPRESS,
                              "help": (field.description or "") + _default_text(field)}
        if typ is bool:
            kw["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(typ) in (list, dict):  # repeatable; the model's validators parse the text
            kw["action"] = "append"
        elif typing.get_origin(typ) is Literal:
            kw["choices"] = list(typing.get_args(typ))
        elif typ in (int, float):
            kw["type"] = typ
        # anything else (str, a union such as a truncation: a number or per-style values) is
        # given as text, which the model's own validators parse
        parser.add_argument(_flag(leaf), **kw)


def values(model: type[BaseModel], args: argparse.Namespace, base: dict | None = None) -> dict:
    """The nested dict of ``model``'s fields given on the command line, laid over ``base``
    (e.g. a YAML file's values)."""
    names = {leaf.name for leaf in leaves(model)}
    return nest(model, {k: v for k, v in vars(args).items() if k in names}, base)
