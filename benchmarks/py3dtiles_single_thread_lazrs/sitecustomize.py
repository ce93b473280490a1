"""Loaded (via PYTHONPATH) only into py3dtiles benchmark runs: hide laspy's parallel lazrs backend.

py3dtiles forks its workers after laspy's parallel LAZ decoder has started its thread pool, and
the children hang. With the single-threaded backend it completes, so the comparison can run.
"""

from laspy._compression.backend import LazBackend

_detect = LazBackend.detect_available.__func__


def _single_threaded(cls):  # type: ignore[no-untyped-def]
    return tuple(b for b in _detect(cls) if b is not LazBackend.LazrsParallel)


LazBackend.detect_available = classmethod(_single_threaded)
