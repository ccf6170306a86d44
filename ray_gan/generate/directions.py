"""Edit directions in W found by PCA (Härkönen et al., 2020, "GANSpace"), stored with
the model.

``compute_directions`` samples w = mapping(z, style) for random z over every style,
takes the principal components of the samples, and keeps the top ``k`` with their
standard deviations. An edit ``{name: strength}`` adds ``strength · σ_k · v_k`` to w
(strength in standard deviations along that component), to every layer's style input.

Stored beside ``model.json`` by :mod:`ray_gan.checkpoint` (``write_directions``): the
tensors components (k, w_dim), stds (k,), mean (w_dim,), and a JSON document with the
names, explained variance, sample count, the tensors' sha256 and the sha256 of the
generator weights they were computed for.

Directions belong to one set of weights: after more training (a new model.json) they
are stale, and rendering with edits asks for them to be recomputed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from ray_gan import checkpoint as ckpt
from ray_gan.checkpoint import ModelInfo
from ray_gan.config import check_edit_names


@dataclass(frozen=True)
class Directions:
    names: list[str]
    components: torch.Tensor  # (k, w_dim), orthonormal rows
    stds: torch.Tensor  # (k,)
    explained_variance_ratio: list[float]

    def offset(self, edits: dict[str, float]) -> torch.Tensor:
        """Σ strength·σ·v over the named edits → (w_dim,)."""
        unknown = sorted(set(edits) - set(self.names))
        if unknown:
            raise ValueError(f"unknown edit direction(s) {unknown}; this model has {self.names}")
        out = torch.zeros(self.components.shape[1])
        for name, strength in edits.items():
            k = self.names.index(name)
            out += float(strength) * self.stds[k] * self.components[k]
        return out


@torch.no_grad()
def compute_directions(G: torch.nn.Module, num_styles: int, components: int = 8, samples: int = 20_000,
                       seed: int = 0, device: str | torch.device = "cpu") -> tuple[Directions, torch.Tensor]:
    """PCA of ``samples`` W latents (styles in equal shares). Returns the directions and the mean."""
    if not hasattr(G, "mapping"):
        raise ValueError("edit directions need a mapping network (arch stylegan)")
    gen = torch.Generator().manual_seed(seed)
    ws = []
    for i in range(0, samples, 1000):
        n = min(1000, samples - i)
        z = torch.randn(n, G.z_dim, generator=gen)
        s = torch.arange(i, i + n) % num_styles
        ws.append(G.mapping(z.to(device), s.to(device)).float().cpu())
    w = torch.cat(ws).double()
    mean = w.mean(dim=0)
    cov = (w - mean).T @ (w - mean) / (len(w) - 1)
    evals, evecs = torch.linalg.eigh(cov)  # ascending
    order = torch.argsort(evals, descending=True)[:components]
    evals, evecs = evals[order].clamp(min=0), evecs[:, order].T
    # A fixed sign per component (largest-magnitude entry positive), so recomputing
    # gives the same direction and not its negative.
    sign = torch.sign(evecs[torch.arange(len(evecs)), evecs.abs().argmax(dim=1)])
    evecs = evecs * sign[:, None]
    ratio = (evals / torch.linalg.eigvalsh(cov).clamp(min=0).sum()).tolist()
    names = [f"pc{k}" for k in range(len(evals))]
    return Directions(names, evecs.float(), evals.sqrt().float(), [round(r, 6) for r in ratio]), mean.float()


def save_directions(info: ModelInfo, directions: Directions, mean: torch.Tensor, samples: int) -> str:
    doc = {"names": directions.names, "explained_variance_ratio": directions.explained_variance_ratio,
           "samples": samples, "weights_sha256": info.weights_sha256, "step": info.step}
    return ckpt.write_directions(info.uri, {"components": directions.components, "stds": directions.stds,
                                            "mean": mean}, doc)


def rename_directions(info: ModelInfo, names: dict[str, str]) -> list[str]:
    """Give components meaningful names after looking at them (``{"pc0": "thickness"}``)."""
    doc = _doc(info)
    unknown = sorted(set(names) - set(doc["names"]))
    if unknown:
        raise ValueError(f"unknown direction(s) {unknown}; this model has {doc['names']}")
    new = [names.get(n, n) for n in doc["names"]]
    if len(set(new)) != len(new):
        raise ValueError(f"direction names must be unique: {new}")
    check_edit_names(new)  # names that edits can use
    ckpt.write_directions_doc(info.uri, {**doc, "names": new})
    return new


def _doc(info: ModelInfo) -> dict:
    doc = ckpt.read_directions_doc(info.uri)
    if doc is None:
        raise ValueError(f"{info.uri} has no edit directions; compute them with `ray-gan directions {info.uri}`")
    return doc


def load_directions(info: ModelInfo) -> Directions:
    found = ckpt.read_directions(info.uri)  # the tensors checked against the sha256 the JSON records
    if found is None:
        _doc(info)  # raises: none stored
    doc, t = found
    if doc["weights_sha256"] != info.weights_sha256:
        raise ValueError(f"the edit directions in {info.uri} were computed for step {doc.get('step')}, "
                         f"the model is now at step {info.step}; run `ray-gan directions {info.uri}` again")
    return Directions(list(doc["names"]), t["components"], t["stds"], list(doc["explained_variance_ratio"]))
