"""Without --verbose, Ray says nothing on the terminal: a CLI run of demo-data, prepare
and a short train through a local Ray (started by the run itself, as `ray-gan demo`
does) shows our lines and bars only; Ray's logs land in the log file it names."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]

# What Ray prints when it reaches the terminal: its log format, worker prefixes, C++ log
# lines, the raylet's messages, Ray Train's and Ray Data's chatter.
RAY_NOISE = re.compile(
    r"WARNING|INFO |\bE \d+ \d+\]|core_worker\.cc|\(raylet\)|\(\w+ pid=\d+\)|pid=\d+|TrainController|"
    r"RayTrainWorker|Reporting training result|TrainingReport|deprecated|Deprecation|Token authentication|"
    r"streaming_executor|Execution plan|Progress bars disabled|\x1b\[3\dm"
)

# The CLI's main, three commands in one process (one Ray), behind a quiet console
# (configure() is idempotent: a CLI that calls it itself gets this same setup).
DRIVER = """
import sys
from ray_gan import console
console.configure(verbose=False, log_dir=sys.argv[1])
from ray_gan.cli import main
for argv in (["demo-data", "raw", "--per-style", "24", "--size", "32"],
             ["prepare", "raw", "ds", "--resolution", "16", "--val-fraction", "0.25"],
             ["train", "ds", "--out", "model", "--arch", "dcgan", "--workers", "2", "--steps", "3",
              "--batch-size", "8", "--checkpoint-every", "3", "--g-channels", "8", "--d-channels", "8"]):
    rc = main(argv)
    if rc:
        sys.exit(rc)
console.current().finish(sys.stdout)
"""


def test_quiet_run_shows_no_ray_output_and_names_its_log_file(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # its own local Ray, as `ray-gan demo`
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    logs = tmp_path / "logs"
    proc = subprocess.run([sys.executable, "-c", DRIVER, str(logs)], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=900)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    noise = [line for line in out.splitlines() if RAY_NOISE.search(line)]
    assert not noise, "Ray output reached the terminal:\n" + "\n".join(noise)
    assert "prepare: 96/96 files in" in proc.stdout
    assert "train: 3/3 steps in" in proc.stdout  # the driver's bar, from rank 0's reports
    assert "train: done at step 3" in proc.stdout
    assert len(out.splitlines()) <= 14, out  # (a CLI that names the log file itself does so after each command)
    named = re.search(r"^logs: (\S+)", proc.stdout, re.M)
    assert named, out
    log_file = Path(named.group(1))
    assert log_file.parent == logs and log_file.exists()
    text = log_file.read_text()
    assert "Starting execution of Dataset" in text  # Ray Data's INFO lines went here instead
