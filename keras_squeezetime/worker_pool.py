"""The worker pool of long, resumable jobs: decode, render or encode many videos in parallel.

`run_tasks` runs a function over tasks in spawned worker processes (spawn, not fork: the
caller may already run TensorFlow threads, which fork can deadlock) that skip the Keras
import (`worker_imports`), keeps a bounded number of tasks in flight (bounded memory),
gives each result a deadline, and yields results in task order. A task that raises, or
whose worker hangs or dies, yields a `TaskFailure` instead of stopping the job.

Jobs resume by giving the pool only the tasks still to do and writing each result
atomically as it arrives (a file renamed into place, a shard and its status): a killed
run leaves only finished outputs and temporaries a rerun removes. `Progress` logs
done/total, rate and ETA.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import logging
import math
import multiprocessing
import signal
import time
from typing import Any, Callable, Iterable, Iterator

from keras_squeezetime.worker_imports import light_worker_imports

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class TaskFailure:
    """What a task yields instead of its result when it raised or never returned."""

    reason: str


def run_tasks(
    function: Callable[[Any], Any],
    tasks: Iterable[Any],
    workers: int = 1,
    window: int | None = None,
    timeout: float | None = None,
) -> Iterator[Any]:
    """Yields `function(task)` for each task, in task order, or a `TaskFailure`.

    Args:
      function: a module-level function (workers import it by name); it must not need
        Keras (workers skip importing it).
      tasks: the tasks, consumed lazily (at most `window` are taken ahead).
      workers: processes; 1 runs every task in this process.
      window: tasks in flight at most (default `4 * workers`).
      timeout: seconds to wait for a task's result (with `workers > 1`) before reporting
        it failed: a hung or crashed worker (the pool replaces dead ones) does not block
        the job. None waits forever.

    Raises:
      ValueError: workers < 1 or window < 1.
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1; got {workers}.")
    if window is not None and window < 1:
        raise ValueError(f"window must be >= 1; got {window}.")
    if workers == 1:
        for task in tasks:
            yield _call(function, task)
        return
    window = window or 4 * workers
    upcoming = iter(tasks)
    with light_worker_imports():  # the environment the spawned workers start with
        pool = multiprocessing.get_context("spawn").Pool(workers, initializer=_leave_ctrl_c)
    try:
        in_flight: collections.deque = collections.deque(
            pool.apply_async(_call, (function, task))
            for task in itertools.islice(upcoming, window))
        while in_flight:
            pending = in_flight.popleft()
            try:
                yield pending.get(timeout)
            except multiprocessing.TimeoutError:
                yield TaskFailure(f"no result after {timeout:.0f} s (worker hung or crashed)")
            for task in itertools.islice(upcoming, 1):
                in_flight.append(pool.apply_async(_call, (function, task)))
    finally:
        pool.terminate()
        pool.join()


def _leave_ctrl_c() -> None:
    """Workers ignore Ctrl-C: a terminal sends it to the whole process group, and each worker
    would print a traceback; the parent stops the job and terminates them."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _call(function: Callable[[Any], Any], task: Any) -> Any:
    try:
        return function(task)
    except Exception as error:  # A worker reports, whatever one task does.
        return TaskFailure(f"{type(error).__name__}: {error}")


class Progress:
    """Counts finished tasks and logs done/total, failures, rate and ETA now and then.

    Args:
      total: tasks this run does.
      label: what the line starts with, e.g. "Synthetic videos".
      unit: what a task is, for the rate ("videos" gives "videos/s").
      verb: what finished tasks are ("done", "written").
      every_seconds: seconds between lines (the last task always logs one).
      log: where lines go (a `logging`-style function).
    """

    def __init__(self, total: int, label: str = "Tasks", unit: str = "tasks", verb: str = "done",
                 every_seconds: float = 10.0, log: Callable[..., None] = logger.info):
        self.total, self.label, self.unit, self.verb = total, label, unit, verb
        self.every_seconds, self.log_line = every_seconds, log
        self.done = self.failed = 0
        self.started = self.last = time.monotonic()

    def step(self, failed: bool = False) -> None:
        """One more task finished (`failed`: it yielded a failure)."""
        self.done += 1
        self.failed += int(failed)
        now = time.monotonic()
        if self.done >= self.total or now - self.last >= self.every_seconds:
            self.last = now
            self.log()

    @property
    def rate(self) -> float:
        """Tasks per second so far."""
        return self.done / max(time.monotonic() - self.started, 1e-9)

    def log(self) -> None:
        """Logs one line: `<label>: done/total <verb> (failed), rate, ETA`."""
        rate = self.rate
        eta = (self.total - self.done) / rate if rate > 0 else math.inf
        self.log_line("%s: %d/%d %s (%d failed), %.2f %s/s, ETA %s.", self.label, self.done,
                      self.total, self.verb, self.failed, rate, self.unit, format_duration(eta))


def format_duration(seconds: float) -> str:
    """`"1h02m03s"`, `"2m05s"`, or `"unknown"` for an infinite or NaN duration."""
    if not math.isfinite(seconds):
        return "unknown"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes = f"{rest // 60:02d}m{rest % 60:02d}s" if hours else f"{rest // 60}m{rest % 60:02d}s"
    return f"{hours}h{minutes}" if hours else minutes
