"""Line protocol between bench/train_throughput.py and one measured training setup.

Every row of the benchmark (a ray_gan candidate or a reference) lives in its own
worker process, started once and kept warm, so the driver can interleave rows
(A B A B …) and background load on the shared cores falls on all of them alike.
A worker builds its models, prints one JSON line ``{"ready": ..., "setup_s": ...}``,
then answers commands on stdin, one JSON line each:

* ``run N``  → run N training steps, ``{"seconds": wall, "images": N × batch}``
* ``profile N PATH`` → run N steps under torch.profiler, write the op table to PATH
* ``quit``

Standard library and torch only: this file is imported by workers in the project's
venv and in the reference venv (which has no ray_gan).
"""

from __future__ import annotations

import json
import sys
import time
from typing import Callable


def _emit(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def serve(step: Callable[[int], None], batch: int, setup_s: float, info: dict | None = None) -> None:
    """Answer the driver's commands; ``step(i)`` runs training step ``i`` (a global counter)."""
    import torch

    counter = 0
    _emit({"ready": True, "setup_s": setup_s, "threads": torch.get_num_threads(), **(info or {})})
    for line in sys.stdin:
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "quit":
            break
        if parts[0] == "run":
            n = int(parts[1])
            t0 = time.perf_counter()
            for _ in range(n):
                step(counter)
                counter += 1
            _emit({"seconds": time.perf_counter() - t0, "images": n * batch})
        elif parts[0] == "profile":
            n, path = int(parts[1]), parts[2]
            from torch.profiler import ProfilerActivity, profile

            with profile(activities=[ProfilerActivity.CPU]) as prof:
                t0 = time.perf_counter()
                for _ in range(n):
                    step(counter)
                    counter += 1
                seconds = time.perf_counter() - t0
            table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=40, max_name_column_width=60)
            with open(path, "w") as f:
                f.write(f"{n} steps, {seconds:.3f} s wall under the profiler\n{table}\n")
            _emit({"seconds": seconds, "images": n * batch, "profile": path})
        else:
            _emit({"error": f"unknown command {line.strip()!r}"})


def set_threads(n: int | None) -> None:
    import torch

    if n:
        torch.set_num_threads(n)
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:
            pass
