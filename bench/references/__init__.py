"""The reference implementations the benchmarks measure ray_gan against, written from
their published descriptions or run as published:

* ``reference_cdcgan``: the quality benchmark's plain conditional DCGAN (in-process,
  bench/quality.py);
* ``ref_dcgan``: the PyTorch examples' DCGAN as a bench/train_throughput.py worker;
* ``ref_stylegan2_worker``: lucidrains' ``stylegan2_pytorch`` as a bench/train_throughput.py
  worker, run by the reference venv's python (``setup_reference_venv.sh``), which has
  no ray_gan: nothing it imports on its way (``bench``, ``bench.references``,
  ``bench.common``) may import ray_gan at import time.
"""
