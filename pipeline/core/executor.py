"""The one seam for parallel work: a :class:`concurrent.futures.Executor`.

Local runs use a process pool started with ``spawn``: forking after laspy/lazrs, open3d or BLAS
have started native thread pools can deadlock the children (py3dtiles hangs on LAZ this way).
A Dask cluster plugs in as :class:`DaskExecutor`; ``core`` never imports Dask otherwise.

What makes a task safe to run on a cluster: it reads its inputs from paths every worker sees
(the work directory on shared storage), writes only its own output files and each through
:func:`pipeline.core.atomic.replacing`, and returns the rest. So when a worker dies and the
scheduler runs its task again elsewhere, or two attempts overlap, the result is the same file.
Input-data errors are raised as :class:`pipeline.errors.TwinError`, which Dask hands back to the
run (it retries a task only when its worker is lost, never on an exception).
"""

from __future__ import annotations

import atexit
import ctypes
import importlib
import multiprocessing.context
import os
import signal
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from typing import Any

from pipeline.errors import ConfigError


def return_freed_memory() -> None:
    """Make glibc give large freed blocks back to the OS at once, and keep small ones.

    glibc raises its mmap threshold every time a large block is freed, so after the first big
    numpy temporaries, later ones come from the heap and stay in the process's RSS when freed.
    A fixed threshold keeps every large array in its own mapping, returned on free: a worker's
    memory then follows its current cell, not the largest one it has seen.

    Fixing the threshold also leaves the trim threshold at 128 KiB, so the heap's top is given
    back as soon as the temporaries on it are freed and faulted in again by the next ones. A
    fresh page is dear on a virtual machine whose balloon reports free pages to the host (virtio
    free page reporting, as on our benchmark machine: 1.3 ms of system time a MiB, against 0.18
    for a page freed a moment ago), so the top keeps up to 32 MiB: the 20 M-point full path ran
    in 17.6-17.9 s instead of 19.9 s, its peak 919-929 MiB instead of 904-916.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc: nothing to tune
        return
    libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
    libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)


#: mallopt parameter numbers (glibc malloc.h), and the fixed thresholds: arrays above 8 MiB (a
#: cell's coordinates, neighbour lists) are mapped and unmapped; smaller temporaries reuse the
#: heap, whose page faults a 128 KiB threshold would pay on every operation (20 % slower here),
#: and its top is returned once more than 32 MiB of it is free
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD, TRIM_THRESHOLD = 8 << 20, 32 << 20


#: prctl option: the signal a process gets when its parent dies (Linux)
PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int) -> None:
    """Have the kernel kill this worker when the run's process dies, however it dies (SIGKILL,
    the OOM killer): orphaned workers would otherwise keep computing and holding memory."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:  # not Linux: workers end when their task pipe closes
        return
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # it died before the request took effect
        os._exit(1)


def _init_worker(parent: int, preload: tuple[str, ...] = ()) -> None:
    _die_with_parent(parent)
    # the pool already keeps every core busy; OpenMP / BLAS threads inside each worker (pykdtree,
    # numpy) would only contend with the other workers. Set before those libraries load.
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"
    for module in preload:
        importlib.import_module(module)
    # when the pool shuts down, leave without tearing down the interpreter: freeing every module
    # and object of a worker that held a cell of points took a quarter of a second the run
    # waited for. Registered last, so it runs first; results already went through the pipe
    atexit.register(_leave_now)
    return_freed_memory()


def _leave_now() -> None:
    # only after the pool's loop ended normally: a loop that raised (a task it could not
    # unpickle) keeps the exit code 1 multiprocessing gives it, and the full teardown
    if _Worker.loop_ended:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


class _Worker(multiprocessing.context.SpawnProcess):
    """A pool's worker process that records whether its loop ended normally (the pool's shutdown),
    read by the exit hook in the worker: an exit hook cannot see the exit code being set."""

    loop_ended = False

    def run(self) -> None:
        super().run()
        _Worker.loop_ended = True


class _WorkerContext(multiprocessing.context.SpawnContext):
    Process = _Worker


#: how long tasks wait for a busy pool before it starts another worker (s)
SPAWN_WAIT = 0.25


class GrowingPool(ProcessPoolExecutor):
    """A process pool that starts workers as its tasks wait, not as they arrive.

    The standard pool starts a worker whenever a task arrives and none is idle. A worker costs
    half a CPU-second to start (an interpreter importing the stages), and a small run's stages
    hand out tasks of a few milliseconds two or three at once: each such run started a second
    worker that had nothing left to do once it was up. Here the first worker starts with the
    first task; more start only when, ``SPAWN_WAIT`` s later and once a task has come back (the
    first worker is up), tasks are still waiting: as many as wait, up to ``max_workers``.
    :meth:`start_all` starts every worker at once, for a run whose inputs promise work for all.

    It overrides ``_adjust_process_count``, the standard pool's one place (CPython 3.9-3.13) that
    decides to start a worker; the pool keeps no public hook for it.
    """

    def __init__(self, max_workers: int, **kwargs: Any) -> None:
        super().__init__(max_workers=max_workers, **kwargs)
        self._size = max_workers
        self._grow_timer: threading.Timer | None = None
        self._eager = False
        self._returned = 0

    def start_all(self) -> None:
        """Start every worker now (each with a no-op task)."""
        self._eager = True
        for _ in range(self._size):
            self.submit(int)

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future:
        future = super().submit(fn, *args, **kwargs)
        future.add_done_callback(self._came_back)
        return future

    def _came_back(self, _: Future) -> None:
        self._returned += 1

    def _adjust_process_count(self) -> None:  # called by submit, under the pool's lock
        if self._idle_worker_semaphore.acquire(blocking=False):
            return
        if self._eager or not self._processes:
            if len(self._processes) < self._size:
                self._spawn()
        elif len(self._processes) < self._size and self._grow_timer is None:
            self._arm()

    def _spawn(self) -> None:
        self._spawn_process()  # type: ignore[attr-defined]  # the standard pool's, untyped

    def _arm(self) -> None:
        self._grow_timer = threading.Timer(SPAWN_WAIT, self._grow)
        self._grow_timer.daemon = True
        self._grow_timer.start()

    def _grow(self) -> None:
        with self._shutdown_lock:
            self._grow_timer = None
            if self._shutdown_thread or self._broken:
                return
            if not self._returned:  # the workers are still starting: no telling yet
                self._arm()
                return
            # every worker busy with one task at most: the rest are waiting
            waiting = len(self._pending_work_items) - len(self._processes)
            for _ in range(min(waiting, self._size - len(self._processes))):
                self._spawn()
            if waiting > 0:
                self._executor_manager_thread_wakeup.wakeup()


class InlineExecutor(Executor):
    """Runs each task at once in the calling process: for debugging, profiling and measuring a
    stage's memory in one process."""

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # delivered through the future, as a pool would
            future.set_exception(exc)
        return future


def _on_dask_worker(fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    # a worker started by `dask worker` is not ours to configure at start-up; the allocator
    # setting is per process and cheap to repeat
    return_freed_memory()
    return fn(*args, **kwargs)


class DaskExecutor(Executor):
    """Tasks on a Dask cluster: the scheduler at an address (``tcp://host:8786``), or a
    LocalCluster of ``workers`` single-threaded processes started for the run (``connect_timeout``
    in seconds). Shutting down closes the client, and the LocalCluster if it started one."""

    def __init__(self, scheduler: str | None, workers: int, connect_timeout: float = 30.0) -> None:
        from dask.distributed import Client, LocalCluster

        self._cluster = None if scheduler else LocalCluster(n_workers=workers, threads_per_worker=1,
                                                            processes=True, dashboard_address=None)
        self._pending: set[Any] = set()
        try:
            self.client = Client(scheduler or self._cluster, timeout=connect_timeout)
        except OSError as exc:
            raise ConfigError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from None

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future:
        # the task and its arguments travel as one call: a task's keyword (``key``, ``priority``)
        # cannot be taken for one of Client.submit's; pure=False: no hashing of large arrays for
        # keys, each submission is its own task
        inner = self.client.submit(_on_dask_worker, fn, args, kwargs, pure=False)
        future: Future = Future()
        # the scheduler forgets a task nobody holds: held until it is done
        self._pending.add(inner)

        def done(f: Any) -> None:
            self._pending.discard(f)
            try:
                future.set_result(f.result())
            except BaseException as exc:  # delivered through the future, as a pool would
                future.set_exception(exc)

        inner.add_done_callback(done)
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self.client.close()
        if self._cluster is not None:
            self._cluster.close()


def parallelism(executor: Executor) -> int:
    """How many tasks ``executor`` runs at once: a pool's workers, a cluster's worker threads."""
    if isinstance(executor, DaskExecutor):
        return max(1, sum(executor.client.nthreads().values()))
    # ProcessPoolExecutor keeps its size private; InlineExecutor runs one task at a time
    return int(getattr(executor, "_max_workers", 1))


def results_in_order(futures: list[Future]) -> Iterator[Any]:
    """The results of ``futures`` in their order, each future taken out of the list as its result
    is read: a finished future keeps its result for as long as anything holds it, and a list of
    a stage's futures held every block's records and meshes to its end."""
    futures.reverse()
    while futures:
        yield futures.pop().result()


class TaskWindow:
    """Tasks submitted with at most ``size`` unfinished at a time (4 per task ``executor`` runs
    at once by default): one more waits for the oldest. A pool holds a task's arguments until it
    ends, so a stage that submitted every tile at once held every tile's geometry; through a
    window it holds ``size`` tiles'. Results are kept by key, in submission order."""

    def __init__(self, executor: Executor, size: int | None = None) -> None:
        self.executor = executor
        self.size = size or 4 * parallelism(executor)
        self._pending: deque[tuple[str, Future]] = deque()
        self._results: dict[str, Any] = {}

    def submit(self, key: str, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> None:
        while len(self._pending) >= self.size:
            self._take()
        self._pending.append((key, self.executor.submit(fn, *args, **kwargs)))

    def _take(self) -> None:
        key, future = self._pending.popleft()
        self._results[key] = future.result()

    def results(self) -> dict[str, Any]:
        """Every task's result by key, in submission order, once all have ended."""
        while self._pending:
            self._take()
        return self._results

    def __len__(self) -> int:
        """The tasks submitted."""
        return len(self._results) + len(self._pending)


def make_executor(kind: str = "local", workers: int = 2, scheduler: str | None = None,
                  preload: tuple[str, ...] = ()) -> Executor:
    """An executor for ``kind`` 'local' (spawned processes: a :class:`GrowingPool`), 'inline' (this
    process, one task at a time) or 'dask' (scheduler address or LocalCluster). A local pool's
    workers import the ``preload`` modules as they start (the modules their tasks live in)."""
    if kind == "inline":
        return InlineExecutor()
    if kind == "local":
        return GrowingPool(max_workers=workers, mp_context=_WorkerContext(),
                           initializer=_init_worker, initargs=(os.getpid(), preload))
    if kind == "dask":
        try:
            import dask.distributed  # noqa: F401
        except ImportError:
            raise ConfigError("executor.kind 'dask' needs the dask extra: pip install 'dmc-twin[dask]'"
                              ) from None
        return DaskExecutor(scheduler, workers)
    raise ConfigError(f"unknown executor kind {kind!r}")
