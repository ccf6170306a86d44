"""ray_gan: style-diverse GAN image generation on Ray."""

import os as _os

__version__ = "0.1.0"

if not _os.environ.get("RAY_ADDRESS"):
    # A local Ray cluster stays on loopback. Ray reads this when it is imported, so it
    # is set here, before any ray_gan module imports ray.
    _os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
