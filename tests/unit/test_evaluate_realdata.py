"""ray_gan.evaluate.realdata: the real images an evaluation compares with."""

import numpy as np
import pytest
from helpers import N_VAL, write_tiny_dataset

from ray_gan import storage
from ray_gan.data.dataset import read_dataset_info
from ray_gan.evaluate.realdata import real_images

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_real_images_are_sampled_evenly_per_style_and_resized_to_the_model(tiny_dataset):
    info = read_dataset_info(tiny_dataset)
    real = real_images(info, "val", {0: 2, 1: 0, 2: 1}, resolution=16, per_style=5)
    assert real.images.shape == (15, 16, 16, 3) and real.images.dtype == np.uint8
    assert list(real.styles) == [0] * 5 + [1] * 5 + [2] * 5  # model indices, grouped
    assert real.available == {0: N_VAL, 1: N_VAL, 2: N_VAL}
    assert all(k.startswith("beta/") for k in real.keys[:5])  # dataset style 1 (beta) → model style 0
    again = real_images(info, "val", {0: 2, 1: 0, 2: 1}, resolution=16, per_style=5)
    assert np.array_equal(real.images, again.images)
    limited = real_images(info, "train", {0: 0, 1: 1, 2: 2}, resolution=32, limit=30)
    assert len(limited.images) == 30 and set(np.bincount(limited.styles)) == {10}


def test_real_images_stop_reading_shards_once_the_limits_are_met(tmp_path):
    ds = write_tiny_dataset(str(tmp_path / "ds"), n_train=8, n_val=2, size=16)
    doc = storage.read_json(storage.join(ds, "dataset.json"))
    train = next(s for s in doc["shards"] if s["split"] == "train")
    doc["shards"].append({**train, "path": "train-00001.parquet"})  # listed, but never written
    storage.write_json(storage.join(ds, "dataset.json"), doc)
    info = read_dataset_info(ds)
    assert len(real_images(info, "train", {0: 0, 1: 1, 2: 2}, 16, limit=20).images) == 20
    assert len(real_images(info, "train", {0: 0, 1: 1, 2: 2}, 16, per_style=8).images) == 24
    with pytest.raises(storage.StorageError):
        real_images(info, "train", {0: 0, 1: 1, 2: 2}, 16)  # no limit: every shard is read
