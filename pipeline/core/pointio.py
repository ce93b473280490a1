"""Point-cloud reading and the on-disk chunk format shared by the stages.

Readers stream: :func:`iter_las_chunks` yields fixed-size chunks and never holds the whole file;
:func:`iter_las_range` reads one range, so several processes can share a file;
:func:`las_raw_points` maps an uncompressed file's records without decoding them.
laspy only logs a header point count that disagrees with the data; here it is an error, as are
a zero scale, NaN coordinates and empty files.

Chunks on disk are ``.npy`` files of :data:`POINT_DTYPE` (deterministic bytes, memory-mappable).
The frame of ``x, y, z`` depends on the stage that wrote them (source CRS after ingest, ENU after
georef); the chunk folder's ``meta.json`` says which.
"""

from __future__ import annotations

import json
import struct
from datetime import date
from collections.abc import Iterator, Sequence
from pathlib import Path

import laspy
import numpy as np
import pyproj

from pipeline.core.arrayops import field_bounds
from pipeline.core.geodesy import LINEAR_UNITS, horizontal_unit_factor, with_linear_unit
from pipeline.errors import PointCloudError, UnreadableCRSError

POINT_DTYPE = np.dtype([
    ("x", "<f8"), ("y", "<f8"), ("z", "<f8"),
    ("intensity", "<u2"), ("return_number", "u1"), ("number_of_returns", "u1"),
    ("classification", "u1"), ("red", "<u2"), ("green", "<u2"), ("blue", "<u2"),
])

#: ASPRS classes
UNCLASSIFIED, GROUND, LOW_VEGETATION, MEDIUM_VEGETATION, HIGH_VEGETATION = 1, 2, 3, 4, 5
BUILDING, LOW_NOISE, HIGH_NOISE = 6, 7, 18


#: LAS versions this reader supports (major, minor)
SUPPORTED_VERSIONS = {(1, 0), (1, 1), (1, 2), (1, 3), (1, 4)}


#: the smallest VLR and extended VLR (their headers alone), bytes
VLR_HEADER, EVLR_HEADER = 54, 60


def _check_layout(path: Path, head: bytes) -> None:
    """PointCloudError when the header's offsets and record counts cannot fit in the file: laspy
    would otherwise try to read billions of records a corrupt count promises."""
    size = path.stat().st_size
    header_size, data_offset, vlrs = struct.unpack_from("<HII", head, 94)
    problems = []
    if header_size > size or data_offset > size:
        problems.append(f"its header puts the points at byte {data_offset:,}")
    if vlrs * VLR_HEADER > max(data_offset - header_size, 0):
        problems.append(f"its header announces {vlrs:,} VLRs before the points at byte {data_offset:,}")
    if head[25] >= 4 and len(head) >= 247:
        evlr_start, evlrs = struct.unpack_from("<QI", head, 235)
        if evlrs and not (data_offset <= evlr_start <= size and evlrs * EVLR_HEADER <= size - evlr_start):
            problems.append(f"its header announces {evlrs:,} extended VLRs from byte {evlr_start:,}")
        elif evlrs:
            problems += _evlr_problems(path, evlr_start, evlrs, size)
    if problems:
        raise PointCloudError(f"corrupt header: {problems[0]}, but the file has {size:,} bytes", path=path)


def _evlr_problems(path: Path, start: int, count: int, size: int) -> list[str]:
    """Extended VLRs whose 64-bit record lengths run past the end of the file."""
    with open(path, "rb") as f:
        at = start
        for k in range(count):
            f.seek(at)
            header = f.read(EVLR_HEADER)
            if len(header) < EVLR_HEADER:
                return [f"its extended VLR {k} starts past the end"]
            length = struct.unpack_from("<Q", header, 20)[0]
            at += EVLR_HEADER + length
            if at > size:
                return [f"its extended VLR {k} claims {length:,} bytes"]
    return []


def _check_chunk_table(path: Path, header: laspy.LasHeader) -> None:
    """A LAZ file's chunk table tells how many chunks of points it holds: a header point count
    below what all but the last chunk hold would silently drop the rest."""
    chunk = next((int(struct.unpack_from("<I", v.record_data, 12)[0]) for v in header.vlrs
                  if v.user_id == "laszip encoded" and v.record_id == 22204 and len(v.record_data) >= 16), None)
    if chunk is None or chunk == VARIABLE_CHUNKS:
        return
    size = path.stat().st_size
    with open(path, "rb") as f:
        f.seek(header.offset_to_point_data)
        raw = f.read(8)
        table = struct.unpack("<q", raw)[0] if len(raw) == 8 else -1
        if not 0 < table <= size - 8:
            return  # no table written (a streaming writer): nothing to compare with
        f.seek(table)
        _, chunks = struct.unpack("<II", f.read(8))
    least = (chunks - 1) * chunk + 1
    if chunks and header.point_count < least:
        raise PointCloudError(f"header claims {header.point_count:,} points but the file holds at least {least:,} "
                              f"({chunks} compressed chunks of {chunk:,}): reading it would drop the rest; fix the "
                              "header's point count", path=path)


#: the LAZ layers a point record is made from. Point formats 6-10 compress each field group in a
#: layer of its own, so GPS time, scan angle, user data, point source, flags, NIR and waveform
#: stay undecoded: 8 % of the decoding time of a format 7 file with all of them. Earlier
#: formats compress whole points, and laspy decodes those whole whatever is asked.
RECORD_LAYERS = (laspy.DecompressionSelection.XY_RETURNS_CHANNEL | laspy.DecompressionSelection.Z
                 | laspy.DecompressionSelection.CLASSIFICATION | laspy.DecompressionSelection.INTENSITY
                 | laspy.DecompressionSelection.RGB | laspy.DecompressionSelection.ALL_EXTRA_BYTES)


def _open(path: Path, layers: laspy.DecompressionSelection | None = None) -> laspy.LasReader:
    """A reader of ``path`` after the checks of its header; ``layers``: the LAZ layers its
    points are read with (all by default)."""
    if not path.is_file():
        raise PointCloudError("point cloud file not found", path=path)
    with open(path, "rb") as f:
        head = f.read(375)
    if len(head) < 227 or head[:4] != b"LASF":
        raise PointCloudError("not a LAS/LAZ file (no LASF signature)", path=path)
    if (head[24], head[25]) not in SUPPORTED_VERSIONS:
        raise PointCloudError(f"unsupported LAS version {head[24]}.{head[25]} (supported: 1.0 to 1.4)",
                              path=path)
    _check_layout(path, head)
    try:
        return laspy.open(path) if layers is None else laspy.open(path, decompression_selection=layers)
    except (laspy.errors.LaspyException, OSError, ValueError) as exc:
        raise PointCloudError(f"not a readable LAS/LAZ file ({exc})", path=path) from None


#: GeoTIFF keys for the horizontal and vertical linear units
PROJ_LINEAR_UNITS_KEY, VERTICAL_UNITS_KEY = 3076, 4099


def _geokeys(header: laspy.LasHeader) -> dict[int, int]:
    for vlr in header.vlrs:
        if isinstance(vlr, laspy.vlrs.known.GeoKeyDirectoryVlr):
            return {int(k.id): int(k.value_offset) for k in vlr.geo_keys if k.tiff_tag_location == 0}
    return {}


def read_las_crs(path: Path) -> tuple[pyproj.CRS | None, float | None]:
    """(CRS, metres per z unit named by a VerticalUnitsGeoKey) from the file's WKT or GeoTIFF-key
    VLRs; (None, None) without them. The second is None when no key names the z unit: heights
    are then in the CRS's height unit (:func:`~pipeline.core.geodesy.vertical_unit`).

    GeoTIFF unit keys that override the named EPSG code's units (ProjLinearUnitsGeoKey,
    VerticalUnitsGeoKey: a "feet" file labelled with a metre EPSG code) are honoured. A CRS
    record that cannot be parsed raises :class:`UnreadableCRSError`.
    """
    with _open(path) as reader:
        try:
            crs = reader.header.parse_crs()
        except Exception as exc:  # laspy raises assorted errors on malformed CRS VLRs
            raise UnreadableCRSError(f"unreadable CRS record ({str(exc) or type(exc).__name__}); set the "
                                     "input's crs in the config (e.g. crs: EPSG:5186) to override it",
                                     path=path) from None
        keys = _geokeys(reader.header)
    for key in (PROJ_LINEAR_UNITS_KEY, VERTICAL_UNITS_KEY):
        if key in keys and keys[key] not in LINEAR_UNITS:
            raise PointCloudError(f"GeoTIFF key {key} names unsupported unit code {keys[key]}", path=path)
    if crs is not None and PROJ_LINEAR_UNITS_KEY in keys:
        code = keys[PROJ_LINEAR_UNITS_KEY]
        if crs.is_projected and abs(LINEAR_UNITS[code][1] - horizontal_unit_factor(crs)) > 1e-12:
            crs = with_linear_unit(crs, code)
    z_unit = LINEAR_UNITS[keys[VERTICAL_UNITS_KEY]][1] if VERTICAL_UNITS_KEY in keys else None
    return crs, z_unit


def las_extra_dims(path: Path) -> list[tuple[str, str]]:
    """(name, numpy type string) of the file's scalar ExtraBytes dimensions (array ones are split
    into ``name_0``, ``name_1``, ...)."""
    with _open(path) as reader:
        pf = reader.header.point_format
        out = []
        for dim in pf.extra_dimensions:
            base = np.dtype(dim.dtype)
            # laspy applies an ExtraBytes scale/offset: the values are then float64
            kind = "<f8" if dim.scales is not None else base.base.str
            if base.shape:
                out += [(f"{dim.name}_{i}", kind) for i in range(base.shape[0])]
            else:
                out.append((dim.name, kind))
        return out


def las_creation_date(path: Path) -> date | None:
    """The header's file creation day (LAS: the day the data were collected or processed), None
    when the header leaves it 0 (unknown)."""
    with _open(path) as reader:
        return reader.header.creation_date


def is_copc(path: Path) -> bool:
    """True for a Cloud Optimized Point Cloud (a LAZ 1.4 file with the "copc" info VLR)."""
    with _open(path) as reader:
        return any(v.user_id == "copc" and v.record_id == 1 for v in reader.header.vlrs)


def record_dtype(extra: list[tuple[str, str]]) -> np.dtype:
    """:data:`POINT_DTYPE` followed by the extra dimensions."""
    return np.dtype(POINT_DTYPE.descr + [(n, t) for n, t in extra])


def _to_records(points: laspy.ScaleAwarePointRecord, extra: Sequence[tuple[str, str]] = ()) -> np.ndarray:
    out = np.empty(len(points), record_dtype(list(extra)))
    for name, _ in extra:
        base, _, i = name.rpartition("_")
        if name in points.point_format.extra_dimension_names:
            out[name] = points[name]
        else:  # a component of an array dimension
            out[name] = np.asarray(points[base])[:, int(i)]
    out["x"], out["y"], out["z"] = points.x, points.y, points.z
    out["intensity"] = points.intensity
    out["return_number"] = points.return_number
    out["number_of_returns"] = points.number_of_returns
    out["classification"] = points.classification
    names = set(points.point_format.dimension_names)
    for c in ("red", "green", "blue"):
        out[c] = points[c] if c in names else 0
    return out


def point_format_of(path: Path, declared: str = "auto") -> str:
    """'las' (LAS, LAZ, COPC), 'ply' or 'text' (XYZ, CSV, TXT, PTS) from ``declared`` or the suffix."""
    if declared != "auto":
        return declared
    suffix = path.suffix.lower()
    if suffix in (".las", ".laz"):
        return "las"
    if suffix == ".ply":
        return "ply"
    if suffix in (".xyz", ".csv", ".txt", ".pts"):
        return "text"
    raise PointCloudError(f"unknown point cloud format {suffix!r}: set the input's format "
                          "(las, ply or text)", path=path)


def las_checked_count(path: str | Path) -> int:
    """The header's point count after the checks a reader can make before reading: a non-zero
    scale, at least one point, and (for uncompressed files) as many point records as it says:
    fewer is a truncated file, more a header whose count would silently drop the rest."""
    path = Path(path)
    with _open(path) as reader:
        header = reader.header
        if np.any(header.scales == 0):
            raise PointCloudError(f"header scale is zero (x, y, z scales {', '.join(f'{s:g}' for s in header.scales)})",
                                  path=path)
        expected = int(header.point_count)
        if expected == 0:
            raise PointCloudError("file holds zero points", path=path)
        if header.are_points_compressed:
            _check_chunk_table(path, header)
        if not header.are_points_compressed:
            size = header.point_format.size
            # LAS 1.3 keeps waveform data and LAS 1.4 extended VLRs after the points
            end = path.stat().st_size
            starts = [int(getattr(header, "start_of_waveform_data_packet_record", 0) or 0)]
            if getattr(header, "number_of_evlrs", 0):
                starts.append(int(getattr(header, "start_of_first_evlr", 0) or 0))
            end = min([end, *(s for s in starts if header.offset_to_point_data < s < end)])
            held = (end - header.offset_to_point_data) // size
            if held < expected:
                raise PointCloudError(f"header claims {expected} points but the file holds {held}", path=path)
            if held > expected:
                raise PointCloudError(f"header claims {expected:,} points but the file holds {held:,} point records: "
                                      f"reading it would drop {held - expected:,}; fix the header's point count "
                                      "(e.g. lasinfo -repair)", path=path)
    return expected


#: LASzip's chunk size for variable-size chunks (COPC writes one chunk per octree node)
VARIABLE_CHUNKS = 0xFFFFFFFF


def las_seekable(path: str | Path) -> bool:
    """True when points can be read from any index: uncompressed LAS, or LAZ with fixed-size
    chunks. laspy's seek in LAZ assumes fixed chunks and returns wrong points otherwise (COPC)."""
    with _open(Path(path)) as reader:
        if not reader.header.are_points_compressed:
            return True
        for vlr in reader.header.vlrs:
            if vlr.user_id == "laszip encoded" and vlr.record_id == 22204:
                return int(np.frombuffer(vlr.record_data[12:16], "<u4")[0]) != VARIABLE_CHUNKS
    return False


#: points decoded at a time within a range: the decode buffer and the records of a piece stay
#: under glibc's 8 MiB mmap threshold (see pipeline.core.executor), so each piece reuses the
#: heap the last one freed. A whole 1 M-point range took 36 + 35 MB of fresh pages a task, which
#: cost a virtual machine with free page reporting 1.0-2.1 of the 20 M-point LAZ's 7.5 CPU-s.
RANGE_PIECE = 200_000


def iter_las_range(path: str | Path, start: int, count: int, piece: int | None = None) -> Iterator[np.ndarray]:
    """Records of points ``start`` .. ``start + count`` of a seekable LAS/LAZ file (see
    :func:`las_seekable`), ``piece`` (default :data:`RANGE_PIECE`) points at a time: one seek,
    then reads in file order, so several processes can share a file."""
    path = Path(path)
    piece = piece or RANGE_PIECE
    if not las_seekable(path):
        raise ValueError(f"{path}: variable-size LAZ chunks cannot be read by range")
    extra = las_extra_dims(path)
    with _open(path, RECORD_LAYERS) as reader:
        done = 0
        while done < count:
            try:
                if done == 0:
                    reader.seek(start)
                points = reader.read_points(min(piece, count - done))
            except Exception as exc:  # lazrs/laspy raise many types on corrupt data
                raise PointCloudError(f"truncated or corrupt point data after {start + done} points ({exc})",
                                      path=path) from None
            if len(points) == 0:
                raise PointCloudError(f"header claims {int(reader.header.point_count)} points but the file "
                                      f"holds {start + done}", path=path)
            rec = _to_records(points, extra)
            _check_finite(rec, start + done, path)
            done += len(rec)
            yield rec


def point_ranges(total: int, size: int) -> list[tuple[int, int]]:
    """(start, count) of the consecutive ranges of at most ``size`` points that cover ``total``."""
    return [(start, min(size, total - start)) for start in range(0, total, size)]


def las_in_place(path: str | Path) -> bool:
    """True for an uncompressed LAS file: its point records can be mapped from the file and
    read where they lie, so a copy of them (ingest's chunks) would only cost a write and a read."""
    with _open(Path(path)) as reader:
        return not reader.header.are_points_compressed


def las_raw_points(path: str | Path, start: int, count: int, stride: int = 1) -> laspy.ScaleAwarePointRecord:
    """Points ``start`` .. ``start + count`` (every ``stride``-th) of an uncompressed LAS file,
    undecoded: a view of the file's bytes through a memory map, so only what is used is read.
    ``.X``/``.Y``/``.Z`` are the stored integers, ``.x``/``.y``/``.z`` scaled to the file's CRS
    units. Call :func:`las_checked_count` first: it checks the file holds the points."""
    path = Path(path)
    with _open(path) as reader:
        header = reader.header
    if header.are_points_compressed:
        raise ValueError(f"{path}: compressed points cannot be mapped")
    raw = np.memmap(path, dtype=header.point_format.dtype(), mode="r", offset=header.offset_to_point_data,
                    shape=(int(header.point_count),))
    return laspy.ScaleAwarePointRecord(raw[start:start + count:stride], header.point_format, header.scales,
                                       header.offsets)


def las_records(path: str | Path, start: int, count: int) -> np.ndarray:
    """The records :func:`iter_las_range` yields, of an uncompressed LAS file, in one array
    decoded from its memory map (no copy of the file's bytes in between)."""
    path = Path(path)
    return _to_records(las_raw_points(path, start, count), las_extra_dims(path))


def las_range_stats(path: str | Path, start: int, count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x, y, z minimum, maximum in the file's CRS units; class histogram of 256) of points
    ``start`` .. ``start + count`` of an uncompressed LAS file, from the stored integers: the
    scale is monotonic, so the bounds are those of the decoded coordinates, bit for bit."""
    path = Path(path)
    points = las_raw_points(path, start, count)
    scales, offsets = points.scales, points.offsets
    if not np.all(np.isfinite(scales) & np.isfinite(offsets)):
        raise PointCloudError(f"non-finite coordinates near point {start} (header scale or offset is not finite)",
                              path=path)
    raw_lo = np.array([points.array[n].min() for n in ("X", "Y", "Z")], np.float64)
    raw_hi = np.array([points.array[n].max() for n in ("X", "Y", "Z")], np.float64)
    a, b = raw_lo * scales + offsets, raw_hi * scales + offsets
    classes = np.bincount(np.asarray(points.classification, np.uint8), minlength=256)
    return np.minimum(a, b), np.maximum(a, b), classes


def iter_las_chunks(path: str | Path, chunk_size: int) -> Iterator[np.ndarray]:
    """Yield chunks of :func:`record_dtype` records from a LAS/LAZ/COPC file (coordinates in the
    file's CRS units; extra dimensions after the standard fields).

    Raises :class:`PointCloudError` for a zero scale, zero points, NaN/inf coordinates, a
    truncated file or a header count that disagrees with the points actually read.
    """
    path = Path(path)
    expected = las_checked_count(path)
    extra = las_extra_dims(path)
    with _open(path, RECORD_LAYERS) as reader:
        seen = 0
        try:
            for points in reader.chunk_iterator(chunk_size):
                if len(points) == 0:
                    break
                rec = _to_records(points, extra)
                _check_finite(rec, seen, path)
                seen += len(rec)
                yield rec
        except PointCloudError:
            raise
        except Exception as exc:  # lazrs/laspy raise many types on corrupt data
            raise PointCloudError(f"truncated or corrupt point data after {seen} points ({exc})",
                                  path=path) from None
        if seen != expected:
            raise PointCloudError(f"header claims {expected} points but the file holds {seen}",
                                  path=path)


def _check_finite(rec: np.ndarray, seen: int, path: Path) -> None:
    # a NaN makes its column's minimum NaN and an infinity shows as an extreme: two reductions a
    # column, no (N,) temporaries
    if len(rec) and not np.all(np.isfinite(np.concatenate(field_bounds(rec)))):
        raise PointCloudError(f"non-finite coordinates near point {seen}", path=path)


#: PLY / text field names taken as the standard attributes (first match wins)
_ALIASES = {"intensity": ("intensity", "scalar_intensity"),
            "classification": ("classification", "scalar_classification", "class"),
            "return_number": ("return_number", "scalar_return_number"),
            "number_of_returns": ("number_of_returns", "scalar_number_of_returns"),
            "red": ("red", "r"), "green": ("green", "g"), "blue": ("blue", "b")}


def _fill_standard(out: np.ndarray, get: dict[str, np.ndarray]) -> None:
    """Standard fields from named source arrays; 8-bit colours are widened to LAS's 16 bits."""
    for field, names in _ALIASES.items():
        src = next((get[n] for n in names if n in get), None)
        if src is None:
            out[field] = 1 if field in ("return_number", "number_of_returns") else 0
        elif field in ("red", "green", "blue") and np.asarray(src).dtype.itemsize == 1:
            out[field] = np.asarray(src, np.uint16) * 257
        else:
            out[field] = src


def _ply_vertices(path: Path) -> tuple[np.ndarray, list[tuple[str, str]]]:
    """The vertex records of a PLY file (memory-mapped when binary) and its extra dimensions:
    every scalar vertex property that is not a coordinate or a standard attribute."""
    from plyfile import PlyData

    if not path.is_file():
        raise PointCloudError("point cloud file not found", path=path)
    try:
        data = PlyData.read(path, mmap=True)
        vertex = data["vertex"].data
    except KeyError:
        raise PointCloudError("PLY file has no vertex element", path=path) from None
    except Exception as exc:  # plyfile raises several types on malformed or truncated files
        raise PointCloudError(f"not a readable PLY point cloud ({type(exc).__name__}: {exc})",
                              path=path) from None
    names = set(vertex.dtype.names or ())
    if not {"x", "y", "z"} <= names:
        raise PointCloudError("PLY vertex element needs x, y and z properties", path=path)
    standard = {n for v in _ALIASES.values() for n in v} | {"x", "y", "z"}
    extra = [(n, vertex.dtype[n].newbyteorder("<").str) for n in vertex.dtype.names
             if n not in standard and vertex.dtype[n].shape == () and vertex.dtype[n].kind in "iuf"]
    return vertex, extra


def iter_ply_chunks(path: str | Path, chunk_size: int) -> Iterator[np.ndarray]:
    """Yield record chunks from a PLY point cloud (binary files are memory-mapped and streamed)."""
    path = Path(path)
    vertex, extra = _ply_vertices(path)
    if len(vertex) == 0:
        raise PointCloudError("file holds zero points", path=path)
    for start in range(0, len(vertex), chunk_size):
        part = vertex[start:start + chunk_size]
        out = np.empty(len(part), record_dtype(extra))
        out["x"], out["y"], out["z"] = part["x"], part["y"], part["z"]
        _fill_standard(out, {n: part[n] for n in part.dtype.names or ()})
        for name, _ in extra:
            out[name] = part[name]
        _check_finite(out, start, path)
        yield out


def iter_text_chunks(path: str | Path, chunk_size: int, columns: dict[str, int | str], *,
                     delimiter: str | None, header: bool) -> Iterator[np.ndarray]:
    """Yield record chunks from an XYZ/CSV text file; ``columns`` maps field names (x, y, z, any
    standard attribute, anything else as a float64 extra dimension) to column numbers (from 0)
    or, with ``header``, column names."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise PointCloudError("point cloud file not found", path=path)
    missing = {"x", "y", "z"} - set(columns)
    if missing:
        raise PointCloudError(f"the column mapping lacks {', '.join(sorted(missing))}", path=path)
    extra = [(n, "<f8") for n in columns if n not in {"x", "y", "z"} and n not in _ALIASES]
    sep = delimiter if delimiter is not None else ("," if path.suffix.lower() == ".csv" else r"\s+")
    seen = 0
    try:
        reader = pd.read_csv(path, sep=sep, header=0 if header else None, chunksize=chunk_size,
                             comment="#", engine="c")
        for frame in reader:
            data = {n: pd.to_numeric(frame.iloc[:, k] if isinstance(k, int) else frame[k],
                                     errors="raise").to_numpy() for n, k in columns.items()}
            out = np.empty(len(frame), record_dtype(extra))
            out["x"], out["y"], out["z"] = data["x"], data["y"], data["z"]
            _fill_standard(out, data)
            for name, _ in extra:
                out[name] = data[name]
            _check_finite(out, seen, path)
            seen += len(out)
            yield out
    except PointCloudError:
        raise
    except Exception as exc:  # pandas raises many types on bad rows and missing columns
        raise PointCloudError(f"unreadable text point data after {seen} points ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else ''})", path=path) from None
    if seen == 0:
        raise PointCloudError("file holds zero points", path=path)


class ChunkStore:
    """A folder of point chunks (``chunk_00000.npy`` ...) plus ``meta.json``."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    def write(self, index: int, chunk: np.ndarray) -> Path:
        """Write chunk ``index`` (records of :func:`record_dtype`); returns its path."""
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"chunk_{index:05d}.npy"
        np.save(path, np.ascontiguousarray(chunk))
        return path

    def write_meta(self, meta: dict) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "meta.json").write_text(json.dumps(meta, indent=1, sort_keys=True))

    def meta(self) -> dict:
        return json.loads((self.folder / "meta.json").read_text())

    def paths(self) -> list[Path]:
        return sorted(self.folder.glob("chunk_*.npy"))

    def __iter__(self) -> Iterator[np.ndarray]:
        for p in self.paths():
            yield np.load(p, mmap_mode="r")

    def read_all(self) -> np.ndarray:
        """Every chunk concatenated (whole-cloud read: only for clouds known to fit in memory)."""
        parts = [np.load(p) for p in self.paths()]
        return np.concatenate(parts) if parts else np.empty(0, POINT_DTYPE)
