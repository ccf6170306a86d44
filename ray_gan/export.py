"""``ray-gan export MODEL --format onnx``: the EMA generator as an ONNX graph for runtimes
without PyTorch (onnxruntime, TensorRT, browsers).

The graph computes exactly what the renderer computes for one image batch:

    inputs   z          float32 (N, z_dim)   the seed's latent (see ``latents_from_seeds``)
             style      int64   (N,)         style index (``export.json`` lists the names)
             truncation float32 (N,)         1 = none; stylegan: towards the style's mean w
    output   image      float32 (N, C, R, R) in [-1, 1]

Files: ``OUT/generator.onnx`` and ``OUT/export.json`` (styles, shapes, opset, the
weights' sha256, and the recipe for z). Default OUT: ``MODEL/export/onnx``.
"""

from __future__ import annotations

import importlib.util
import io

import torch
from torch import nn

from ray_gan import storage
from ray_gan.checkpoint import load_generator

OPSET = 17


class ExportableGenerator(nn.Module):
    def __init__(self, G: nn.Module) -> None:
        super().__init__()
        self.G = G

    def forward(self, z: torch.Tensor, style: torch.Tensor, truncation: torch.Tensor) -> torch.Tensor:
        G = self.G
        if hasattr(G, "mapping"):
            w = G.truncate(G.mapping(z, style), style, truncation[:, None])
            img = G.synthesis(w[:, None].expand(-1, G.num_ws, -1), noise="const")
        else:
            img = G(z * truncation[:, None], style)
        return img.clamp(-1, 1)


def export_onnx(model_uri: str, out: str | None = None) -> dict[str, str]:
    if importlib.util.find_spec("onnx") is None:
        raise ValueError("ONNX export needs the onnx extra: pip install 'ray-gan[onnx]'")
    G, info = load_generator(model_uri, "cpu")
    out = out or storage.join(info.uri, "export", "onnx")
    module = ExportableGenerator(G).eval()
    n = 2
    args = (torch.randn(n, info.config.z_dim), torch.zeros(n, dtype=torch.long), torch.ones(n))
    buf = io.BytesIO()
    with torch.no_grad():
        torch.onnx.export(module, args, buf, input_names=["z", "style", "truncation"], output_names=["image"],
                          dynamic_axes={"z": {0: "n"}, "style": {0: "n"}, "truncation": {0: "n"}, "image": {0: "n"}},
                          opset_version=OPSET, dynamo=False)
    onnx_uri = storage.join(out, "generator.onnx")
    storage.write_bytes(onnx_uri, buf.getvalue())
    c = info.config
    doc = {"format": "onnx", "opset": OPSET, "model_uri": info.uri, "step": info.step,
           "weights_sha256": info.weights_sha256, "architecture": c.arch, "styles": info.styles,
           "inputs": {"z": ["n", c.z_dim], "style": ["n"], "truncation": ["n"]},
           "output": {"image": ["n", c.channels, c.resolution, c.resolution], "range": [-1, 1]},
           "latent_recipe": "z = torch.randn(z_dim, generator=torch.Generator().manual_seed(seed)) (CPU)"}
    json_uri = storage.join(out, "export.json")
    storage.write_json(json_uri, doc)
    return {"onnx": onnx_uri, "json": json_uri}
