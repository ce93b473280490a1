"""Executors: a Dask cluster runs a task as the local pool does, results and errors alike."""

from __future__ import annotations

import sys
import time
from concurrent.futures import Executor, Future
from concurrent.futures.process import BrokenProcessPool

import pytest

from pipeline.core.executor import (SPAWN_WAIT, DaskExecutor, InlineExecutor, TaskWindow, make_executor, parallelism,
                                     results_in_order)
from pipeline.errors import ConfigError, InputError


def _task(a, b, *, key=0, priority=0):
    # keywords named as Client.submit's own: they must reach the task, not the scheduler
    return a * b + key + priority


def _bad_input(path):
    raise InputError("no points in the file", path=path)


@pytest.mark.slow
def test_a_local_dask_cluster_returns_results_and_input_errors_as_the_pool_does(tmp_path):
    ex = make_executor("dask", workers=1)
    try:
        assert [f.result() for f in [ex.submit(_task, 6, 7, key=100, priority=1000) for _ in range(3)]] == [1142] * 3
        with pytest.raises(InputError, match="no points"):
            ex.submit(_bad_input, tmp_path / "empty.las").result(timeout=60)
    finally:
        ex.shutdown()
    assert InlineExecutor().submit(_task, 6, 7, key=100, priority=1000).result() == 1142


def test_an_unreachable_scheduler_is_a_config_error():
    with pytest.raises(ConfigError, match="cannot reach the Dask scheduler at tcp://127.0.0.1:9"):
        DaskExecutor("tcp://127.0.0.1:9", 1, connect_timeout=2.0)


class _Lazy(Executor):
    """Runs a task only when its result is asked for, counting the tasks submitted and not yet run."""

    def __init__(self) -> None:
        self.unfinished = self.most = 0

    def submit(self, fn, /, *args, **kwargs):
        pool = self
        pool.unfinished += 1
        pool.most = max(pool.most, pool.unfinished)

        class _Future(Future):
            def result(self, timeout=None):
                if not self.done():
                    pool.unfinished -= 1
                    self.set_result(fn(*args, **kwargs))
                return super().result(timeout)

        return _Future()


def test_a_task_window_holds_at_most_its_size_unfinished_and_keeps_the_order():
    pool = _Lazy()
    window = TaskWindow(pool, size=3)
    for k in range(10):
        window.submit(f"t{k}", pow, k, 2)
    assert len(window) == 10 and pool.most == 3
    assert list(window.results().items()) == [(f"t{k}", k * k) for k in range(10)]
    assert pool.unfinished == 0
    assert parallelism(InlineExecutor()) == 1 and TaskWindow(InlineExecutor()).size == 4
    with make_executor("local", workers=3) as pool3:
        assert parallelism(pool3) == 3


def test_results_in_order_lets_go_of_each_future_as_its_result_is_read():
    with InlineExecutor() as pool:
        futures = [pool.submit(pow, k, 2) for k in range(4)]
    taken = results_in_order(futures)
    assert next(taken) == 0 and len(futures) == 3
    assert list(taken) == [1, 4, 9] and futures == []


def _unpickle_fails():
    raise RuntimeError("cannot rebuild this task")


class _Unloadable:
    """Pickles in the run, fails to unpickle in the worker: the worker's loop itself raises."""

    def __reduce__(self):
        return _unpickle_fails, ()


def test_a_pool_worker_exits_0_after_a_shutdown_and_not_when_its_loop_raised():
    ex = make_executor("local", workers=1)
    assert ex.submit(_task, 2, 3).result(timeout=60) == 6
    first = list(ex._processes.values())
    ex.shutdown()
    assert [p.exitcode for p in first] == [0]

    ex = make_executor("local", workers=1)
    assert ex.submit(_task, 2, 3).result(timeout=60) == 6
    crashed = list(ex._processes.values())
    with pytest.raises(BrokenProcessPool):
        ex.submit(_task, _Unloadable(), 3).result(timeout=60)
    ex.shutdown()
    for p in crashed:
        p.join(timeout=60)
    assert [p.exitcode for p in crashed] == [1]


def test_a_pool_starts_a_second_worker_only_for_tasks_that_wait():
    """Two short tasks at once keep one worker busy for a moment (a second would cost more to
    start than they take); tasks that keep each other waiting get the second at once, and
    start_all starts every worker without waiting for tasks. The standard pool started a worker
    for the second of any two tasks submitted together."""
    with make_executor("local", workers=2) as pool:
        assert pool.submit(int).result(timeout=60) == 0  # the first worker is up
        pair = [pool.submit(_task, 2, 3), pool.submit(_task, 3, 4)]
        assert [f.result(timeout=60) for f in pair] == [6, 12]
        time.sleep(3 * SPAWN_WAIT)
        assert len(pool._processes) == 1
        start = time.perf_counter()
        for f in [pool.submit(time.sleep, 1.0) for _ in range(4)]:
            f.result(timeout=60)
        assert len(pool._processes) == 2
        assert time.perf_counter() - start < 3.9  # one worker alone takes 4 s
    with make_executor("local", workers=2) as pool:
        pool.start_all()
        assert len(pool._processes) == 2


def _heap_after_freeing(mib: int) -> tuple[int, int]:
    """(resident KiB with ``mib`` 1 MiB blocks held, resident KiB once they are freed) in this
    process: blocks under the mmap threshold come from the heap, on top of each other."""
    import numpy as np

    def resident() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * 4

    blocks = [np.ones(1 << 17) for _ in range(mib)]  # 1 MiB each, pages touched
    held = resident()
    del blocks
    return held, resident()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_a_worker_keeps_a_freed_heap_top_up_to_32_mib_and_returns_more():
    """The pool's workers keep up to 32 MiB free on the heap's top for the next temporaries
    (glibc's default gave it back at 128 KiB, to be faulted in again) and return a larger top."""
    ex = make_executor("local", workers=1)
    try:
        held, freed = ex.submit(_heap_after_freeing, 24).result(timeout=60)
        assert freed > held - 4 * 1024, (held, freed)  # the 24 MiB stay
        held, freed = ex.submit(_heap_after_freeing, 64).result(timeout=60)
        assert freed < held - 48 * 1024, (held, freed)  # 64 MiB over the threshold go back
    finally:
        ex.shutdown()
