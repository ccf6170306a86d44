"""Rendering images from a trained generator: latents from seeds, truncation, encoding,
grids. Shared by ``ray-gan generate``, the batch job and the Serve deployment."""

from ray_gan.generate.render import Renderer, encode_image, latents_from_seeds, make_grid

__all__ = ["Renderer", "encode_image", "latents_from_seeds", "make_grid"]
