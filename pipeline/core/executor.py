"""The one seam for parallel work: a :class:`concurrent.futures.Executor`.

Local runs use a process pool started with ``spawn``: forking after laspy/lazrs, open3d or BLAS
have started native thread pools can deadlock the children (py3dtiles hangs on LAZ this way).
A Dask cluster plugs in through ``Client.get_executor()``; ``core`` never imports Dask otherwise.
"""

from __future__ import annotations

import importlib
import multiprocessing
import os
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from typing import Any

from pipeline.errors import ConfigError


def _one_thread_per_worker() -> None:
    # the pool already keeps every core busy; OpenMP / BLAS threads inside each worker (pykdtree,
    # numpy) would only contend with the other workers. Set before those libraries load.
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"


def preload(modules: list[str]) -> None:
    """Import ``modules`` in a worker (a warm-up task), so later tasks start at once."""
    for name in modules:
        importlib.import_module(name)


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
                                   initializer=_one_thread_per_worker)
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
