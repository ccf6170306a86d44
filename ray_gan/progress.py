"""Progress of work that runs in Ray workers, drawn on the driver's terminal.

Workers do not write to the user's terminal (a quiet run starts Ray with
``log_to_driver=False``: their output stays in Ray's session log folder), so they
report to one small actor per driver, the *board* (no CPU). While a stage runs, a
:class:`Track` thread on the driver polls the board twice a second and updates the
stage's :class:`ray_gan.console.Progress` bar:

* a Ray Data UDF counts what it finished: ``reporter.add(n)`` (prepare);
* the training loop's rank 0 reports its step (``reporter.update(step=…, elapsed=…)``,
  at most every ``every_s`` seconds) and forwards its log lines
  (``reporter.forwarding(log)``), which the driver writes to its log file.

A :class:`Reporter` is a small picklable object: pass it to the workers in a task's
arguments or in ``train_loop_config``. Reports are fire-and-forget: a lost report
only makes the bar lag.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from typing import Any, Callable

import ray


@ray.remote(num_cpus=0, max_restarts=0)
class ProgressBoard:
    """Latest state, a running count and forwarded log lines, per bar key."""

    def __init__(self) -> None:
        self._state: dict[str, Any] = {}
        self._count: dict[str, int] = {}
        self._lines: dict[str, list[str]] = {}

    def put(self, key: str, state: Any) -> None:
        self._state[key] = state

    def add(self, key: str, n: int) -> None:
        self._count[key] = self._count.get(key, 0) + n

    def say(self, key: str, line: str) -> None:
        self._lines.setdefault(key, []).append(line)

    def take(self, key: str) -> tuple[Any, int, list[str]]:
        """(latest state, count, lines since the last take)."""
        return self._state.get(key), self._count.get(key, 0), self._lines.pop(key, [])

    def forget(self, key: str) -> None:
        for d in (self._state, self._count, self._lines):
            d.pop(key, None)


_board: tuple[str, Any] | None = None  # (Ray job id, handle): one board per driver and Ray session


def board():
    """This driver's board (started on first use; Ray must be initialised)."""
    global _board
    job = ray.get_runtime_context().get_job_id()
    if _board is None or _board[0] != job:
        _board = (job, ProgressBoard.remote())
    return _board[1]


class Reporter:
    """Where workers report one bar's progress (picklable; used on the workers)."""

    def __init__(self, board_handle, key: str, every_s: float = 0.5) -> None:
        self.board, self.key, self.every_s = board_handle, key, every_s
        self._last = -float("inf")

    def __getstate__(self) -> dict:
        return {"board": self.board, "key": self.key, "every_s": self.every_s}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["board"], state["key"], state["every_s"])

    def add(self, n: int) -> None:
        """Count ``n`` more units done."""
        self.board.add.remote(self.key, int(n))

    def update(self, **state: Any) -> None:
        """The latest state (e.g. ``step``), sent at most every ``every_s`` seconds."""
        now = time.monotonic()
        if now - self._last >= self.every_s:
            self._last = now
            self.board.put.remote(self.key, state)

    def say(self, line: str) -> None:
        """Forward a log line to the driver (its log file)."""
        self.board.say.remote(self.key, str(line))

    def forwarding(self, log: Callable[[str], None]) -> Callable[[str], None]:
        """``log`` that also forwards each line to the driver."""

        def both(line: str) -> None:
            log(line)
            self.say(line)

        return both


class Track:
    """Driver side of one bar: ``with Track(on_update) as reporter: ...`` polls the
    board in a thread while the block runs, calling ``on_update(state, count)`` with the
    latest state and count (once more at the end), and writes forwarded lines to the
    ``lines_to`` logger (the log file when quiet; dropped otherwise: verbose runs show
    the workers' own lines)."""

    def __init__(self, on_update: Callable[[Any, int], None], lines_to: str = "ray_gan.workers",
                 interval_s: float = 0.5) -> None:
        self.on_update, self.interval_s = on_update, interval_s
        self.lines = logging.getLogger(lines_to)
        self.reporter = Reporter(board(), f"bar-{uuid.uuid4().hex[:12]}")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _poll(self, timeout: float) -> None:
        state, count, lines = ray.get(self.reporter.board.take.remote(self.reporter.key), timeout=timeout)
        for line in lines:
            self.lines.info(line)
        if state is not None or count:
            self.on_update(state, count)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self._poll(timeout=10)
            except Exception:  # noqa: BLE001 - the bar must never fail the stage
                logging.getLogger("ray_gan").debug("progress poll failed", exc_info=True)

    def __enter__(self) -> Reporter:
        self._thread = threading.Thread(target=self._run, name="ray_gan-progress", daemon=True)
        self._thread.start()
        return self.reporter

    def __exit__(self, exc_type, exc, tb) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        try:
            self._poll(timeout=10)  # the last lines and count
            self.reporter.board.forget.remote(self.reporter.key)
        except Exception:  # noqa: BLE001
            logging.getLogger("ray_gan").debug("final progress poll failed", exc_info=True)
