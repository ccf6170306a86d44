"""Training throughput on this machine: ray_gan's own training step beside a well-known
reference implementation, measured in the same run, interleaved.

    python -m bench.train_throughput [--rounds 5] [--steps N] [--warmup 2]
                                     [--only dcgan|stylegan] [--threads 2]
                                     [--variants memory-format,threads|all|none]

Comparisons (the ratio is candidate images/s over its reference's, > 1 = faster):

* ``dcgan`` 64 px, batch 64 — reference: a plain reimplementation of the PyTorch
  examples' DCGAN (bench/references/ref_dcgan.py: ngf = ndf = 64, BCE, Adam 2e-4 (0.5,
  0.999)). Candidate: ``ray_gan.train.step.GANStep`` on the ``dcgan`` arch with the same
  widths (g_channels = d_channels = 64) and z_dim 100.
* ``stylegan`` 32 px, batch 16 — reference: lucidrains' ``stylegan2_pytorch`` 1.9.0 from
  PyPI, its own ``Trainer.train()`` step, in a separate venv with the CPU-only torch
  (``bash bench/references/setup_reference_venv.sh``; see
  bench/references/ref_stylegan2_worker.py for what one timed step contains). Candidate:
  ``GANStep`` on the ``stylegan`` arch with the model config ``ray-gan train --arch
  stylegan`` builds.

Every row is a worker process (protocol in bench/common.py; started as ``python -m
bench.<worker>`` in the repository root, the reference venv's too) that is started and
warmed up once, then the driver runs the rows round-robin, ``--rounds`` times, reversing
the order every other round (A B C … C B A …), so load from other processes on the
shared cores falls on every row alike. A round of a row is a whole number of its regularisation periods
(lazy R1 every 16 steps for stylegan; the reference's gradient penalty every 4 steps)
and lasts about ``--target-s`` seconds unless ``--steps`` fixes it.

Other load: during every row's turn the driver reads how much CPU the rest of the
machine used (/proc/stat minus the worker's own time). A round is *quiet* when that
stayed under ``--quiet-cores`` for every row. Before each round (and each worker start)
the driver probes for a second and waits while other processes are busy, within a
run-wide ``--wait-budget``; while fewer than ``--rounds`` rounds were quiet, up to
``--extra-rounds`` more are run; the medians use the quiet rounds (all rounds if fewer
than 3 were quiet; the table says how many were used). Two torch threads on two cores
collapse, not just slow down, when a third busy process shares them (OpenMP threads
wait for each other at every op), so a noisy round can be 10× off.

Reported: the median over rounds of images/s, and the median over rounds of the
per-round ratio to the reference row measured in the same round. "setup + first steps"
is the time from starting the worker to the end of the warm-up minus what the warm-up
steps cost at the measured steady rate: import and model build, plus a cold
torch.compile (fresh TorchInductor cache unless ``--compile-cache``) where it is on; for
those rows it says after how many steps the compiled step has paid that back.

Variants (``--variants``): ``memory-format`` (the candidate with the other memory format
than the train config's default, channels-last vs NCHW) and ``threads`` (1-thread rows,
ray_gan and the DCGAN reference) are in the default run, which takes about 7 minutes on
the quiet 2-core machine (plus any waiting for quiet). ``bf16`` (the step's own autocast,
on for the CPU), ``compile`` and ``mode-seeking`` (the step with the MSGAN term off where
the arch has it on, else on: what the term costs) are opt-in (``--variants all``, about
25 minutes): bf16 runs at 1/10 to 1/20 of fp32 on a CPU without AVX-512 BF16, and a cold
compile of the stylegan step takes minutes.

Prints a Markdown table for docs/benchmarks.md (and ``--json PATH`` writes the raw
numbers). ``--profile DIR`` also runs each row under torch.profiler after the rounds.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

from bench.common import ROOT, code_state, loadavg, machine, markdown_table

DEFAULT_REF_PYTHON = "/work/venv-sg2ref/bin/python"
CLI_DEFAULT_STEPS = 2000  # `ray-gan train --steps` default: a realistic run for compile pay-back


@dataclass
class Row:
    key: str
    group: str
    label: str
    cmd: list[str]
    batch: int
    options: str
    ref: str | None = None  # key of the reference row this one is compared with
    period: int = 1  # steps per regularisation period (a round is a multiple of it)
    is_ref: bool = False
    proc: subprocess.Popen | None = None
    info: dict = field(default_factory=dict)
    warm_s: float = 0.0
    warm_steps: int = 0
    steps: int = 0
    pre_steps: int = 0  # untimed steps before the rounds (warm-up, calibration)
    rates: list[float] = field(default_factory=list)
    foreign: list[float] = field(default_factory=list)  # other processes' CPU use during each round, in cores
    error: str | None = None
    tmp: str | None = None
    cleanup: str | None = None
    stderr: object = None

    def start(self, warmup: int, compile_cache: str | None = None) -> None:
        env = {**os.environ, "PYTHONWARNINGS": "ignore"}
        if "--compile" in self.cmd:
            # A cold compile (what a first training run pays) unless a cache is given.
            self.tmp = compile_cache or tempfile.mkdtemp(prefix="ray-gan-bench-inductor-")
            env["TORCHINDUCTOR_CACHE_DIR"] = self.tmp
            if not compile_cache:
                self.cleanup = self.tmp
        t0 = time.perf_counter()
        # stderr to a file: a pipe nobody reads would block a chatty worker (compile logs).
        self.stderr = tempfile.TemporaryFile(mode="w+")
        # cwd: the repository root, where `-m bench.…` finds the workers (the reference venv's python too).
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr,
                                     text=True, cwd=ROOT, env=env)
        self.info = self._read()
        self.options = self.info.get("options", self.options)
        self.period = int(self.info.get("period", self.period))
        self.warm_steps = math.ceil(max(warmup, 1) / self.period) * self.period
        if "--compile" in self.cmd:  # one more period: every graph (R1 / plain D step, G step) gets compiled
            self.warm_steps += self.period * max(1, math.ceil(2 / self.period))
        self._cmd(f"run {self.warm_steps}")
        self.pre_steps = self.warm_steps
        self.warm_s = time.perf_counter() - t0

    def calibrate(self, target_s: float, fixed_steps: int | None) -> None:
        if fixed_steps:
            self.steps = math.ceil(fixed_steps / self.period) * self.period
            return
        r = self._cmd(f"run {self.period}")
        self.pre_steps += self.period
        per_period = r["seconds"]
        self.steps = self.period * max(1, round(target_s / max(per_period, 1e-6)))

    def run_round(self) -> float:
        busy0, own0, t0 = _busy_jiffies(), _proc_jiffies(self.proc.pid), time.perf_counter()
        r = self._cmd(f"run {self.steps}")
        busy1, own1, t1 = _busy_jiffies(), _proc_jiffies(self.proc.pid), time.perf_counter()
        rate = r["images"] / r["seconds"]
        self.rates.append(rate)
        self.foreign.append(max(0.0, (busy1 - busy0) - (own1 - own0)) / _HZ / (t1 - t0))
        return rate

    def profile(self, path: str, steps: int) -> None:
        self._cmd(f"profile {steps} {path}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            try:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.flush()
                self.proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        if self.cleanup:
            shutil.rmtree(self.cleanup, ignore_errors=True)
            self.cleanup = None
        if self.stderr is not None:
            self.stderr.close()
            self.stderr = None

    def _cmd(self, line: str) -> dict:
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return self._read()

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait()
            self.stderr.seek(0)
            err = self.stderr.read()[-3000:]
            raise RuntimeError(f"worker {self.key} exited:\n{err}")
        msg = json.loads(line)
        if "error" in msg:
            raise RuntimeError(f"worker {self.key}: {msg['error']}")
        return msg


_HZ = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _busy_jiffies() -> int:
    """CPU time used by everything on the machine (all but idle and iowait), /proc/stat."""
    try:
        v = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    except OSError:
        return 0
    return sum(v[:8]) - v[3] - v[4]


def _proc_jiffies(pid: int) -> int:
    try:
        f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(f[11]) + int(f[12])  # utime + stime, all threads


VARIANTS = {  # name → (candidate worker flags, label)
    "memory-format": (["--memory-format", "other"], "the other memory format"),
    "bf16": (["--bf16"], "bf16 autocast"),
    "compile": (["--compile"], "torch.compile"),
    "threads": ([], "1 thread"),
    "mode-seeking": (["--mode-seeking", "other"], "the other mode-seeking setting"),
}
DEFAULT_VARIANTS = "memory-format,threads"


def _variants(spec: str) -> set[str]:
    if spec == "all":
        return set(VARIANTS)
    if spec == "none":
        return set()
    chosen = {v.strip() for v in spec.split(",") if v.strip()}
    unknown = chosen - set(VARIANTS)
    if unknown:
        raise SystemExit(f"unknown --variants {sorted(unknown)}; known: {', '.join(VARIANTS)}, all, none")
    return chosen


def build_rows(a: argparse.Namespace) -> list[Row]:
    py = sys.executable
    T = a.threads
    rows: list[Row] = []

    def cand(group: str, key: str, label: str, extra: list[str], opts: str, ref: str, threads: int) -> Row:
        if group == "dcgan":
            base = ["--arch", "dcgan", "--resolution", "64", "--batch", "64", "--g-channels", "64",
                    "--d-channels", "64", "--z-dim", "100"]
            batch = 64
        else:
            base = ["--arch", "stylegan", "--resolution", "32", "--batch", "16"]
            batch = 16
        return Row(key, group, label, [py, "-m", "bench.cand_worker", *base, "--threads", str(threads),
                                       *extra], batch, f"{opts}, {threads} thread{'s' if threads > 1 else ''}",
                   ref=ref)

    chosen = _variants(a.variants)
    variants = [([], "base")] + [(VARIANTS[v][0], v) for v in ("memory-format", "bf16", "compile", "mode-seeking")
                                       if v in chosen]
    if a.only in (None, "dcgan"):
        rows.append(Row("ref-dcgan", "dcgan", "pytorch/examples DCGAN (reference)",
                        [py, "-m", "bench.references.ref_dcgan", "--threads", str(T)], 64,
                        f"fp32, NCHW, eager, {T} threads", is_ref=True))
        for extra, name in variants:
            rows.append(cand("dcgan", f"dcgan-{name}", "ray_gan dcgan (GANStep)", extra, name, "ref-dcgan", T))
        if T > 1 and "threads" in chosen:
            rows.append(Row("ref-dcgan-1t", "dcgan", "pytorch/examples DCGAN (reference)",
                            [py, "-m", "bench.references.ref_dcgan", "--threads", "1"], 64,
                            "fp32, NCHW, eager, 1 thread", is_ref=True))
            rows.append(cand("dcgan", "dcgan-1t", "ray_gan dcgan (GANStep)", [], "base", "ref-dcgan-1t", 1))
    if a.only in (None, "stylegan"):
        ref_ok = os.path.exists(a.ref_python)
        if ref_ok:
            rows.append(Row("ref-stylegan", "stylegan", "stylegan2_pytorch 1.9.0 Trainer (reference)",
                            [a.ref_python, "-m", "bench.references.ref_stylegan2_worker", "--threads", str(T),
                             "--image-size", "32", "--batch", "16"], 16, f"fp32, NCHW, eager, {T} threads",
                            period=4, is_ref=True))
        else:
            print(f"note: {a.ref_python} not found; run `bash bench/references/setup_reference_venv.sh` for the "
                  "stylegan reference row", file=sys.stderr)
        ref = "ref-stylegan" if ref_ok else None
        for extra, name in variants:
            rows.append(cand("stylegan", f"stylegan-{name}", "ray_gan stylegan (GANStep)", extra, name, ref, T))
        if T > 1 and "threads" in chosen:
            rows.append(cand("stylegan", "stylegan-1t", "ray_gan stylegan (GANStep)", [], "base", ref, 1))
    return rows


def _foreign_now(rows: list[Row], seconds: float = 1.0) -> float:
    """Cores used by processes other than the (idle) workers over ``seconds``."""
    pids = [r.proc.pid for r in rows if r.proc and r.proc.poll() is None]
    b0, o0 = _busy_jiffies(), sum(_proc_jiffies(p) for p in pids)
    time.sleep(seconds)
    b1, o1 = _busy_jiffies(), sum(_proc_jiffies(p) for p in pids)
    return max(0.0, (b1 - b0) - (o1 - o0)) / _HZ / seconds


def _wait_quiet(a: argparse.Namespace, rows: list[Row]) -> float:
    """Before a round: probe other processes' CPU use for a second, and keep waiting
    while it is above ``--quiet-cores``, within a run-wide ``--wait-budget`` of seconds.
    Returns the seconds waited beyond the probe."""
    t0 = time.perf_counter()
    while _foreign_now(rows) > a.quiet_cores and a.waited_s + (time.perf_counter() - t0) < a.wait_budget:
        pass
    waited = max(0.0, time.perf_counter() - t0 - 1.0)
    a.waited_s += waited
    return waited


def run_group(rows: list[Row], a: argparse.Namespace, log) -> None:
    for r in rows:
        waited = _wait_quiet(a, rows)
        log(f"  start {r.key} …" + (f" (after waiting {waited:.0f} s for quiet)" if waited >= 1 else ""))
        try:
            r.start(a.warmup, a.compile_cache)
            r.calibrate(a.target_s, a.steps)
            log(f"    ready in {r.warm_s:.1f} s; {r.steps} steps per round")
        except Exception as exc:  # noqa: BLE001 - a broken row must not sink the others
            r.error = str(exc).strip().splitlines()[-1][:300]
            log(f"    FAILED: {r.error}")
            r.stop()
    live = [r for r in rows if r.error is None]
    k = 0
    while live:
        waited = _wait_quiet(a, rows)
        if waited >= 1:
            log(f"  waited {waited:.0f} s for other processes to go under {a.quiet_cores} cores "
                f"({max(0.0, a.wait_budget - a.waited_s):.0f} s of waiting left)")
        order = live if k % 2 == 0 else list(reversed(live))
        for r in order:
            try:
                r.run_round()
            except Exception as exc:  # noqa: BLE001
                r.error = str(exc).strip().splitlines()[-1][:300]
                log(f"    {r.key} FAILED in round {k + 1}: {r.error}")
        live = [r for r in live if r.error is None]
        k += 1
        log(f"  round {k}: " + ", ".join(f"{r.key} {r.rates[-1]:.1f}" for r in live) + " img/s; other processes "
            f"used {max((r.foreign[-1] for r in live), default=0):.2f} cores at most (load {loadavg()})")
        if k >= a.rounds:
            n_clean = sum(all(r.foreign[i] <= a.quiet_cores for r in live) for i in range(k))
            if n_clean >= a.rounds or k >= a.rounds + a.extra_rounds:
                break
            log(f"  {k - n_clean} of {k} rounds had other load above {a.quiet_cores} cores: one more round")
    if a.profile:
        os.makedirs(a.profile, exist_ok=True)
        for r in live:
            path = os.path.join(os.path.abspath(a.profile), f"{r.key.replace(' ', '_')}.txt")
            r.profile(path, r.steps)
            log(f"  profile → {path}")
    for r in rows:
        r.stop()


def _quiet_rounds(rows: list[Row], limit: float) -> list[int]:
    """Rounds in which no row of the group saw other processes use more than ``limit``
    cores; all rounds when fewer than 3 were that quiet."""
    live = [r for r in rows if r.rates and not r.error]
    if not live:
        return []
    n = min(len(r.rates) for r in live)
    quiet = [i for i in range(n) if all(r.foreign[i] <= limit for r in live)]
    return quiet if len(quiet) >= 3 else list(range(n))


def summarise(rows: list[Row], limit: float) -> list[dict]:
    by_key = {r.key: r for r in rows}
    use = {g: _quiet_rounds([r for r in rows if r.group == g], limit) for g in {r.group for r in rows}}
    out = []
    eager_rate = {}
    for r in rows:
        if r.error or not r.rates:
            out.append({"row": r, "rate": None})
            continue
        idx = use[r.group]
        rates = [r.rates[i] for i in idx]
        med = statistics.median(rates)
        step_s = r.batch / med
        first = max(0.0, r.warm_s - r.warm_steps * step_s)
        d = {"row": r, "rate": med, "min": min(rates), "max": max(rates), "first_s": first, "step_s": step_s,
             "rounds_used": idx, "rounds": len(r.rates)}
        ref = by_key.get(r.ref) if r.ref else None
        if ref is not None and ref.rates and not ref.error:
            d["ratio"] = statistics.median(r.rates[i] / ref.rates[i] for i in idx)
            d["ratio_of_medians"] = med / statistics.median(ref.rates[i] for i in idx)
        if r.key.endswith("-base") and not r.is_ref:
            eager_rate[r.group] = d
        out.append(d)
    for d in out:  # compile pay-back against the same group's eager row
        r = d["row"]
        if d.get("rate") and r.key.endswith("-compile") and r.group in eager_rate:
            e = eager_rate[r.group]
            saved = e["step_s"] - d["step_s"]
            extra = d["first_s"] - e["first_s"]
            if saved > 0:
                n = math.ceil(max(extra, 0.0) / saved)
                d["payback"] = (f"pays back after {n} steps, {'within' if n <= CLI_DEFAULT_STEPS else 'beyond'} "
                                f"a default {CLI_DEFAULT_STEPS}-step run")
            else:
                d["payback"] = "never: not faster"
    return out


def table(summary: list[dict]) -> str:
    lines = []
    for d in summary:
        r = d["row"]
        name = f"{r.group}: {r.label}"
        if d.get("rate") is None:
            lines.append([name, f"failed: {r.error}", "–", r.options, "–", "–"])
            continue
        rate = f"{d['rate']:.1f} [{d['min']:.1f}–{d['max']:.1f}]"
        ratio = "reference" if r.is_ref else (f"**{d['ratio']:.2f}×** vs {r.ref}" if "ratio" in d else "n/a")
        first = f"{d['first_s']:.0f} s"
        if "payback" in d:
            first += f" ({d['payback']})"
        lines.append([name, rate, ratio, r.options, first, f"{len(d['rounds_used'])}/{d['rounds']}"])
    return markdown_table(["row", "images/s (median [min–max])", "ratio to reference", "options",
                           "setup + first steps", "rounds used"], lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=None,
                    help="steps per round for every row (rounded up to its regularisation period); "
                    "default: about --target-s seconds per round")
    ap.add_argument("--target-s", type=float, default=4.0, help="seconds per round per row when --steps is unset")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps per row before the rounds")
    ap.add_argument("--quiet-cores", type=float, default=0.3,
                    help="a round is quiet when other processes used at most this many cores during every row's "
                    "turn; medians use the quiet rounds when there are at least 3")
    ap.add_argument("--wait-budget", type=float, default=180.0,
                    help="seconds the whole run may spend waiting, before rounds, for other processes to go quiet")
    ap.add_argument("--extra-rounds", type=int, default=3,
                    help="rounds added (at most) while fewer than --rounds rounds were quiet")
    ap.add_argument("--only", choices=["dcgan", "stylegan"])
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads for the main rows")
    ap.add_argument("--variants", default=DEFAULT_VARIANTS,
                    help=f"candidate variants besides the train-config defaults at --threads: comma list of {', '.join(VARIANTS)} "
                    f"('threads' adds 1-thread rows), or all / none (default {DEFAULT_VARIANTS}; bf16 and compile "
                    "take minutes each on 2 cores, see the docstring)")
    ap.add_argument("--ref-python", default=os.environ.get("SG2REF_PYTHON", DEFAULT_REF_PYTHON),
                    help="python of the stylegan2_pytorch venv (bench/references/setup_reference_venv.sh)")
    ap.add_argument("--compile-cache", metavar="DIR",
                    help="TorchInductor cache for the torch.compile rows (default: a fresh one, i.e. a cold compile)")
    ap.add_argument("--profile", metavar="DIR", help="also write a torch.profiler op table per row")
    ap.add_argument("--json", metavar="PATH", help="write the raw per-round numbers")
    a = ap.parse_args()
    a.waited_s = 0.0
    t_start = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - t_start:6.0f} s] {msg}", file=sys.stderr, flush=True)

    load0 = loadavg()
    code = code_state()
    rows = build_rows(a)
    for group in ("dcgan", "stylegan"):
        g = [r for r in rows if r.group == group]
        if g:
            log(f"{group}: {len(g)} rows")
            run_group(g, a, log)
    wall = time.perf_counter() - t_start
    summary = summarise(rows, a.quiet_cores)

    import torch

    ref_torch = next((r.info.get("torch") for r in rows if r.key == "ref-stylegan" and r.info), None)
    cmd = "python -m bench.train_throughput " + " ".join(shlex.quote(x) for x in sys.argv[1:])
    print(f"\nCommand: `{cmd.strip()}`  ")
    print(f"Machine: {machine()}; torch {torch.__version__} "
          f"(project venv){f', torch {ref_torch} (stylegan2_pytorch venv)' if ref_torch else ''}; "
          f"Python {sys.version.split()[0]}; main rows at {a.threads} threads; ray_gan at {code}.  ")
    n_run = max((len(r.rates) for r in rows), default=0)
    print(f"Run: {n_run} interleaved rounds ({a.rounds} asked; quiet = other processes under {a.quiet_cores} cores; "
          f"{a.waited_s:.0f} s spent waiting for quiet), "
          f"{a.warmup} warm-up steps per row, wall {wall / 60:.1f} min; "
          f"load average {load0} at start, {loadavg()} at end.  ")
    for group in ("dcgan", "stylegan"):
        cands = [d for d in summary if d["row"].group == group and not d["row"].is_ref and d.get("rate")]
        if cands:
            r = cands[0]["row"]
            print(f"Measured ray_gan steps ({group}): {r.info['regularisation']}; "
                  f"{', '.join(sorted({str(d['row'].steps) for d in cands}))} steps per round.  ")
    for d in summary:
        r = d["row"]
        if r.key == "ref-stylegan" and d.get("rate"):
            first = r.info.get("start_step", 0) + r.pre_steps
            timed = range(first, first + r.steps * len(r.rates))
            n_gp, n_pl = sum(i % 4 == 0 for i in timed), sum(i % 32 == 0 for i in timed)
            n_ema = sum(i % 10 == 0 for i in timed)
            print(f"Measured reference steps (stylegan2_pytorch): Trainer.train(), steps {timed.start}–{timed.stop - 1}: "
                  f"hinge loss; of {len(timed)} timed steps {n_gp} with GP (every 4), {n_pl} with PL (every 32), "
                  f"{n_ema} with EMA (every 10); {r.steps} steps per round.  ")
    params = {r.key: r.info.get("params") for r in rows if r.info}
    print("Parameters: " + "; ".join(f"{k} {v}" for k, v in params.items() if k.endswith("-base") or
                                     k.startswith("ref-") and not k.endswith("-1t")) + "\n")
    print(table(summary))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"command": cmd, "wall_s": wall, "load_start": load0, "load_end": loadavg(),
                       "rows": [{"key": d["row"].key, "group": d["row"].group, "options": d["row"].options,
                                 "rates": d["row"].rates, "foreign_cores": d["row"].foreign, "steps_per_round": d["row"].steps,
                                 "warm_s": d["row"].warm_s, "info": d["row"].info, "error": d["row"].error,
                                 **{k: v for k, v in d.items() if k != "row"}} for d in summary]}, f, indent=1)


if __name__ == "__main__":
    main()
