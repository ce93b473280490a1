"""ingest's point clouds: one folder per input cloud (``points/<n>_<stem>/``) with its
:class:`SourceCloud` record as ``meta.json`` and, unless the points are read in place, their
chunks (``chunk_*.npy``, records of :data:`~pipeline.core.pointio.POINT_DTYPE` plus extra
dimensions, coordinates still in the cloud's own CRS). :func:`cloud_chunks` lists a cloud's
chunks either way, as :class:`SourceChunk` references whose ``read`` gives the same records.

An uncompressed LAS file is read in place: its records are mapped from the file, so copying
them into chunks would cost a write and a read of every point for nothing (a LAZ, COPC, PLY or
text cloud is decoded once, into chunks). The record then carries the file's digest, so that a
changed file changes the artifact, and its stat stamp, so that a file changed after ingest is
caught before its points are read.

``points/`` is written on every run; without point clouds it is empty. The clouds georef and
clean bin by ENU cell are :class:`~pipeline.core.cells.CellStore` folders with their own typed
:class:`~pipeline.core.cells.CloudMeta`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from pipeline.artifacts import SOURCE_POINTS
from pipeline.core.atomic import file_stamp
from pipeline.core.pointio import ChunkStore, las_raw_points, las_records, point_ranges
from pipeline.errors import StageError


@dataclass(frozen=True)
class SourceCloud:
    """One input cloud: its file and format; its CRS (WKT; None for a scan in a local frame),
    where that CRS came from and ``z_factor``, the scale from a GeoTIFF VerticalUnits key to the
    CRS's own vertical unit; how it is georeferenced ('crs' or 'gcps'), whether it is aligned
    onto the others and whether the landing checks are waived; its point count, bounds in source
    units (x, y, z min then max), extra dimensions ([name, numpy type]) and class histogram.

    ``chunk_points`` > 0 means the points are read in place from ``source`` (an uncompressed
    LAS file) in ranges of that many; ``source_digest`` (``xxh3:`` hex) and ``source_stamp``
    (size, mtime and ctime in ns, inode: :func:`~pipeline.core.atomic.file_stamp`) then identify
    the file ingest read."""

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
    chunk_points: int = 0
    source_digest: str | None = None
    source_stamp: list[int] | None = None


@dataclass(frozen=True)
class SourceChunk:
    """One chunk of an input cloud: ``count`` records in the stored ``.npy`` file ``path``, or,
    when ``start`` is set, points ``start`` .. ``start + count`` read in place from the LAS file
    ``path``. Picklable: executor tasks take it."""

    path: str
    count: int
    start: int | None = None

    @classmethod
    def stored(cls, path: str | Path) -> SourceChunk:
        """The chunk stored in the ``.npy`` file ``path`` (its header gives the count)."""
        return cls(str(path), len(np.load(path, mmap_mode="r")))

    def read(self) -> np.ndarray:
        """The chunk's records (:func:`~pipeline.core.pointio.record_dtype`, source CRS units)."""
        if self.start is None:
            return np.load(self.path)
        return las_records(self.path, self.start, self.count)

    def xyz_sample(self, stride: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """x, y, z (float64, source CRS units) of every ``stride``-th point, read without
        decoding the rest."""
        if self.start is None:
            rec = np.load(self.path, mmap_mode="r")[::stride]
            return np.asarray(rec["x"]), np.asarray(rec["y"]), np.asarray(rec["z"])
        points = las_raw_points(self.path, self.start, self.count, stride)
        return np.asarray(points.x), np.asarray(points.y), np.asarray(points.z)


def cloud_chunks(store: ChunkStore, cloud: SourceCloud) -> list[SourceChunk]:
    """The chunks of one ingested cloud, in point order. StageError when a cloud read in place
    has gone or changed since ingest read it (its points would not be the ones it checked)."""
    if not cloud.chunk_points:
        return [SourceChunk.stored(p) for p in store.paths()]
    source = Path(cloud.source)
    if not source.is_file():
        raise StageError("the point cloud ingest read in place is gone: restore it or rerun from ingest", path=source)
    if file_stamp(source) != cloud.source_stamp:
        raise StageError("the point cloud changed since ingest read it: rerun from ingest (--stages ingest..)",
                         path=source)
    return [SourceChunk(str(source), count, start) for start, count in point_ranges(cloud.count, cloud.chunk_points)]


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
