"""What a ``ray-gan`` command shows on the terminal: one voice.

* :class:`Progress`: one bar per long stage (prepare, train, batch) with images/s and
  the time left. On a terminal it is one line, redrawn in place; on a pipe or in CI it
  is a plain line now and then (at a quarter, half and three quarters of the work, no
  closer than ``min_gap_s`` apart) and a closing line.
* :func:`configure`, called once by the CLI before it runs a command: unless
  ``verbose``, everything Ray says goes to a log file instead of the terminal: Python
  logging (Ray's loggers, Ray Data's, ours) and warnings, the driver's native stderr
  (Ray's C++ core worker, gRPC), and the raylet's messages to the driver; workers'
  output stays in Ray's session log folder (``ray.init(log_to_driver=False)``, see
  :mod:`ray_gan.runtime`). Python's ``sys.stderr`` stays on the terminal, so errors
  and tracebacks still show. :meth:`LogSetup.finish` names the log file at the end.

This module imports neither Ray nor torch (the CLI imports it for every command); the
Ray side of progress reporting is :mod:`ray_gan.progress`.
"""

from __future__ import annotations

import atexit
import io
import logging
import math
import os
import shutil
import sys
import tempfile
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, TextIO

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
log = logging.getLogger("ray_gan")


# ---- where logs go ---------------------------------------------------------------------


@dataclass
class LogSetup:
    """Where this process's logs go: ``path`` (a file) unless ``verbose`` (the terminal)."""

    verbose: bool
    path: str | None = None
    ray_logs: str | None = None  # the Ray session's log folder (workers' output), once Ray is up
    _handler: logging.Handler | None = field(default=None, repr=False)
    _saved: tuple | None = field(default=None, repr=False)  # (fd 2 before, sys.stderr before)
    _fd: int | None = field(default=None, repr=False)  # the log file's descriptor

    @property
    def quiet(self) -> bool:
        return not self.verbose

    def relocate(self, folder: str) -> None:
        """Move the log file into ``folder`` (e.g. a run's working folder), keeping what
        it holds so far. Call it before Ray starts; it does nothing when verbose."""
        if self.verbose or self.path is None or self._handler is None:
            return
        os.makedirs(folder, exist_ok=True)
        new = os.path.join(folder, os.path.basename(self.path))
        if os.path.abspath(new) == os.path.abspath(self.path):
            return
        old, fd = self.path, _open_append(new)
        self._handler.flush()
        with open(old, "rb") as f:
            os.write(fd, f.read())
        if self._saved is not None:
            os.dup2(fd, 2)
        previous = self._handler.setStream(_text(fd))  # type: ignore[attr-defined]
        if previous is not None:
            previous.close()
        if self._fd is not None:
            os.close(self._fd)
        self.path, self._fd = new, fd
        os.unlink(old)

    def finish(self, stream: TextIO | None = None) -> None:
        """Name the log file on the terminal (stderr), if anything was logged to it (an
        empty one, e.g. of a command that never started Ray, is removed at exit)."""
        if self.verbose or self.path is None:
            return
        if self._handler is not None:
            self._handler.flush()
        try:
            if os.path.getsize(self.path) == 0:
                return
        except OSError:
            return
        where = f" (Ray's worker logs: {self.ray_logs})" if self.ray_logs else ""
        print(f"logs: {self.path}{where}", file=stream or sys.stderr, flush=True)


_SETUP: LogSetup | None = None


def current() -> LogSetup | None:
    """The setup :func:`configure` made, or None (library use: nothing is redirected)."""
    return _SETUP


def quiet() -> bool:
    """True when Ray's output goes to a log file rather than the terminal."""
    return _SETUP is not None and _SETUP.quiet


def configure(verbose: bool = False, log_dir: str | None = None) -> LogSetup:
    """Decide once, for this process, where logs go; a second call returns the first setup.

    ``verbose``: everything on the terminal, as Ray prints it. Otherwise a log file in
    ``log_dir`` (default ``$TMPDIR/ray_gan/logs``) gets Python logging at INFO and up,
    Python warnings and the native stderr (file descriptor 2) of this process.
    """
    global _SETUP
    if _SETUP is not None:
        return _SETUP
    if verbose:
        _SETUP = LogSetup(verbose=True)
        return _SETUP
    folder = log_dir or os.path.join(tempfile.gettempdir(), "ray_gan", "logs")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"ray-gan-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log")
    fd = _open_append(path)
    handler = logging.StreamHandler(_text(fd))
    handler.setLevel(logging.INFO)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    logging.captureWarnings(True)
    # Native code (Ray's C++ core worker, gRPC) writes to file descriptor 2: point it at
    # the log file, and give Python a stderr on a copy of the terminal's descriptor.
    saved = None
    try:
        sys.stderr.flush()
        saved_fd, terminal = os.dup(2), os.dup(2)
    except (OSError, AttributeError, ValueError):  # no usable stderr: leave it as it is
        pass
    else:
        os.dup2(fd, 2)
        saved = (saved_fd, sys.stderr)
        sys.stderr = _Terminal(io.FileIO(terminal, "w"), encoding=getattr(sys.stderr, "encoding", None) or "utf-8",
                               errors="backslashreplace", line_buffering=True)
    _SETUP = LogSetup(verbose=False, path=path, _handler=handler, _saved=saved, _fd=fd)
    atexit.register(_remove_if_empty, _SETUP)
    if "ray" in sys.modules:
        route_ray_logs()
    return _SETUP


def _remove_if_empty(setup: LogSetup) -> None:
    try:
        if setup.path and os.path.getsize(setup.path) == 0:
            os.unlink(setup.path)
    except OSError:
        pass


def reset() -> None:
    """Undo :func:`configure` (tests): fd 2, ``sys.stderr`` and the root handler."""
    global _SETUP
    setup, _SETUP = _SETUP, None
    if setup is None or setup.verbose:
        return
    if setup._handler is not None:
        logging.getLogger().removeHandler(setup._handler)
        setup._handler.close()
    logging.captureWarnings(False)
    if setup._saved is not None:
        saved_fd, saved_stderr = setup._saved
        ours, sys.stderr = sys.stderr, saved_stderr
        ours.flush()
        os.dup2(saved_fd, 2)
        os.close(saved_fd)
        ours.close()
    if setup._fd is not None:
        os.close(setup._fd)


def route_ray_logs() -> None:
    """When quiet, send Ray's Python loggers and the raylet's messages to the log file.

    Ray gives its ``ray`` logger (and Ray Data its ``ray.data`` logger, when imported) a
    handler that writes to ``sys.stderr``, the terminal; here they lose it and pass their
    records on to the root logger (the log file). The raylet's messages to the driver
    (e.g. "N PYTHON worker processes have been started…") are printed to ``sys.stdout``
    by Ray's error-listener thread whatever ``log_to_driver`` says; they go to the log
    file too. Called by :func:`ray_gan.runtime.init_ray` before ``ray.init``; does
    nothing unless :func:`configure` made a quiet setup.
    """
    if not quiet():
        return
    import ray
    import ray.data  # noqa: F401 - importing it configures the "ray.data" logger; route it after

    manager = logging.Logger.manager
    for name in [n for n in list(manager.loggerDict) if n == "ray" or n.startswith("ray.")]:
        logger = manager.loggerDict[name]
        if not isinstance(logger, logging.Logger):
            continue
        for h in list(logger.handlers):
            if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler):
                logger.removeHandler(h)
        logger.propagate = True
    worker = getattr(ray, "_private", None) and getattr(ray._private, "worker", None)
    if worker is not None and hasattr(worker, "print_to_stdstream"):
        worker.print_to_stdstream = _ray_message_to_log


def _ray_message_to_log(data: dict, ignore_prefix: bool = False) -> None:
    source = logging.getLogger("ray.driver_messages")
    who = data.get("pid", "?")
    for line in data.get("lines", []):
        source.warning("(%s) %s", who, line)


def note_ray_session(session_dir: str | None) -> None:
    """Record the Ray session's log folder (named next to the log file at the end)."""
    if _SETUP is not None and session_dir:
        _SETUP.ray_logs = os.path.join(session_dir, "logs")
        log.info("Ray session logs (workers' stdout/stderr): %s", _SETUP.ray_logs)


class _Terminal(io.TextIOWrapper):
    """The terminal's stderr: a message written while a progress bar is drawn takes the
    bar's line (the bar redraws below it on its next update)."""

    def write(self, s: str) -> int:
        if _ACTIVE is not None and s:
            _ACTIVE.clear_line()
        return super().write(s)


def _open_append(path: str) -> int:
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)


def _text(fd: int) -> TextIO:
    return io.TextIOWrapper(io.FileIO(fd, "w", closefd=False), encoding="utf-8", errors="backslashreplace",
                            line_buffering=True)


# ---- progress --------------------------------------------------------------------------


_ACTIVE: "Progress | None" = None  # the bar drawn on the terminal now, if any


def fmt_duration(seconds: float) -> str:
    """``45s``, ``3m05s``, ``2h07m``."""
    s = int(max(seconds, 0) + 0.5)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def _is_tty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


class Progress:
    """A progress bar for one stage: ``done`` of ``total`` units (files, steps, images),
    images/s (``images_per_unit`` images per unit) and the time left.

    On a terminal (``tty``), one line redrawn with ``\\r`` at most every ``redraw_s``;
    verbose runs and other streams get plain lines, at most one per quarter of the work
    and ``min_gap_s`` apart, then one closing line (:meth:`close`, :meth:`summary`).
    ``status``: what the stage does until its first update (e.g. "starting workers").
    ``clock`` is injectable for tests.
    """

    WIDTH = 24  # bar cells

    def __init__(self, label: str, total: int | None, unit: str = "images", *, images_per_unit: float = 1.0,
                 initial: int = 0, stream: TextIO | None = None, tty: bool | None = None,
                 clock: Callable[[], float] = time.monotonic, min_gap_s: float = 30.0, redraw_s: float = 0.2,
                 window_s: float = 20.0, status: str = "", startup_apart: bool = False) -> None:
        # total None: no count ends the stage (a time budget does); the bar follows the time left.
        self.label, self.total, self.unit = label, (max(int(total), 1) if total is not None else None), unit
        self.images_per_unit = images_per_unit
        self.stream = stream if stream is not None else sys.stdout
        self.tty = (_is_tty(self.stream) and not (_SETUP is not None and _SETUP.verbose)) if tty is None else tty
        self.clock, self.min_gap_s, self.redraw_s, self.window_s = clock, min_gap_s, redraw_s, window_s
        self.startup_apart = startup_apart
        self.t0 = clock()
        self.done = self.initial = int(initial)
        self.status = status  # until the first update, e.g. "starting workers"
        self._first_status = bool(status)
        self.time_left: float | None = None  # an outside bound on the time left (a time budget)
        self._samples: deque[tuple[float, int]] = deque()  # (time, done) of the last window_s seconds
        self._first: tuple[float, int] | None = None  # the first update (rates leave out the start-up before it)
        self._last_draw = -math.inf
        self._last_line = self.t0
        self._next_quarter = 1
        self._drawn = False
        self.closed = False
        if status:
            self._show(force=True)

    # -- state
    def update(self, done: int, *, time_left: float | None = None, status: str | None = None) -> None:
        """Set the count of done units; ``time_left``: a bound on the time still to run
        (e.g. what is left of a time budget)."""
        if self.closed:
            return
        t = self.clock()
        if self._first is None:
            self._first = (t, int(done))
        self._samples.append((t, int(done)))
        while len(self._samples) > 2 and self._samples[0][0] < t - self.window_s:
            self._samples.popleft()
        self.done = int(done)
        if time_left is not None:
            self.time_left = max(time_left, 0.0)
        before = self.status
        if status is not None:
            self.status = status
        elif self._first_status:
            self.status = ""
        self._first_status = False
        self._show(force=self.status != before)

    @staticmethod
    def _between(a: tuple[float, int] | None, b: tuple[float, int] | None) -> float | None:
        if a is None or b is None or b[0] - a[0] <= 0 or b[1] <= a[1]:
            return None
        return (b[1] - a[1]) / (b[0] - a[0])

    def rate(self) -> float | None:
        """Units per second over the last ``window_s`` seconds of updates."""
        return self._between(self._samples[0], self._samples[-1]) if self._samples else None

    def mean_rate(self) -> float | None:
        """Units per second from the first update to the last (the whole stage, start-up aside)."""
        return self._between(self._first, self._samples[-1] if self._samples else None)

    def eta(self) -> tuple[float | None, bool]:
        """(seconds left, whether ``time_left`` bounds it)."""
        r = self.rate()
        by_rate = (self.total - self.done) / r if r and self.total is not None else None
        if self.time_left is not None and (by_rate is None or self.time_left < by_rate):
            return self.time_left, True
        return by_rate, False

    def fraction(self) -> float:
        f = self.done / self.total if self.total is not None else 0.0
        left, bounded = self.eta()
        if bounded and left is not None and self._first is not None:  # a time budget ends the stage first
            ran = self._samples[-1][0] - self._first[0]
            if ran > 0:
                f = max(f, ran / (ran + left))
        return min(max(f, 0.0), 1.0)

    # -- text
    def _rate_text(self, r: float | None) -> str:
        if r is None:
            return ""
        ips = r * self.images_per_unit
        return f"{ips:.0f} img/s" if ips >= 10 else f"{ips:.1f} img/s"

    def _eta_text(self) -> str:
        left, bounded = self.eta()
        if left is None:
            return ""
        return f"{'budget left' if bounded else 'ETA'} {fmt_duration(left)}"

    def _count(self) -> str:
        return f"{self.done}/{self.total}" if self.total is not None else str(self.done)

    def text(self) -> str:
        """The plain progress line (no bar), e.g. ``train: 275/1500 steps (25%), 180 img/s, ETA 1m30s``."""
        parts = [f"{self._count()} {self.unit} ({self.fraction():.0%})", self._rate_text(self.rate()),
                 self._eta_text(), self.status]
        return f"{self.label}: " + ", ".join(p for p in parts if p)

    def bar(self) -> str:
        """The terminal line, e.g. ``train ▕██████░░░░▏ 275/1500 steps  180 img/s  ETA 1m30s``."""
        f = self.fraction()
        full = int(f * self.WIDTH)
        cells = "█" * full + ("▌" if f * self.WIDTH - full >= 0.5 else "")
        cells = cells.ljust(self.WIDTH, "░")
        parts = [f"{self.label} ▕{cells}▏ {self._count()} {self.unit}", self._rate_text(self.rate()),
                 self._eta_text(), self.status]
        line = "  ".join(p for p in parts if p)
        cols = shutil.get_terminal_size((100, 24)).columns
        return line[: max(cols - 1, 20)]

    def summary(self) -> str:
        """The closing line. Its rate covers the whole stage (``prepare: 1200/1200 files
        in 23s, 52 img/s``) or, with ``startup_apart``, the time after the first update
        (``train: 591/1500 steps in 3m43s, 227 img/s after 41s of start-up``)."""
        elapsed = self.clock() - self.t0
        head = f"{self.label}: {self._count()} {self.unit} in {fmt_duration(elapsed)}"
        if not self.startup_apart:
            r = self._rate_text((self.done - self.initial) / elapsed if elapsed > 0 and self.done > self.initial else None)
            return head + (f", {r}" if r else "")
        r = self._rate_text(self.mean_rate())
        startup = self._first[0] - self.t0 if self._first is not None else 0.0
        return head + (f", {r}" if r else "") + (f" after {fmt_duration(startup)} of start-up" if r and startup >= 1 else "")

    # -- output
    def _write(self, s: str) -> None:
        try:
            self.stream.write(s)
            self.stream.flush()
        except (OSError, ValueError):  # a closed pipe must not fail the stage
            pass

    def clear_line(self) -> None:
        """Blank the drawn bar (something else is about to be written to the terminal)."""
        global _ACTIVE
        if self.tty and self._drawn and not self.closed:
            self._write("\r\x1b[K")
            self._drawn, self._last_draw = False, -math.inf
        if _ACTIVE is self:
            _ACTIVE = None

    def _show(self, force: bool = False) -> None:
        global _ACTIVE
        now = self.clock()
        if self.tty:
            if force or now - self._last_draw >= self.redraw_s:
                self._write("\r" + self.bar() + "\x1b[K")
                self._last_draw, self._drawn, _ACTIVE = now, True, self
            return
        quarter = int(self.fraction() * 4)
        if quarter >= self._next_quarter and quarter < 4 and now - self._last_line >= self.min_gap_s:
            self._write(self.text() + "\n")
            self._last_line, self._next_quarter = now, quarter + 1

    def close(self, final: str | None = None) -> None:
        """End the bar with one line: ``final`` or :meth:`summary`. Idempotent."""
        global _ACTIVE
        if self.closed:
            return
        self.closed = True
        if _ACTIVE is self:
            _ACTIVE = None
        line = final if final is not None else self.summary()
        if self.tty and self._drawn:
            self._write("\r" + line + "\x1b[K\n")
        else:
            self._write(line + "\n")

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:  # failed: blank the bar, leave the error to the caller
            self.clear_line()
            self.closed = True
