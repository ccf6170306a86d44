"""Rendering images from a trained generator: latents from seeds, the style controls and
their validation (:mod:`ray_gan.generate.controls`). Shared by ``ray-gan generate``, the
batch job and the Serve deployment. Encoding and grids: :mod:`ray_gan.images`."""

__all__ = ["Renderer", "latents_from_seeds"]


def __getattr__(name: str):
    # Lazy, so that importing ray_gan.generate.controls (the Serve ingress does) does not load torch.
    if name in __all__:
        from ray_gan.generate import render

        return getattr(render, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
