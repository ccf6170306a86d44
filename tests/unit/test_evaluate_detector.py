"""Detectability (evaluate/detector.py): a real-vs-generated detector, tested on images it
never saw — near 1.0 for images it can tell apart, near chance for images drawn like the
real ones; position 1 at chance, 0 when always told apart."""

import numpy as np
import pytest

from ray_gan.evaluate.detector import detectability, position, spread

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SIZE = 16


def _shapes(n: int, seed: int, style: int) -> np.ndarray:
    """Dark squares of random size and place on white, darker for style 1."""
    rng = np.random.default_rng(seed)
    out = np.full((n, SIZE, SIZE, 3), 255, np.uint8)
    for img in out:
        s = int(rng.integers(4, 10))
        y, x = rng.integers(0, SIZE - s, 2)
        img[y : y + s, x : x + s] = 40 if style else 120
    return out


def _set(n_per_style: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    images = np.concatenate([_shapes(n_per_style, seed * 10 + k, k) for k in (0, 1)])
    return images, np.repeat([0, 1], n_per_style)


def test_position_is_one_at_chance_and_zero_when_always_told_apart():
    assert position(0.5) == 1.0 and position(1.0) == 0.0 and position(0.75) == 0.5


def test_spread_takes_at_most_n_per_style_evenly():
    styles = np.array([0] * 10 + [1] * 3)
    idx = spread(styles, 4)
    assert idx.tolist() == [0, 2, 5, 7, 10, 11, 12]


def test_images_from_another_distribution_are_told_apart():
    real_train, _ = _set(96, 0)
    real_test, test_styles = _set(48, 1)
    blurred = lambda x: (x.astype(np.float32) * 0.3 + 150).astype(np.uint8)  # noqa: E731 - washed-out copies
    d = detectability(real_train, blurred(_set(96, 2)[0]), real_test, test_styles, blurred(_set(48, 3)[0]),
                      test_styles, steps=60, seed=0)
    assert d.accuracy > 0.95 and d.position < 0.1
    assert d.generated_detected > 0.95 and set(d.per_style) == {0, 1}
    assert min(d.per_style.values()) > 0.9
    assert (d.train_real, d.train_generated, d.test_real, d.test_generated) == (192, 192, 96, 96)


def test_images_drawn_like_the_real_ones_sit_near_chance():
    real_train, _ = _set(96, 0)
    real_test, test_styles = _set(48, 1)
    d = detectability(real_train, _set(96, 2)[0], real_test, test_styles, _set(48, 3)[0], test_styles,
                      steps=60, seed=0)
    assert 0.3 < d.accuracy < 0.7 and d.position > 0.6


def test_empty_sets_are_refused():
    images, styles = _set(4, 0)
    with pytest.raises(ValueError, match="needs real and generated"):
        detectability(images, images[:0], images, styles, images, styles, steps=5)
