"""The one seam for parallel work: a :class:`concurrent.futures.Executor`.

Local runs use a process pool started with ``spawn``: forking after laspy/lazrs, open3d or BLAS
have started native thread pools can deadlock the children (py3dtiles hangs on LAZ this way).
A Dask cluster plugs in through ``Client.get_executor()``; ``core`` never imports Dask otherwise.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from typing import Any

from pipeline.errors import ConfigError


def return_freed_memory() -> None:
    """Make glibc give large freed blocks back to the OS at once.

    glibc raises its mmap threshold every time a large block is freed, so after the first big
    numpy temporaries, later ones come from the heap and stay in the process's RSS when freed.
    A fixed threshold keeps every large array in its own mapping, returned on free: a worker's
    memory then follows its current cell, not the largest one it has seen.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc: nothing to tune
        return
    libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)


#: mallopt parameter number (glibc malloc.h), and the fixed threshold: arrays above 8 MiB (a
#: cell's coordinates, neighbour lists) are mapped and unmapped; smaller temporaries reuse the
#: heap, whose page faults a 128 KiB threshold would pay on every operation (20 % slower here)
M_MMAP_THRESHOLD, MMAP_THRESHOLD = -3, 8 << 20


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


def _init_worker(parent: int) -> None:
    _die_with_parent(parent)
    # the pool already keeps every core busy; OpenMP / BLAS threads inside each worker (pykdtree,
    # numpy) would only contend with the other workers. Set before those libraries load.
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"
    return_freed_memory()


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


def make_executor(kind: str = "local", workers: int = 2, scheduler: str | None = None) -> Executor:
    """An executor for ``kind`` 'local' (spawned processes), 'inline' (this process, one task at a
    time) or 'dask' (scheduler address or LocalCluster)."""
    if kind == "inline":
        return InlineExecutor()
    if kind == "local":
        return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_init_worker, initargs=(os.getpid(),))
    if kind == "dask":
        try:
            from dask.distributed import Client, LocalCluster
        except ImportError:
            raise ConfigError("executor.kind 'dask' needs the dask extra: pip install 'dmc-twin[dask]'"
                              ) from None
        client = Client(scheduler) if scheduler else Client(LocalCluster(n_workers=workers,
                                                                          processes=True))
        return client.get_executor()
    raise ConfigError(f"unknown executor kind {kind!r}")
