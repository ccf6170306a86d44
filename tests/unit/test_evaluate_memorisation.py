"""ray_gan.evaluate.memorisation: the near-copy audit and its worst-pairs image."""

import io

import numpy as np
import pytest
from helpers import rng as _rng
from PIL import Image

from ray_gan.data.demo import iter_demo_images
from ray_gan.evaluate.memorisation import audit_near_copies, pixel_vectors, worst_pairs_png


def _demo_images(n_per_style: int, seed: int) -> np.ndarray:
    return np.stack([np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
                     for _, _, png in iter_demo_images(per_style=n_per_style, size=16, seed=seed)])


@pytest.fixture(scope="module")
def demo_sets():
    train = _demo_images(60, seed=1)  # 240 images, 4 styles × 60
    held_out = _demo_images(60, seed=2)
    return train, held_out[0::2], held_out[1::2]  # two held-out sets, 30 of each style


def test_audit_flags_a_generator_that_copies_training_images(demo_sets):
    train, val, _ = demo_sets
    copies = train[::2].copy()
    copies[:, 0, 0, 0] ^= 1  # not even byte-identical: one pixel off by one level
    audit = audit_near_copies(pixel_vectors(copies), pixel_vectors(train), pixel_vectors(val))
    assert audit.share == 1.0 and audit.count == len(copies)
    assert audit.flagged
    assert np.array_equal(audit.index, np.arange(0, len(train), 2))
    assert audit.measure.startswith("relative") and audit.score.max() < audit.threshold


def test_audit_passes_noise_and_held_out_real_images(demo_sets):
    train, val, other = demo_sets
    noise = _rng(15).integers(0, 256, size=(120, 16, 16, 3), dtype=np.uint8)
    audit = audit_near_copies(pixel_vectors(noise), pixel_vectors(train), pixel_vectors(val))
    assert audit.share == 0.0 and not audit.flagged
    # New real images (like a model that generalises): about `quantile` of them are under the threshold.
    honest = audit_near_copies(pixel_vectors(other), pixel_vectors(train), pixel_vectors(val), quantile=0.05)
    assert honest.share < 0.1 and not honest.flagged


def test_audit_thresholds_per_style(demo_sets):
    train, val, other = demo_sets
    styles = np.repeat(np.arange(4), 30)  # the held-out sets hold 30 images of each style, in style order
    flat_and_outline = other[:60]
    audit = audit_near_copies(pixel_vectors(flat_and_outline), pixel_vectors(train), pixel_vectors(val),
                              generated_styles=styles[:60], reference_styles=styles)
    assert sorted(audit.style_thresholds) == [0, 1]
    for s in (0, 1):
        ref = audit.reference_scores[styles == s]
        assert audit.style_thresholds[s] == pytest.approx(np.quantile(ref, 0.05))
        assert np.all(audit.limit[styles[:60] == s] == audit.style_thresholds[s])
    assert audit.share <= 0.1 and not audit.flagged


def test_audit_without_val_uses_train_leave_one_out(demo_sets):
    train, _, _ = demo_sets
    audit = audit_near_copies(pixel_vectors(train[:40]), pixel_vectors(train))
    assert "leave" in audit.reference or "other train" in audit.reference
    assert audit.threshold > 0  # self-matches were excluded
    assert audit.flagged


def test_worst_pairs_png_shows_the_closest_pairs_side_by_side(demo_sets):
    train, val, _ = demo_sets
    gen = np.concatenate([val[:10], train[5:6]])  # one exact copy: the closest pair
    audit = audit_near_copies(pixel_vectors(gen), pixel_vectors(train), pixel_vectors(val[10:]))
    assert audit.closest(1)[0] == 10
    img = np.asarray(Image.open(io.BytesIO(worst_pairs_png(gen, train, audit, n=4))))
    scale, pad = 4, 4  # 16 px tiles are enlarged to 64
    assert img.shape == (4 * (16 * scale + pad) + pad, 2 * (16 * scale + pad) + pad, 3)
    first_gen = img[pad : pad + 64 : scale, pad : pad + 64 : scale]
    first_train = img[pad : pad + 64 : scale, 2 * pad + 64 : 2 * pad + 128 : scale]
    assert np.array_equal(first_gen, train[5]) and np.array_equal(first_train, train[5])


def _glyphs(rng, n, max_strokes):
    """White 16×16 images, each with 1..``max_strokes`` random black horizontal/vertical strokes."""
    img = np.full((n, 16, 16, 3), 255, np.uint8)
    for i in range(n):
        for _ in range(rng.integers(1, max_strokes + 1)):
            a, b = sorted(rng.integers(1, 15, size=2))
            c = rng.integers(1, 15)
            if rng.random() < 0.5:
                img[i, c, a : b + 2] = 0
            else:
                img[i, a : b + 2, c] = 0
    return img


def test_audit_relative_measure_does_not_call_generic_faint_images_copies():
    rng = _rng(7)
    train, val = _glyphs(rng, 400, 6), _glyphs(rng, 80, 6)  # from single strokes ("一") to six
    # A collapsed generator: faint grey blobs, no strokes; generic, close to the sparsest glyphs.
    faint = np.clip(255 - np.abs(rng.normal(0, 12, size=(80, 16, 16, 3))), 0, 255).astype(np.uint8)
    absolute = audit_near_copies(pixel_vectors(faint), pixel_vectors(train), pixel_vectors(val), relative_k=0)
    relative = audit_near_copies(pixel_vectors(faint), pixel_vectors(train), pixel_vectors(val))
    assert absolute.measure == "absolute" and absolute.flagged  # what the absolute distance alone concluded
    assert relative.measure == "relative (k=50)" and relative.share == 0.0 and not relative.flagged
    # while copies of those same sparse glyphs are still caught
    copies = train[np.argsort(pixel_vectors(train).sum(1))[-5:]].repeat(4, axis=0)  # the sparsest glyphs
    caught = audit_near_copies(pixel_vectors(copies), pixel_vectors(train), pixel_vectors(val))
    assert caught.share == 1.0 and caught.flagged
