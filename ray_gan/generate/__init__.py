"""Rendering images from a trained generator: latents from seeds, the style controls and
their validation. Shared by ``ray-gan generate``, the batch job and the Serve deployment.
Encoding and grids are :mod:`ray_gan.images`'."""

from ray_gan.generate.render import Renderer, latents_from_seeds

__all__ = ["Renderer", "latents_from_seeds"]
