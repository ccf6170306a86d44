"""ray_gan.train.augment: DiffAugment."""

import pytest
import torch

from ray_gan.train.augment import diff_augment


def test_diffaugment_changes_images_keeps_shape_and_is_differentiable():
    x = (torch.rand(8, 3, 16, 16) * 2 - 1).requires_grad_(True)
    y = diff_augment(x, "color,translation,cutout", torch.Generator().manual_seed(0))
    assert y.shape == x.shape and not torch.allclose(x, y)
    y.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    # cutout zeroes a quarter of the image (half the side); translation shifts content
    ones = torch.ones(16, 3, 16, 16)
    cut = diff_augment(ones, "cutout", torch.Generator().manual_seed(1))
    assert (cut == 0).float().mean(dim=(1, 2, 3)).max() == pytest.approx(0.25, abs=0.01)
    with pytest.raises(ValueError, match="unknown DiffAugment"):
        diff_augment(x, "rotate")
