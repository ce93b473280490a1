"""mesh's buildings: one record per building (``buildings.jsonl``, one per line, in feature-ID
order), the layer's own fields (``buildings.json``: the count, what was skipped, how the
footprints were obtained) and every building's levels of detail as mesh pieces (``buildings.npz``).

All three are written on every run; a layer without buildings has no records and no pieces.
Heights are metres, orthometric (above the geoid); ``bbox_enu``, ``outline_en`` and the pieces'
vertices are ENU metres at the site origin.
"""

from __future__ import annotations

import os
import sys
import tempfile
import weakref
from array import array
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from pipeline.artifacts import BUILDINGS
from pipeline.artifacts.base import dump_json, dump_records, intern_values, iter_records, load_json
from pipeline.artifacts.footprints import Centroid
from pipeline.core.surfaces import complete_kinds

FILE = BUILDINGS.path
RECORDS = "buildings.jsonl"
MESHES = "buildings.npz"
#: levels a building may have, and more: (feature ID, level) -> one sortable integer
LEVEL_KEYS = 1 << 15
#: a building's feature properties in the tiles (``core.content.BUILDING_SCHEMA``), in order
FEATURE_PROPERTIES = ("id", "name", "use", "floors", "floors_below", "height", "ground_height", "roof_height",
                      "roof_type", "lod", "height_source", "proposed", "replaces", "approval_date")
#: those that are measured (metres), one value per building; the rest repeat across a city
_MEASURED = ("height", "ground_height", "roof_height")


@dataclass(frozen=True, slots=True)
class LevelInfo:
    """One level of detail: its face count and Hausdorff distance to level 0 (m)."""

    level: int
    faces: int
    error_m: float


@dataclass(slots=True)
class BuildingRecord:
    """A building as the mesh stage made it. ``lod`` is LoD2, LoD1, a city model's LoD3, or
    imported; ``height_source`` lidar, register, attribute, register floors, floors, default, model or
    city model; ``footprint_source`` input, lidar, model or city model; ``ground_source`` terrain, model
    base or site reference height; ``feature_id`` its row in the layer. A ``proposed`` building (a design
    model) stands beside the building it ``replaces``, which keeps its own record."""

    id: str
    name: str | None
    use: str | None
    floors: int | None
    height: float
    ground_height: float
    roof_height: float
    eave_height: float | None
    lod1_roof_height: float | None
    height_source: str
    lod: str
    roof_type: str | None
    roof_fit_rmse_m: float | None
    lod2_fallback: str | None
    roof_points: int
    footprint_area_m2: float
    footprint_source: str
    bbox_enu: list[float]
    centroid: Centroid
    outline_en: list[list[float]]
    ground_source: str = "terrain"
    feature_id: int = -1
    levels: list[LevelInfo] = field(default_factory=list)
    source_file: str | None = None
    repair: dict[str, Any] | None = None
    replaced_footprint: bool = False
    proposed: bool = False
    replaces: str | None = None
    floors_below: int | None = None
    approval_date: str | None = None
    footprint_sources: list[dict[str, Any]] = field(default_factory=list)
    #: the outline's holes (courtyards) where the mesh stage drew the outline itself (a city model's)
    outline_holes_en: list[list[list[float]]] = field(default_factory=list)

    def feature_properties(self) -> dict[str, Any]:
        """The values of the tiles' building metadata class (``core.content.BUILDING_SCHEMA``)."""
        return {name: getattr(self, name) for name in FEATURE_PROPERTIES}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> BuildingRecord:
        doc = intern_values(doc, ("use", "height_source", "lod", "roof_type", "lod2_fallback", "footprint_source",
                                  "ground_source"))
        doc["centroid"] = Centroid(**doc["centroid"])
        doc["levels"] = [LevelInfo(**lv) for lv in doc.get("levels", [])]
        return cls(**doc)


#: one level of a building: ENU vertices (V, 3) float64, faces (F, 3) int32, Hausdorff error (m)
MeshLevel = tuple[np.ndarray, np.ndarray, float]


@dataclass
class BuildingLayer:
    """Every building in feature-ID order, with what was skipped (id and reason), the number of
    sliver parts dropped and how the footprints were obtained."""

    buildings: list[BuildingRecord] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    slivers_dropped: int = 0
    footprints: dict[str, Any] = field(default_factory=dict)


class BuildingWriter:
    """Writes mesh's buildings as they come: each building's record and levels of detail are
    spooled to disk when they are made (:meth:`add`), so a city's buildings are never all in
    memory; :meth:`close` then writes the records in their final order (JSON Lines) and the
    pieces into ``buildings.npz``, a chunk at a time.

    Pieces keep the order they were added in; ``piece_building`` names each one's feature ID.
    A building added but not given to :meth:`close` (a footprint's solid that an imported model
    replaced) is left out."""

    #: rows copied from the spool into the archive at a time
    CHUNK = 1 << 20

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self._spool = tempfile.TemporaryDirectory(prefix=".buildings-", dir=folder)
        spool = Path(self._spool.name)
        self._files = {name: (spool / name).open("w+b")
                       for name in ("records", "vertices", "faces", "face_surface")}
        # per building and per piece, in typed arrays: as Python lists and tuples they were 0.3 GB
        # at 600,000 buildings
        self._record_at, self._record_size = array("q"), array("q")
        self._changed: dict[int, BuildingRecord] = {}
        self._owner, self._level, self._nv, self._nf = array("q"), array("h"), array("q"), array("q")
        self._first_level = array("q", [0])
        self._level_error = array("d")

    def __enter__(self) -> BuildingWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self._discard()

    def add(self, record: BuildingRecord, levels: list[MeshLevel], surfaces: np.ndarray | None = None) -> int:
        """Spool one building's record and levels (ENU metres); returns its handle. ``surfaces``
        gives level 0's surface codes where its source states them (a city model's;
        :data:`~pipeline.core.surfaces.UNLABELLED` where it does not); every other face's kind
        follows from its normal."""
        handle = len(self._record_at)
        line = orjson.dumps(record, option=orjson.OPT_SERIALIZE_NUMPY)
        records = self._files["records"]
        self._record_at.append(records.tell())
        self._record_size.append(len(line))
        records.write(line)
        for k, (v, f, e) in enumerate(levels):
            v = np.ascontiguousarray(v, np.float64)
            f = np.ascontiguousarray(f, np.int32)
            self._files["vertices"].write(v.tobytes())
            self._files["faces"].write(f.tobytes())
            self._files["face_surface"].write(complete_kinds(v, f, surfaces if k == 0 else None).tobytes())
            self._owner.append(handle)
            self._level.append(k)
            self._nv.append(len(v))
            self._nf.append(len(f))
            self._level_error.append(round(float(e), 4))
        self._first_level.append(len(self._owner))
        return handle

    def _levels(self, handle: int) -> list[LevelInfo]:
        first, end = self._first_level[handle], self._first_level[handle + 1]
        return [LevelInfo(k, self._nf[first + k], self._level_error[first + k]) for k in range(end - first)]

    def record(self, handle: int) -> BuildingRecord:
        """The record added as ``handle``, as last changed."""
        if handle in self._changed:
            return self._changed[handle]
        offset, size = self._record_at[handle], self._record_size[handle]
        f = self._files["records"]
        f.flush()
        return BuildingRecord.from_json(orjson.loads(os.pread(f.fileno(), size, offset)))

    def change(self, handle: int, record: BuildingRecord) -> None:
        """Replace the record added as ``handle`` (its levels stay)."""
        self._changed[handle] = record

    def close(self, handles: Sequence[int], skipped: list[dict[str, str]], slivers_dropped: int,
              footprints: dict[str, Any], seen: Callable[[BuildingRecord], None] | None = None) -> int:
        """Write the buildings added as ``handles``, in that order (feature IDs 0, 1, ...), with the
        layer's own fields: ``buildings.npz``, ``buildings.jsonl`` and ``buildings.json``. Each
        record, numbered and with its levels, is shown to ``seen`` as it is written. Returns the
        number of buildings."""
        for spooled in self._files.values():
            spooled.flush()
        feature = np.full(len(self._record_at), -1, np.int64)
        feature[np.asarray(handles, np.int64)] = np.arange(len(handles))
        owner = feature[np.asarray(self._owner, np.int64)] if self._owner else np.empty(0, np.int64)
        keep = owner >= 0
        nv, nf = np.asarray(self._nv, np.int64)[keep], np.asarray(self._nf, np.int64)[keep]
        spool = Path(self._spool.name)
        with zipfile.ZipFile(self.folder / MESHES, "w", zipfile.ZIP_STORED, allowZip64=True) as z:
            _spooled_array(z, "vertices", spool / "vertices", np.float64, 3,
                           np.repeat(keep, self._nv), self.CHUNK)
            _spooled_array(z, "faces", spool / "faces", np.int32, 3, np.repeat(keep, self._nf), self.CHUNK)
            _spooled_array(z, "face_surface", spool / "face_surface", np.uint8, 0, np.repeat(keep, self._nf),
                           self.CHUNK)
            for name, arr in (("piece_building", owner[keep].astype(np.int32)),
                              ("piece_level", np.asarray(self._level, np.int16)[keep]),
                              ("vertex_start", np.concatenate([[0], np.cumsum(nv)]).astype(np.int64)),
                              ("face_start", np.concatenate([[0], np.cumsum(nf)]).astype(np.int64))):
                with z.open(_entry(name), "w", force_zip64=True) as f:
                    np.lib.format.write_array(f, arr)

        def numbered() -> Iterator[BuildingRecord]:
            for fid, h in enumerate(handles):
                rec = self.record(h)
                rec.feature_id, rec.levels = fid, self._levels(h)
                if seen is not None:
                    seen(rec)
                yield rec

        n = dump_records(self.folder / RECORDS, {}, numbered())
        self._discard()
        dump_json(self.folder / FILE, {"buildings": n, "skipped": skipped, "slivers_dropped": slivers_dropped,
                                       "footprints": footprints, "height_units": "metres, orthometric"})
        return n

    def _discard(self) -> None:
        for f in self._files.values():
            f.close()
        self._spool.cleanup()


def _spooled_array(z: zipfile.ZipFile, name: str, path: Path, dtype: type, width: int, keep: np.ndarray,
                   chunk: int) -> None:
    """Copy the rows of a spool file that ``keep`` marks into ``z`` as ``name.npy``, a chunk of
    rows at a time (``width`` 0: a flat array)."""
    shape = (int(keep.sum()), width) if width else (int(keep.sum()),)
    rows = np.memmap(path, dtype, "r", shape=(len(keep), width) if width else (len(keep),)) \
        if len(keep) else np.empty(shape, dtype)
    with z.open(_entry(name), "w", force_zip64=True) as f:
        np.lib.format.write_array_header_2_0(f, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
                                                 "fortran_order": False, "shape": shape})
        for a in range(0, len(keep), chunk):
            f.write(np.ascontiguousarray(rows[a:a + chunk][keep[a:a + chunk]]).tobytes())
    del rows


def _entry(name: str) -> zipfile.ZipInfo:
    # a fixed time (np.savez stamps the clock's): the same meshes make the same archive
    return zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))


def read_buildings(folder: Path, outlines: bool = True) -> BuildingLayer:
    """mesh's layer, every record in memory; ``outlines`` False leaves each record's outline and
    holes empty, for a reader that does not draw them (they are a record's largest lists)."""
    doc = load_json(folder / FILE)
    return BuildingLayer(list(iter_buildings(folder, outlines)), doc["skipped"], doc["slivers_dropped"],
                         doc["footprints"])


def iter_buildings(folder: Path, outlines: bool = True) -> Iterator[BuildingRecord]:
    """The records one at a time, in feature-ID order (``outlines`` as :func:`read_buildings`)."""
    for doc in iter_records(folder / RECORDS):
        if not outlines:
            doc["outline_en"], doc["outline_holes_en"] = [], []
        yield BuildingRecord.from_json(doc)


@dataclass(frozen=True)
class BuildingTable:
    """The values a stage needs of every building to choose, place and describe it, as columns
    in feature-ID order: id, height (m), centroid plan ENU E, N (m), each level's face count
    and Hausdorff distance to level 0 (m), building ``b``'s levels being rows
    ``level_start[b]:level_start[b + 1]``, and its feature properties (:meth:`properties`):
    measured heights as numbers, every other value as a code into that property's distinct
    values (a city's buildings share a few uses, floor counts and sources); and the ENU box of
    all of them (E, N, U min, then max; m; infinite without buildings)."""

    ids: list[str]
    height: np.ndarray
    centroid_en: np.ndarray
    level_faces: np.ndarray
    level_error: np.ndarray
    level_start: np.ndarray
    #: per property of FEATURE_PROPERTIES but id: (n,) float64 for the measured, else (n,) codes
    columns: dict[str, np.ndarray]
    #: the distinct values the codes stand for, per coded property
    values: dict[str, list[Any]]
    box: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)

    def errors(self, b: int) -> list[float]:
        """Building ``b``'s levels' Hausdorff distances to its level 0 (m)."""
        return self.level_error[self.level_start[b]:self.level_start[b + 1]].tolist()

    def properties(self, b: int) -> dict[str, Any]:
        """Building ``b``'s feature properties, as :meth:`BuildingRecord.feature_properties`."""
        out: dict[str, Any] = {}
        for name in FEATURE_PROPERTIES:
            if name == "id":
                out[name] = self.ids[b]
            elif name in self.values:
                out[name] = self.values[name][self.columns[name][b]]
            else:
                out[name] = float(self.columns[name][b])
        return out


def scan_buildings(folder: Path) -> BuildingTable:
    """mesh's layer as a :class:`BuildingTable`, read once line by line: a city's records are
    never all in memory (600,000 of them, without outlines, took 1.2 GB)."""
    ids: list[str] = []
    centroid = array("d")
    lo, hi = [np.inf] * 3, [-np.inf] * 3
    faces, errors, start = array("q"), array("d"), array("q", [0])
    measured = {name: array("d") for name in _MEASURED}
    coded = [name for name in FEATURE_PROPERTIES if name != "id" and name not in _MEASURED]
    codes = {name: array("I") for name in coded}
    default = {f.name: f.default for f in fields(BuildingRecord) if f.default is not MISSING}
    # keyed by type as well: True and 1 are equal keys to a dict
    seen: dict[str, dict[tuple[type, Any], int]] = {name: {} for name in coded}
    for doc in iter_records(folder / RECORDS):
        ids.append(doc["id"])
        centroid.extend(doc["centroid"]["en"])
        box = doc["bbox_enu"]
        lo, hi = list(map(min, lo, box[:3])), list(map(max, hi, box[3:]))
        for lv in doc["levels"]:
            faces.append(lv["faces"])
            errors.append(lv["error_m"])
        start.append(len(faces))
        for name in _MEASURED:
            measured[name].append(doc[name])
        for name in coded:
            value = doc.get(name, default.get(name))
            known = seen[name]
            codes[name].append(known.setdefault((type(value), value), len(known)))
    columns = {name: np.asarray(col, np.float64) for name, col in measured.items()}
    values = {}
    for name in coded:
        distinct = seen[name]
        columns[name] = np.asarray(codes[name], np.min_scalar_type(max(len(distinct) - 1, 0)))
        values[name] = [sys.intern(v) if isinstance(v, str) else v for _, v in distinct]
    return BuildingTable(ids, columns["height"], np.asarray(centroid, np.float64).reshape(-1, 2),
                         np.asarray(faces, np.int64), np.asarray(errors, np.float64), np.asarray(start, np.int64),
                         columns, values, np.array(lo + hi, np.float64))


def building_count(folder: Path) -> int:
    """How many buildings the layer has, read from its own fields."""
    return int(load_json(folder / FILE)["buildings"])


class BuildingMeshes:
    """The levels of detail in ``buildings.npz``: (feature ID, level) -> ENU vertices, faces and
    each face's surface code. A piece's arrays are read from the file when it is asked for (the
    archive stores them uncompressed): a city's pieces are 0.2 GB and more, and a stage uses a
    few at a time. The arrays returned are read-only."""

    def __init__(self, folder: Path) -> None:
        path = folder / MESHES
        with np.load(path) as d:
            self.vs, self.fs = d["vertex_start"], d["face_start"]
            # a sorted key per piece, not a dict: a city's million pieces took 150 MB as (int, int) keys
            key = d["piece_building"].astype(np.int64) * LEVEL_KEYS + d["piece_level"]
        self._order = np.argsort(key, kind="stable")
        self._keys = key[self._order]
        self._fd = os.open(path, os.O_RDONLY)
        weakref.finalize(self, os.close, self._fd)
        with zipfile.ZipFile(path) as z:
            self._at = {name: _stored_array(path, z, name) for name in ("vertices", "faces", "face_surface")}

    def __len__(self) -> int:
        """The number of pieces (one per building and level)."""
        return len(self._keys)

    def _piece(self, building: int, level: int) -> int:
        key = building * LEVEL_KEYS + level
        i = int(np.searchsorted(self._keys, key))
        if i == len(self._keys) or self._keys[i] != key:
            raise KeyError((building, level))
        return int(self._order[i])

    def _rows(self, name: str, start: int, stop: int) -> np.ndarray:
        offset, dtype, width = self._at[name]
        row = dtype.itemsize * max(width, 1)
        data = os.pread(self._fd, (stop - start) * row, offset + start * row)
        rows = np.frombuffer(data, dtype)
        return rows.reshape(-1, width) if width else rows

    def get(self, building: int, level: int) -> tuple[np.ndarray, np.ndarray]:
        p = self._piece(building, level)
        return (self._rows("vertices", int(self.vs[p]), int(self.vs[p + 1])),
                self._rows("faces", int(self.fs[p]), int(self.fs[p + 1])))

    def surface(self, building: int, level: int) -> np.ndarray:
        """The surface code of each face (:mod:`pipeline.core.surfaces`)."""
        p = self._piece(building, level)
        return self._rows("face_surface", int(self.fs[p]), int(self.fs[p + 1]))


def _stored_array(path: Path, z: zipfile.ZipFile, name: str) -> tuple[int, np.dtype, int]:
    """Where the data of ``name.npy`` in the archive ``z`` (at ``path``) starts, its dtype and
    row width (0: a flat array)."""
    info = z.getinfo(name + ".npy")
    if info.compress_type != zipfile.ZIP_STORED:
        raise ValueError(f"{path}: {name}.npy is compressed; mesh writes the pieces stored")
    with z.open(info) as f:
        version = np.lib.format.read_magic(f)
        if version not in ((1, 0), (2, 0)):
            raise ValueError(f"{path}: {name}.npy is in .npy format {version}, not 1.0 or 2.0")
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read(f)
        header = f.tell()
    if fortran or len(shape) not in (1, 2):
        raise ValueError(f"{path}: {name}.npy is not a C-ordered table of rows")
    with path.open("rb") as raw:
        raw.seek(info.header_offset)
        local = raw.read(30)
    # the local file header: 30 bytes, then the name and an extra field of the lengths it states
    data = info.header_offset + 30 + int.from_bytes(local[26:28], "little") + int.from_bytes(local[28:30], "little")
    return data + header, dtype, shape[1] if len(shape) == 2 else 0
