"""The generator's inference passes, optionally traced so that they run without the GIL.

A rendering replica is never alone in its process: Ray's event loop and router threads,
Serve's request handling and the encoder threads all want Python's GIL. An eager
forward pass is hundreds of small torch calls, and each one gives the GIL up and must
win it back; with one busy Python thread beside it, a 32-row forward of the 32 px
stylegan took 2.3 s instead of 0.09 s on the 2-core CPU machine (a GIL convoy). A traced
forward (``torch.jit.trace``) runs the whole graph in C++ and holds the GIL only to
enter and leave: the same pass took 0.10 s beside the busy thread.

Traced passes run with the graph executor's optimisations off (thread-local), so no
fuser rewrites arithmetic: they call the same kernels in the same order as the eager
module and give the same bytes (tests/unit/test_generate_forward.py checks that for
every architecture, with mixing and edits). ``torch.jit.trace`` is deprecated from
torch 2.x in favour of ``torch.export``; it still works with the torch ray_gan pins,
and any failure to trace falls back to the eager passes with a warning.
"""

from __future__ import annotations

import logging
import warnings

import torch
from torch import nn

log = logging.getLogger(__name__)

TRACE_ROWS = 16  # rows of the example inputs; the traced graphs take any batch size


class _Styles(nn.Module):
    """(z, style, psi) → truncated w: the mapping network and the truncation trick."""

    def __init__(self, G: nn.Module) -> None:
        super().__init__()
        self.G = G

    def forward(self, z: torch.Tensor, style: torch.Tensor, psi: torch.Tensor) -> torch.Tensor:
        return self.G.truncate(self.G.mapping(z, style), style, psi[:, None])


class _Synthesis(nn.Module):
    """ws (N, num_ws, w_dim) → image, with each layer's fixed noise (rendering)."""

    def __init__(self, G: nn.Module) -> None:
        super().__init__()
        self.G = G

    def forward(self, ws: torch.Tensor) -> torch.Tensor:
        return self.G.synthesis(ws, noise="const")


class _Direct(nn.Module):
    """(z, style) → image, for generators without a mapping network."""

    def __init__(self, G: nn.Module) -> None:
        super().__init__()
        self.G = G

    def forward(self, z: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        return self.G(z, style)


class Forward:
    """The passes rendering needs from an eval-mode generator ``G`` on ``device``:
    :meth:`styles` and :meth:`synthesis` (generators with a mapping network) or
    :meth:`direct` (the others). ``traced``: trace them once, here; ``self.traced``
    says whether that worked."""

    def __init__(self, G: nn.Module, device: torch.device, traced: bool = True) -> None:
        self.styled = hasattr(G, "mapping")
        if self.styled:
            self._styles: nn.Module = _Styles(G).eval()
            self._synthesis: nn.Module = _Synthesis(G).eval()
        else:
            self._direct: nn.Module = _Direct(G).eval()
        self.traced = False
        if traced:
            try:
                self._trace(G, device)
                self.traced = True
            except Exception as e:  # noqa: BLE001 - an untraceable model still renders, eagerly
                log.warning("tracing the generator failed (%s: %s); rendering eagerly, which is slower "
                            "beside other Python threads", type(e).__name__, e)

    @torch.no_grad()
    def _trace(self, G: nn.Module, device: torch.device) -> None:
        cfg = G.cfg
        z = torch.randn(TRACE_ROWS, cfg.z_dim, device=device, generator=torch.Generator(device).manual_seed(0))
        s = torch.arange(TRACE_ROWS, device=device) % cfg.num_styles
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.jit.trace's deprecation notice; see the module docstring
            if self.styled:
                psi = torch.ones(TRACE_ROWS, device=device)
                styles = torch.jit.trace(self._styles, (z, s, psi), check_trace=False)
                ws = self._styles(z, s, psi)[:, None].repeat(1, G.num_ws, 1)
                synthesis = torch.jit.trace(self._synthesis, (ws,), check_trace=False)
                self._styles, self._synthesis = styles, synthesis
            else:
                self._direct = torch.jit.trace(self._direct, (z, s), check_trace=False)

    def _run(self, module: nn.Module, *args: torch.Tensor) -> torch.Tensor:
        if not self.traced:
            return module(*args)
        with torch.jit.optimized_execution(False):  # thread-local: no fusers, the eager kernels
            return module(*args)

    def styles(self, z: torch.Tensor, style: torch.Tensor, psi: torch.Tensor) -> torch.Tensor:
        """Truncated w (N, w_dim): ``w_avg[s] + psi·(mapping(z, s) − w_avg[s])``."""
        return self._run(self._styles, z, style, psi)

    def synthesis(self, ws: torch.Tensor) -> torch.Tensor:
        """ws (N, num_ws, w_dim) → images in [-1, 1], with fixed noise."""
        return self._run(self._synthesis, ws)

    def direct(self, z: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        """(z, style) → images in [-1, 1] (generators without a mapping network)."""
        return self._run(self._direct, z, style)
