"""The package's layers, checked on the source: networks know nothing of where bytes
live or how they are trained, served or batch-run, and the serving and batch paths do
not depend on training."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "ray_gan"

# package (a folder of ray_gan, or a module) → ray_gan modules it must not import
FORBIDDEN = {
    "models": ("checkpoint", "storage", "train", "serve", "batch"),
    "serve": ("train",),
    "batch": ("train",),
}


def imported_ray_gan_modules(path: Path) -> set[str]:
    """Every ``ray_gan.X`` a module imports, at any depth (lazy imports in functions count)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        found |= {n.removeprefix("ray_gan.") for n in names if n.startswith("ray_gan.")}
    return found


def _violations(package: str) -> list[str]:
    out = []
    for path in sorted((PACKAGE / package).rglob("*.py")):
        for name in imported_ray_gan_modules(path):
            top = name.split(".")[0]
            if top in FORBIDDEN[package]:
                out.append(f"{path.relative_to(PACKAGE.parent)} imports ray_gan.{name}")
    return out


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_layers_import_only_what_they_may(package):
    assert (PACKAGE / package).is_dir()
    assert not _violations(package)


def test_the_check_sees_imports_at_any_depth(tmp_path):
    src = tmp_path / "m.py"
    src.write_text("import os\nfrom ray_gan import storage\n\ndef f():\n    from ray_gan.train.trainer import train\n"
                   "    import ray_gan.checkpoint\n")
    assert imported_ray_gan_modules(src) >= {"storage", "train.trainer", "checkpoint"}
