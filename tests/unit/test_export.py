"""ray_gan.export: the ONNX generator matches torch and the renderer."""

import numpy as np
import pytest
import torch

from ray_gan import storage
from ray_gan.checkpoint import load_generator
from ray_gan.generate.render import Renderer


@pytest.mark.parametrize("fixture", ["tiny_stylegan", "tiny_model"])
def test_onnx_export_matches_torch(fixture, request, tmp_path):
    ort = pytest.importorskip("onnxruntime", reason="needs onnxruntime: pip install -e '.[onnx]' (or '.[test]')")
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
