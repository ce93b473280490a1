"""Progress display: rich bars on a terminal, silent otherwise or when quiet."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                           TimeElapsedColumn)

T = TypeVar("T")


class Reporter:
    """Shows one bar per unit of long work; a no-op when ``quiet`` or stderr is not a terminal."""

    def __init__(self, quiet: bool = False) -> None:
        self.enabled = not quiet and sys.stderr.isatty()
        self.console = Console(stderr=True, quiet=not self.enabled)
        self._progress: Progress | None = None

    def __enter__(self) -> Reporter:
        if self.enabled:
            self._progress = Progress(TextColumn("{task.description:<28}"), BarColumn(),
                                      MofNCompleteColumn(), TimeElapsedColumn(),
                                      console=self.console, transient=False)
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def track(self, items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
        """Iterate ``items``, advancing a bar labelled ``description``."""
        if self._progress is None:
            yield from items
            return
        if total is None and hasattr(items, "__len__"):
            total = len(items)  # type: ignore[arg-type]
        task = self._progress.add_task(description, total=total)
        for item in items:
            yield item
            self._progress.advance(task)


class Clock:
    """Seconds per step, for a stage's report (timings live in reports, never in outputs)."""

    def __init__(self) -> None:
        self.t = time.perf_counter()
        self.laps: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = round(now - self.t, 3)
        self.t = now
