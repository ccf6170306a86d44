"""ray_gan.checkpoint: model directories and their checked weights."""

import pytest

from ray_gan import storage
from ray_gan.checkpoint import load_generator


def test_tampered_weights_are_refused(tiny_model):
    G, info = load_generator(tiny_model)
    path = storage.join(info.checkpoint, "generator_ema.safetensors")
    data = bytearray(storage.read_bytes(path))
    data[-1] ^= 0xFF
    storage.write_bytes(path, bytes(data))
    with pytest.raises(storage.StorageError, match="do not match"):
        load_generator(tiny_model)
