"""Sizes checked before memory is allocated or a loop starts.

A grid, a raster or a mesh whose size comes from a config number and the data's extent can ask
for more memory than any machine has (a 0.1 mm terrain post over a district is petabytes). Each
such allocation is checked here first and refused with what it would have cost, so the run stops
in one line instead of thrashing or being killed.
"""

from __future__ import annotations

import os
from pathlib import Path

from pipeline.errors import ConfigError, InputError

#: share of physical memory one array may take (the stages hold a few at once)
MEMORY_SHARE = 0.25


def physical_memory() -> int:
    """Bytes of physical memory on this machine."""
    return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))


def limit_bytes() -> int:
    """The most one array may take: ``DMCTWIN_MAX_ARRAY_BYTES`` if set, else a quarter of memory."""
    env = os.environ.get("DMCTWIN_MAX_ARRAY_BYTES")
    return int(float(env)) if env else int(physical_memory() * MEMORY_SHARE)


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        if abs(n) < 1024 or unit == "EiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n:.0f} B"
        n /= 1024
    return f"{n:.1f} EiB"


def check_grid(what: str, key: str, resolution: float, width: float, height: float, bytes_per_post: int,
               *, path: Path | str | None = None) -> None:
    """ConfigError when a grid of ``resolution`` (m; the config ``key``) over ``width`` x ``height``
    metres would need more than :func:`limit_bytes` at ``bytes_per_post``."""
    posts = (width / resolution + 1) * (height / resolution + 1)
    need = posts * bytes_per_post
    if need > limit_bytes():
        area = width * height / 1e6
        raise ConfigError(f"{key} {resolution:g} m over {area:,.2f} km² ({width:,.0f} x {height:,.0f} m) would need "
                          f"{human_bytes(need)} for {what} (limit {human_bytes(limit_bytes())}); use a coarser "
                          f"{key}, or a smaller site", path=path)


def check_count(what: str, count: float, bytes_per_item: int, *, path: Path | str | None = None,
                hint: str = "") -> None:
    """InputError when ``count`` items (from an input file) would need more than the limit."""
    need = count * bytes_per_item
    if need > limit_bytes():
        raise InputError(f"{what}: {count:,.0f} would need {human_bytes(need)} (limit "
                         f"{human_bytes(limit_bytes())}){'; ' + hint if hint else ''}", path=path)
