"""Reference worker: lucidrains' ``stylegan2_pytorch`` (PyPI 1.9.0) training on CPU.

Runs in the reference venv (``bash bench/references/setup_reference_venv.sh``), never in
the project's. Started by bench/train_throughput.py (``REF_PYTHON -m
bench.references.ref_stylegan2_worker`` in the repository root); speaks the protocol in
bench/common.py (which imports no ray_gan: this venv has none).

What one timed step is: exactly the package's own ``Trainer.train()`` — one D step
(hinge loss, gradient penalty on reals and fakes every 4th step), one G step
(path-length regulariser every 32nd step once past step 5000), the EMA update every
10th step once past step 20000, the NaN checks and ``.item()`` syncs — unmodified.
What is not in it:

* data loading: ``trainer.loader`` is an endless iterator over a pool of synthetic
  images in [0, 1] (what its folder Dataset's ``ToTensor`` yields), a fresh tensor per
  batch, instead of its DataLoader over JPEG/PNG files;
* sample grids and checkpoints: ``save_every``/``evaluate_every`` are set past the end
  of the run (they write files every 1000 steps and, below step 2500, every 100);
* the first steps of a run: the step counter starts at ``--start-step`` (default
  40000) so the measured steps have the schedule of the long middle of a default run
  (150,000 steps): GP every 4, PL every 32, EMA every 10 steps, amortised as they fall.

The package is written for CUDA only: it asserts ``torch.cuda.is_available()`` at
import and moves every module and tensor with ``.cuda(rank)``. On this machine, with
no GPU, the worker reports CUDA as available while importing it and makes
``Module.cuda``/``Tensor.cuda`` return the object itself, so everything stays on the
CPU. Nothing else of the package is replaced.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings

from bench.common import param_counts, serve, set_threads


def _import_on_cpu():
    import torch
    from torch import nn

    real = torch.cuda.is_available
    torch.cuda.is_available = lambda: True
    try:
        import stylegan2_pytorch.stylegan2_pytorch as sg
    finally:
        torch.cuda.is_available = real
    torch.Tensor.cuda = lambda self, *a, **k: self
    nn.Module.cuda = lambda self, *a, **k: self
    return sg


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--image-size", type=int, default=32)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--start-step", type=int, default=40000)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    warnings.filterwarnings("ignore")
    t0 = time.perf_counter()
    set_threads(a.threads)
    sg = _import_on_cpu()
    import torch

    torch.manual_seed(a.seed)
    work = tempfile.mkdtemp(prefix="sg2ref-")
    # Trainer defaults (its CLI's too) except image size and batch; no gradient accumulation.
    trainer = sg.Trainer(name="bench", base_dir=work, image_size=a.image_size, batch_size=a.batch,
                         gradient_accumulate_every=1, save_every=10**9, evaluate_every=10**9)
    trainer.init_GAN()
    pool = torch.rand(256, 3, a.image_size, a.image_size)

    def loader():
        i = 0
        while True:
            idx = torch.arange(i, i + a.batch) % len(pool)
            i += a.batch
            yield pool[idx].clone()

    trainer.loader = loader()
    trainer.steps = a.start_step

    def step(_: int) -> None:
        trainer.train()

    g = trainer.GAN
    n_params = param_counts(G=g.G, S=g.S, D=g.D)
    serve(step, a.batch, time.perf_counter() - t0,
          {"torch": torch.__version__, "params": n_params, "start_step": a.start_step})


if __name__ == "__main__":
    main()
