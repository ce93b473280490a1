"""ingest's point clouds: one chunk folder per input cloud (``points/<n>_<stem>/chunk_*.npy``,
records of :data:`~pipeline.core.pointio.POINT_DTYPE` plus extra dimensions, coordinates still in
the cloud's own CRS) with its :class:`SourceCloud` record as ``meta.json``.

``points/`` is written on every run; without point clouds it is empty. The clouds georef and
clean bin by ENU cell are :class:`~pipeline.core.cells.CellStore` folders with their own typed
:class:`~pipeline.core.cells.CloudMeta`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from pipeline.artifacts import SOURCE_POINTS
from pipeline.core.pointio import ChunkStore


@dataclass(frozen=True)
class SourceCloud:
    """One input cloud: its file and format; its CRS (WKT; None for a scan in a local frame),
    where that CRS came from and ``z_factor``, the scale from a GeoTIFF VerticalUnits key to the
    CRS's own vertical unit; how it is georeferenced ('crs' or 'gcps'), whether it is aligned
    onto the others and whether the landing checks are waived; its point count, bounds in source
    units (x, y, z min then max), extra dimensions ([name, numpy type]) and class histogram."""

    source: str
    format: str
    crs_wkt: str | None
    crs_name: str
    crs_source: str
    z_factor: float
    georeference: str
    align: bool
    accept_crs: bool
    count: int
    bounds: list[float]
    extra_dims: list[list[str]]
    classes: dict[str, int]
    frame: str = "source"


def cloud_store(ingest: Path, index: int, path: Path) -> ChunkStore:
    """The chunk folder of the ``index``-th input cloud, read from ``path``."""
    return ChunkStore(SOURCE_POINTS.locate(ingest) / f"{index:02d}_{path.stem}")


def write_source_cloud(store: ChunkStore, cloud: SourceCloud) -> None:
    store.write_meta(asdict(cloud))


def read_source_clouds(ingest: Path) -> list[tuple[ChunkStore, SourceCloud]]:
    """Every input cloud's chunk folder and record, in input order."""
    folder = SOURCE_POINTS.locate(ingest)
    stores = [ChunkStore(c) for c in sorted(folder.iterdir()) if c.is_dir()] if folder.is_dir() else []
    return [(s, SourceCloud(**s.meta())) for s in stores]
