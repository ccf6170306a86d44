"""ray_gan.evaluate.classifier: the style classifier and its accuracy summary."""

import numpy as np
import pytest

from ray_gan.data.dataset import read_dataset_info
from ray_gan.evaluate.classifier import accuracy, train_style_classifier
from ray_gan.evaluate.realdata import real_images

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_style_classifier_learns_the_styles_and_is_seeded(tiny_dataset):
    info = read_dataset_info(tiny_dataset)
    train = real_images(info, "train", {0: 0, 1: 1, 2: 2}, resolution=16)
    val = real_images(info, "val", {0: 0, 1: 1, 2: 2}, resolution=16)
    fit = train_style_classifier(train.images, train.styles, 3, val.images, val.styles, steps=40, seed=0)
    assert fit.val is not None and fit.val.overall >= 0.9
    again = train_style_classifier(train.images, train.styles, 3, steps=40, seed=0)
    assert np.array_equal(fit.classifier.predict(val.images), again.classifier.predict(val.images))
    acc = accuracy(np.array([0, 1, 1, 2]), np.array([0, 1, 2, 2]), 4)
    assert acc.overall == 0.75 and acc.per_style == [1.0, 1.0, 0.5, None] and acc.counts == [1, 1, 2, 0]
    assert acc.confusion == [[1, 0, 0, 0], [0, 1, 0, 0], [0, 1, 1, 0], [0, 0, 0, 0]]
