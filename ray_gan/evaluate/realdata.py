"""Real images of one split as evaluation compares them with generated ones.

The sample is the dataset reader's (:func:`ray_gan.data.dataset.read_split`: evenly
spaced, per style and/or in all, grouped by style). The images are then brought into the
model's image space with the transform training applies to its input
(:func:`ray_gan.images.model_space`, through :func:`ray_gan.images.to_model_space`):
the channel mean for one-channel models, then a bilinear, antialiased resize to the
model's resolution when the dataset's differs — rounded back to uint8, so that real and
generated images go through the same feature extractors and classifier.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ray_gan.data.dataset import DatasetInfo, read_split
from ray_gan.images import to_model_space


@dataclass(frozen=True)
class RealImages:
    images: np.ndarray  # uint8 (N, R, R, 3) in the model's image space, grouped by style
    styles: np.ndarray  # int64 (N,) model style indices, ascending
    keys: list[str]  # source_key of each image ('' where the shards do not record it)
    available: dict[int, int]  # model style index → its images in the split (dataset.json; else the sample's)


def real_images(info: DatasetInfo, split: str, style_map: dict[int, int], resolution: int, channels: int = 3,
                per_style: int | None = None, limit: int | None = None) -> RealImages:
    """Images of ``split`` whose style the model knows (``style_map``: dataset → model
    style index): at most ``per_style`` of each style and at most ``limit`` in all (both
    evenly spaced), decoded and in model space."""
    sample = read_split(info, split, per_style=per_style, limit=limit, style_map=style_map)
    if len(sample.styles) == 0:
        raise ValueError(f"dataset {info.uri}: no {split!r} images in the model's styles")
    split_counts = info.counts.get(split, {}).get("per_style", {})
    available: dict[int, int] = {}
    for d, m in sorted(style_map.items(), key=lambda dm: dm[1]):
        n = int(split_counts.get(info.styles[d], (sample.styles == m).sum()))
        if n:
            available[m] = n
    return RealImages(to_model_space(sample.images, resolution, channels), sample.styles, sample.keys, available)
