"""ray_gan.console: the progress bar's output on a pipe and on a terminal, and where a
quiet setup sends logs (in a subprocess: it redirects file descriptor 2)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

from ray_gan.console import Progress, fmt_duration

REPO = Path(__file__).resolve().parents[2]


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_non_tty_prints_a_few_plain_lines_not_one_per_update():
    out, clock = io.StringIO(), Clock()
    bar = Progress("prepare", 1000, "files", stream=out, tty=False, clock=clock, min_gap_s=20)
    for done in range(0, 1001, 5):  # 201 updates, one every 0.5 s: 100 s in all
        clock.t += 0.5
        bar.update(done)
    clock.t += 1
    bar.close()
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue() and "\x1b" not in out.getvalue()
    # a line at 25 %, 50 %, 75 % (each at least 20 s after the last), then the closing line
    assert len(lines) == 4, lines
    assert lines[0].startswith("prepare: 250/1000 files (25%), 10 img/s, ETA 1m15s")
    assert lines[1].startswith("prepare: 500/1000 files (50%)")
    assert lines[2].startswith("prepare: 750/1000 files (75%)")
    assert lines[3] == "prepare: 1000/1000 files in 1m42s, 9.9 img/s"  # the whole stage: 1000 in 101.5 s


def test_non_tty_lines_keep_their_distance():
    out, clock = io.StringIO(), Clock()
    bar = Progress("prepare", 100, "files", stream=out, tty=False, clock=clock, min_gap_s=30)
    for done in range(1, 101):  # 25 % after 25 s, 50 % after 50 s: the first line waits for 30 s
        clock.t += 1
        bar.update(done)
    bar.close()
    assert [line.split(" (")[0] for line in out.getvalue().splitlines()] == [
        "prepare: 30/100 files", "prepare: 60/100 files", "prepare: 90/100 files", "prepare: 100/100 files in 1m40s, 1.0 img/s"]


def test_non_tty_short_stage_prints_only_its_closing_line():
    out, clock = io.StringIO(), Clock()
    bar = Progress("batch", 128, "images", stream=out, tty=False, clock=clock, min_gap_s=30)
    for done in range(16, 129, 16):
        clock.t += 2
        bar.update(done)
    bar.close()
    assert out.getvalue() == "batch: 128/128 images in 16s, 8.0 img/s\n"


def test_summary_can_leave_the_start_up_apart():
    out, clock = io.StringIO(), Clock()
    bar = Progress("train", 100, "steps", images_per_unit=64, stream=out, tty=False, clock=clock, startup_apart=True)
    clock.t += 39.5  # workers start (the first step ends at 40 s)
    for step in range(1, 101):
        clock.t += 0.5
        bar.update(step)
    bar.close()
    assert out.getvalue().splitlines()[-1] == "train: 100/100 steps in 1m30s, 128 img/s after 40s of start-up"


def test_tty_redraws_one_line_in_place():
    out, clock = io.StringIO(), Clock()
    bar = Progress("train", 100, "steps", images_per_unit=64, stream=out, tty=True, clock=clock, redraw_s=0.2)
    for step in range(1, 51):
        clock.t += 0.5
        bar.update(step, time_left=10)
    bar.close("train: done")
    text = out.getvalue()
    assert text.count("\n") == 1 and text.endswith("\rtrain: done\x1b[K\n")
    frames = [f for f in text.split("\r") if f]
    assert len(frames) == 51  # 50 redraws (0.5 s apart > redraw_s) and the closing line
    assert "train ▕" in frames[-2] and "50/100 steps" in frames[-2]
    assert "128 img/s" in frames[-2]  # 2 steps/s × 64 images per step
    assert "budget left 10s" in frames[-2]  # the budget ends first (the other 50 steps would take 25 s)


def test_time_budget_bounds_eta_and_fraction():
    clock = Clock()
    bar = Progress("train", 1500, "steps", stream=io.StringIO(), tty=False, clock=clock)
    bar.update(0)
    clock.t += 60
    bar.update(200, time_left=120)  # by steps: 1300 / (200/60) = 390 s; the budget ends in 120 s
    assert bar.eta() == (120, True)
    assert abs(bar.fraction() - 60 / 180) < 1e-9
    assert "budget left 2m00s" in bar.text()


def test_without_a_total_the_time_budget_drives_the_bar():
    clock = Clock()
    bar = Progress("train", None, "steps", stream=io.StringIO(), tty=False, clock=clock)
    bar.update(0)
    clock.t += 60
    bar.update(4000, time_left=540)
    assert bar.eta() == (540, True)
    assert abs(bar.fraction() - 0.1) < 1e-9
    assert bar.text().startswith("train: 4000 steps (10%)") and "budget left 9m00s" in bar.text()
    assert "/" not in bar.summary().split(" in ")[0]


def test_fmt_duration():
    assert [fmt_duration(s) for s in (0, 44.6, 65, 3599, 7500)] == ["0s", "45s", "1m05s", "59m59s", "2h05m"]


def test_quiet_setup_sends_native_stderr_and_logging_to_the_file(tmp_path):
    """fd 2 (what Ray's C++ code writes to) and Python logging go to the log file;
    sys.stderr and stdout stay on the terminal; finish() names the file."""
    code = (
        "import logging, os, sys, warnings\n"
        "from ray_gan import console\n"
        f"s = console.configure(verbose=False, log_dir={str(tmp_path)!r})\n"
        "os.write(2, b'E core_worker.cc: native noise\\n')\n"
        "logging.getLogger('ray').warning('a ray warning')\n"
        "warnings.warn('a python warning')\n"
        "print('result line')\n"
        "print('an error for the user', file=sys.stderr)\n"
        "s.finish()\n"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "result line\n"
    logs = list(tmp_path.glob("ray-gan-*.log"))
    assert len(logs) == 1
    assert proc.stderr == f"an error for the user\nlogs: {logs[0]}\n"
    text = logs[0].read_text()
    for expected in ("native noise", "a ray warning", "a python warning"):
        assert expected in text


def test_quiet_setup_that_logged_nothing_leaves_no_file(tmp_path):
    code = (f"from ray_gan import console\ns = console.configure(False, log_dir={str(tmp_path)!r})\n"
            "print('hello')\ns.finish()\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=60)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "hello\n", "")
    assert list(tmp_path.iterdir()) == []


def test_tty_status_shows_until_the_first_update():
    out, clock = io.StringIO(), Clock()
    bar = Progress("train", 10, "steps", stream=out, tty=True, clock=clock, status="starting workers")
    assert out.getvalue().startswith("\rtrain ▕") and "0/10 steps  starting workers" in out.getvalue()
    clock.t += 1
    bar.update(1)
    assert "starting" not in out.getvalue().split("\r")[-1]
    bar.update(10, status="saving")  # a new status shows at once, however soon after the last redraw
    assert out.getvalue().split("\r")[-1].startswith("train ▕") and "10/10 steps" in out.getvalue().split("\r")[-1]
    assert "saving" in out.getvalue().split("\r")[-1]
    bar.close()


def test_terminal_stderr_write_blanks_the_drawn_bar():
    import ray_gan.console as console

    out, clock = io.StringIO(), Clock()
    bar = Progress("batch", 10, "images", stream=out, tty=True, clock=clock)
    bar.update(3)
    err = console._Terminal(io.BytesIO(), encoding="utf-8", line_buffering=True)
    err.write("ray-gan batch: error: boom\n")
    assert out.getvalue().endswith("\r\x1b[K")  # the bar's line is blank for the message
    clock.t += 1
    bar.update(4)
    assert out.getvalue().split("\r")[-1].startswith("batch ▕")  # and comes back below it
    bar.close()
