"""`run_tasks`: results in order from spawned workers, failures and hangs reported, not fatal."""

from __future__ import annotations

import logging
import os
import signal
import sys
import time

import pytest

from keras_squeezetime.worker_pool import Progress, TaskFailure, format_duration, run_tasks


def square_or_fail(task: int) -> int:
    """Module level, so spawned workers can import it."""
    if task == 3:
        raise ValueError("three is not allowed")
    if task == 5:
        time.sleep(60)  # hangs past the deadline
    if task == 7:
        os._exit(1)  # the worker dies
    return task * task


def worker_state(_: int) -> tuple[int, bool]:
    return os.getpid(), "keras" in sys.modules


def interrupted(task: int) -> int:
    """Receives the Ctrl-C a terminal sends the whole process group, then finishes."""
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(0.2)
    return task


@pytest.mark.parametrize("workers", [1, 3])
def test_results_in_task_order_with_failures_reported(workers):
    tasks = [0, 1, 2, 3, 4, 6, 8, 9] if workers == 1 else list(range(10))
    # Three workers: one sleeps through task 5, one dies in task 7 and is replaced.
    results = list(run_tasks(square_or_fail, tasks, workers=workers, window=3, timeout=15))
    expected = {task: task * task for task in tasks}
    for task, result in zip(tasks, results):
        if task == 3:
            assert result == TaskFailure("ValueError: three is not allowed")
        elif task in (5, 7):  # hung or died: reported after the deadline, the job goes on
            assert isinstance(result, TaskFailure) and "no result after 15 s" in result.reason
        else:
            assert result == expected[task], (task, result)
    assert len(results) == len(tasks)


def test_workers_are_other_processes_without_keras():
    states = list(run_tasks(worker_state, range(4), workers=2))
    assert all(pid != os.getpid() for pid, _ in states)
    assert not any(keras_loaded for _, keras_loaded in states)


def test_tasks_are_taken_lazily_within_the_window():
    taken = []

    def tasks():
        for i in range(20):
            taken.append(i)
            yield i

    results = run_tasks(square_or_fail, (i for i in tasks() if i not in (3, 5, 7)), workers=2,
                        window=2)
    assert next(results) == 0
    assert taken == [0, 1]  # only the window's two tasks were taken
    results.close()
    with pytest.raises(ValueError, match="workers must be >= 1"):
        next(run_tasks(square_or_fail, [1], workers=0))


def test_progress_logs_rate_and_eta(caplog):
    progress = Progress(3, "Things", unit="things", verb="written", every_seconds=0.0)
    with caplog.at_level(logging.INFO, logger="keras_squeezetime.worker_pool"):
        for failed in (False, True, False):
            progress.step(failed)
    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) == 3 and lines[-1].startswith("Things: 3/3 written (1 failed), ")
    assert " things/s, ETA 0m00s." in lines[-1]
    assert format_duration(3725) == "1h02m05s" and format_duration(float("inf")) == "unknown"


def test_workers_ignore_ctrl_c_which_the_parent_handles():
    # Without the workers' SIGINT handler each would die with a KeyboardInterrupt
    # traceback and its task would be reported failed after the deadline.
    assert list(run_tasks(interrupted, range(4), workers=2, timeout=20)) == [0, 1, 2, 3]
