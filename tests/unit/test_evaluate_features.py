"""ray_gan.evaluate.features: the random-CNN and Inception feature extractors."""

import numpy as np
import pytest
import torch

from ray_gan.evaluate.features import INCEPTION_WEIGHTS_ENV, RandomCNNExtractor, make_extractor, resolve_extractor

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# sha256 of the random-cnn weights; if this changes (a torch RNG change), random-cnn FIDs
# are no longer comparable with reports made before.
RANDOM_CNN_FINGERPRINT = "277649011c62dca8f3d590ad3803f89755c4ee6b01f0392638f6d87c3729aa42"


def test_random_cnn_is_fixed_and_deterministic():
    a, b = RandomCNNExtractor("cpu"), RandomCNNExtractor("cpu", batch_size=3)
    assert a.fingerprint == b.fingerprint == RANDOM_CNN_FINGERPRINT
    imgs = np.random.default_rng(0).integers(0, 256, size=(7, 32, 32, 3), dtype=np.uint8)
    fa, fb = a(imgs), b(imgs)
    assert fa.shape == (7, a.dim) == (7, 512) and fa.dtype == np.float64
    np.testing.assert_allclose(fa, fb, rtol=1e-5, atol=1e-6)  # batching does not matter
    assert not np.allclose(fa[0], fa[1])
    assert make_extractor("random-cnn").name == "random-cnn"
    assert resolve_extractor("auto") == "classifier"  # offline default: features of a classifier of this data
    with pytest.raises(ValueError, match="uint8"):
        a(imgs.astype(np.float32))


def test_inception_needs_a_local_weights_file(tmp_path, monkeypatch):
    monkeypatch.delenv(INCEPTION_WEIGHTS_ENV, raising=False)
    with pytest.raises(ValueError, match="--inception-weights"):
        make_extractor("inception")
    with pytest.raises(FileNotFoundError, match="never downloaded"):
        make_extractor("inception", str(tmp_path / "missing.pth"))
    pickled = tmp_path / "pickled.pth"
    torch.save({"net": torch.nn.Linear(2, 2)}, pickled)  # a pickled module, not a state dict
    with pytest.raises(ValueError, match="weights-only"):
        make_extractor("inception", str(pickled))
    not_inception = tmp_path / "linear.pth"
    torch.save(torch.nn.Linear(2, 2).state_dict(), not_inception)
    with pytest.raises(ValueError, match="inception_v3"):
        make_extractor("inception", str(not_inception))


def test_inception_loads_a_local_state_dict(tmp_path, monkeypatch):
    from torchvision.models import inception_v3

    torch.manual_seed(0)
    net = inception_v3(weights=None, aux_logits=False, init_weights=False)
    path = tmp_path / "inception.pth"
    torch.save(net.state_dict(), path)
    monkeypatch.setenv(INCEPTION_WEIGHTS_ENV, str(path))
    ext = make_extractor("auto", device="cpu")  # the environment variable selects Inception
    assert (ext.name, ext.dim, ext.input_size) == ("inception", 2048, 299)
    feats = ext(np.full((2, 32, 32, 3), 200, np.uint8))
    assert feats.shape == (2, 2048) and np.isfinite(feats).all()
    net.fc = torch.nn.Identity()
    with torch.no_grad():  # pool3 of the same weights, on the documented preprocessing
        x = torch.full((1, 3, 299, 299), 200 / 255.0)
        expected = net.eval()((x - 0.5) / 0.5).double().numpy()
    np.testing.assert_allclose(feats[:1], expected, rtol=1e-4, atol=1e-5)
