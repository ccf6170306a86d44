"""CPU threading policy of the evaluation.

Work made of many small torch operations — LAPACK's symmetric eigen-decompositions, the
style classifier's small batches, the generator's 16-row micro-batches — runs on one
intra-op thread. Each such operation is too small for threads to pay for their
synchronisation, and when the cores are shared with other work, threads that spin-wait
for each other make it far slower (docs/benchmarks.md has the measurement). Large
batched work (feature extraction, distance matrices)
keeps torch's and BLAS's own thread settings.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch


@contextmanager
def one_torch_thread() -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(1)``; restore the previous setting after."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
