"""What the benchmarks share, each written once:

* paths: the repository root and the shared datasets (``SOURCES``);
* the worker protocol between bench/train_throughput.py and its workers (``serve``,
  ``set_threads``, ``param_counts``);
* the machine and the code measured (``cpu_model``, ``cpu_flags``, ``loadavg``,
  ``code_state``) and a wall-clock timer (``timed``);
* datasets and trained models (``prepared``, ``trained_row``, ``evaluate``);
* results: a JSON file of rows kept across runs (``load_rows``, ``add_row``) and
  Markdown tables (``markdown_table``, ``metric_cells``).

Standard library only at import time; torch and ray_gan are imported inside the
functions that use them. The stylegan2_pytorch reference worker imports this module in
the reference venv, which has no ray_gan.

Worker protocol. Every row of the throughput benchmark (a ray_gan candidate or a
reference) lives in its own worker process, started once and kept warm, so the driver
can interleave rows (A B A B …) and background load on the shared cores falls on all of
them alike. A worker builds its models, prints one JSON line ``{"ready": ...,
"setup_s": ...}``, then answers commands on stdin, one JSON line each:

* ``run N``  → run N training steps, ``{"seconds": wall, "images": N × batch}``
* ``profile N PATH`` → run N steps under torch.profiler, write the op table to PATH
* ``quit``
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Iterable

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "datasets"
SOURCES = {"emoji": SHARED / "emoji-styles-64.zip", "hanzi": SHARED / "hanzi-styles-64.zip"}


# --- worker protocol -------------------------------------------------------------------


def _emit(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def serve(step: Callable[[int], None], batch: int, setup_s: float, info: dict | None = None) -> None:
    """Answer the driver's commands; ``step(i)`` runs training step ``i`` (a global counter)."""
    import torch

    counter = 0

    def run(n: int) -> float:
        """Wall-clock seconds of the next ``n`` steps."""
        nonlocal counter
        t0 = time.perf_counter()
        for _ in range(n):
            step(counter)
            counter += 1
        return time.perf_counter() - t0

    _emit({"ready": True, "setup_s": setup_s, "threads": torch.get_num_threads(), **(info or {})})
    for line in sys.stdin:
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "quit":
            break
        if parts[0] == "run":
            n = int(parts[1])
            _emit({"seconds": run(n), "images": n * batch})
        elif parts[0] == "profile":
            n, path = int(parts[1]), parts[2]
            from torch.profiler import ProfilerActivity, profile

            with profile(activities=[ProfilerActivity.CPU]) as prof:
                seconds = run(n)
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


def param_counts(**modules) -> dict[str, int]:
    """Parameters per named module, e.g. ``param_counts(G=G, D=D)``."""
    return {name: sum(p.numel() for p in m.parameters()) for name, m in modules.items()}


# --- the machine and the code measured ---------------------------------------------------


def cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return platform.processor() or platform.machine() or "unknown"


def cpu_flags() -> str:
    try:
        flags = next(l for l in open("/proc/cpuinfo") if l.startswith("flags")).split()
    except (OSError, StopIteration):
        return "?"
    have = [f for f in ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16") if f in flags]
    return ", ".join(have) or "none of avx2/avx512"


def machine() -> str:
    """One line for the machine that gave a number: model, the SIMD that decides CPU speed,
    CPU count (the same two cores with AVX-512 BF16 gave about twice the training steps of
    an AVX2 machine's: docs/benchmarks.md)."""
    return f"{cpu_model()} [{cpu_flags()}], {os.cpu_count()} CPUs"


def loadavg() -> str:
    try:
        return " ".join(open("/proc/loadavg").read().split()[:3])
    except OSError:
        return "?"


def code_state() -> str:
    """The measured ray_gan code: commit, and whether ray_gan/ had uncommitted changes."""
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                             timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "ray_gan"], cwd=ROOT, capture_output=True,
                               text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{sha or 'unknown'}{' + uncommitted changes in ray_gan/' if dirty else ''}"


def timed(fn: Callable, *args, **kwargs) -> tuple[object, float]:
    """``fn(*args, **kwargs)`` and the wall-clock seconds it took."""
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0


# --- datasets and trained models -----------------------------------------------------------


def prepared(name: str, work: Path) -> str:
    """A dataset prepared at 32 px under WORK/data/NAME (once): ``demo`` (the built-in
    procedural set) or a name of ``SOURCES``."""
    from ray_gan import storage
    from ray_gan.config import PrepareConfig
    from ray_gan.data.prepare import prepare

    dst = work / "data" / name
    if (dst / "dataset.json").exists():
        return str(dst)
    if name == "demo":
        from ray_gan.data.demo import write_demo_data

        raw = work / "data" / "demo-raw"
        write_demo_data(lambda key, data: storage.write_bytes(storage.join(str(raw), key), data))
        src = str(raw)
    else:
        src = str(SOURCES[name])
    prepare(PrepareConfig(src=src, dst=str(dst), resolution=32))
    return str(dst)


def trained_row(out: Path) -> dict:
    """A trained model's steps, its last logged images/s and its URI (a row's first columns)."""
    from ray_gan import checkpoint as ckpt

    info = ckpt.read_model_info(str(out))
    return {"steps": info.step, "images_per_s": info.raw["history"][-1]["images_per_s"], "uri": str(out)}


def evaluate(entry: dict, data: str, n_per_style: int) -> dict:
    """``ray-gan evaluate`` of ``entry["uri"]`` (or of ``entry["renderer"]`` where it is
    not None) on ``data``'s validation split: the report's key numbers."""
    from ray_gan.evaluate.evaluate import EvalConfig, run_evaluation

    cfg = EvalConfig(model=entry["uri"], data=data, n_per_style=n_per_style)
    r = run_evaluation(cfg, log=lambda m: None, renderer=entry["renderer"])
    return {"fid": r.fid, "kid": r.kid.mean, "precision": r.precision, "recall": r.recall, "density": r.density,
            "coverage": r.coverage, "intra_fid": r.intra_fid_mean, "diversity_ratio": r.diversity_ratio_mean,
            "style_accuracy": r.style_accuracy, "classifier_val_accuracy": r.classifier.val_accuracy,
            "detectability": r.detectability.accuracy if r.detectability else None,
            "near_copy_share": r.memorisation.near_copy_share, "memorisation_flagged": r.memorisation.flagged,
            "extractor": r.extractor.name, "report": r.files["report_html"]}


# --- results ---------------------------------------------------------------------------------


def load_rows(path: Path) -> list[dict]:
    """The rows of a results file (none before the first run)."""
    return json.loads(path.read_text()) if path.exists() else []


def save_rows(path: Path, rows: list[dict]) -> None:
    path.write_text(json.dumps(rows, indent=1))


def add_row(path: Path, rows: list[dict], row: dict) -> None:
    """Append ``row``, rewrite the results file (so a run stopped later keeps it) and print it."""
    rows.append(row)
    save_rows(path, rows)
    print(json.dumps(row), flush=True)


# How each metric of a row is written in a table.
FORMATS = {"steps": "{:d}", "images_per_s": "{:.0f}", "fid": "{:.2f}", "kid": "{:.4f}", "precision": "{:.3f}",
           "recall": "{:.3f}", "density": "{:.3f}", "coverage": "{:.3f}", "intra_fid": "{:.2f}",
           "diversity_ratio": "{:.2f}", "style_accuracy": "{:.3f}", "detectability": "{:.3f}",
           "near_copy_share": "{:.3f}"}


def metric_cells(row: dict, columns: Iterable[str]) -> list[str]:
    """``row``'s metrics as table cells, "–" where a row has none."""
    return ["–" if row.get(c) is None else FORMATS[c].format(row[c]) for c in columns]


def markdown_table(head: list[str], rows: Iterable[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    return "\n".join(lines)
