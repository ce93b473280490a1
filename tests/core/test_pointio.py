"""LAS/LAZ reading: every version and point format, and the lies real files tell."""

from __future__ import annotations

from pathlib import Path

import laspy
import numpy as np
import pytest

from pipeline.core.pointio import POINT_DTYPE, ChunkStore, iter_las_chunks, read_las_crs
from pipeline.errors import PointCloudError

# every point format each LAS version defines (1.0/1.1 files share 1.2's formats 0 and 1)
FORMATS = [("1.2", f) for f in range(4)] + [("1.3", f) for f in range(6)] + \
    [("1.4", f) for f in range(11)]


def write_las(path: Path, n: int = 1000, version: str = "1.4", fmt: int = 7, crs: str | None = "EPSG:5186",
              seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    header = laspy.LasHeader(point_format=fmt, version=version)
    header.scales = np.array([0.01, 0.01, 0.01])
    header.offsets = np.array([190000.0, 553000.0, 0.0])
    if crs:
        header.add_crs(__import__("pyproj").CRS.from_user_input(crs))
    las = laspy.LasData(header)
    xyz = np.column_stack([rng.uniform(190000, 190500, n), rng.uniform(553000, 553500, n),
                           rng.uniform(10, 60, n)]).round(2)
    las.x, las.y, las.z = xyz.T
    las.intensity = rng.integers(0, 4000, n)
    las.write(path)
    return xyz


@pytest.mark.timeout(60)
@pytest.mark.parametrize("version,fmt", FORMATS)
def test_every_version_and_format_reads(tmp_path, version, fmt):
    path = tmp_path / f"v{version}_f{fmt}.las"
    xyz = write_las(path, version=version, fmt=fmt, crs=None)
    chunks = list(iter_las_chunks(path, 300))
    got = np.concatenate(chunks)
    assert got.dtype == POINT_DTYPE and len(chunks) == 4
    assert np.allclose(np.column_stack([got["x"], got["y"], got["z"]]), xyz, atol=0.005)


@pytest.mark.timeout(60)
def test_laz_equals_las(tmp_path):
    write_las(tmp_path / "a.las")
    las = laspy.read(tmp_path / "a.las")
    las.write(tmp_path / "a.laz")
    a = np.concatenate(list(iter_las_chunks(tmp_path / "a.las", 400)))
    b = np.concatenate(list(iter_las_chunks(tmp_path / "a.laz", 400)))
    assert np.array_equal(a, b)


def test_crs_from_wkt_vlr(tmp_path):
    write_las(tmp_path / "c.las", crs="EPSG:5186")
    assert read_las_crs(tmp_path / "c.las")[0].to_epsg() == 5186
    write_las(tmp_path / "n.las", crs=None)
    assert read_las_crs(tmp_path / "n.las") == (None, None)


@pytest.mark.timeout(60)
def test_header_count_disagreeing_with_data(tmp_path):
    path = tmp_path / "short.las"
    write_las(path, n=1000)
    data = bytearray(path.read_bytes())
    header = laspy.read(path).header
    path.write_bytes(bytes(data[: header.offset_to_point_data + 500 * header.point_format.size]))
    with pytest.raises(PointCloudError) as e:
        list(iter_las_chunks(path, 300))
    assert "short.las" in str(e.value)


@pytest.mark.timeout(60)
def test_truncated_laz(tmp_path):
    path = tmp_path / "t.laz"
    write_las(tmp_path / "t.las", n=5000)
    laspy.read(tmp_path / "t.las").write(path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(PointCloudError) as e:
        list(iter_las_chunks(path, 1000))
    assert "t.laz" in str(e.value)


def test_zero_points_and_zero_scale(tmp_path):
    header = laspy.LasHeader(point_format=6, version="1.4")
    laspy.LasData(header).write(tmp_path / "empty.las")
    with pytest.raises(PointCloudError, match="zero points"):
        list(iter_las_chunks(tmp_path / "empty.las", 100))
    path = tmp_path / "scale.las"
    write_las(path, n=10)
    data = bytearray(path.read_bytes())
    data[131:139] = np.float64(0.0).tobytes()  # x scale factor at byte 131 of the LAS header
    path.write_bytes(bytes(data))
    with pytest.raises(PointCloudError, match="scale"):
        list(iter_las_chunks(path, 100))


def test_not_a_las_file(tmp_path):
    p = tmp_path / "junk.laz"
    p.write_bytes(b"this is not lidar")
    with pytest.raises(PointCloudError, match="junk.laz"):
        list(iter_las_chunks(p, 10))
    with pytest.raises(PointCloudError, match="not found"):
        list(iter_las_chunks(tmp_path / "missing.laz", 10))


def test_chunk_store_roundtrip(tmp_path):
    store = ChunkStore(tmp_path / "s")
    a = np.zeros(5, POINT_DTYPE)
    a["x"] = np.arange(5)
    store.write(0, a)
    store.write(1, a[:2])
    store.write_meta({"frame": "ENU"})
    assert len(store.read_all()) == 7 and store.meta()["frame"] == "ENU"
    other = ChunkStore(tmp_path / "t")
    other.write(0, a)
    # byte-identical for identical data: the runner's resume logic compares hashes
    assert (store.folder / "chunk_00000.npy").read_bytes() == (other.folder / "chunk_00000.npy").read_bytes()


def test_nan_coordinates(tmp_path):
    path = tmp_path / "nan.las"
    write_las(path, n=10)
    data = bytearray(path.read_bytes())
    data[131:139] = np.float64(np.nan).tobytes()
    path.write_bytes(bytes(data))
    with pytest.raises(PointCloudError, match="nan.las"):
        list(iter_las_chunks(path, 100))


def test_geotiff_unit_keys_are_honoured(tmp_path):
    from tests.fixtures_las import sample_points
    from tests.fixtures_las import write_las as write_keys
    ft = 1200.0 / 3937.0
    xyz = sample_points(500)
    path = write_keys(tmp_path / "ftus.las", xyz / ft, version="1.2", fmt=3,
                      geokeys={1024: 1, 3072: 5186, 3076: 9003, 4099: 9003})
    crs, z_factor = read_las_crs(path)
    assert z_factor == pytest.approx(ft)
    assert crs.axis_info[0].unit_name == "US survey foot"
    import pyproj
    x, y = pyproj.Transformer.from_crs(crs, "EPSG:5186", always_xy=True).transform(xyz[:, 0] / ft,
                                                                                   xyz[:, 1] / ft)
    assert np.abs(x - xyz[:, 0]).max() < 1e-3 and np.abs(y - xyz[:, 1]).max() < 1e-3


def test_las_extra_dimensions_are_kept(tmp_path):
    path = tmp_path / "extra.las"
    header = laspy.LasHeader(point_format=6, version="1.4")
    header.scales = np.array([0.01, 0.01, 0.01])
    header.add_extra_dim(laspy.ExtraBytesParams(name="range", type=np.uint16))
    header.add_extra_dim(laspy.ExtraBytesParams(name="echo_width", type=np.int32, scales=np.array([0.1]),
                                                offsets=np.array([0.0])))
    header.add_extra_dim(laspy.ExtraBytesParams(name="normal", type="3f4"))
    las = laspy.LasData(header)
    n = 500
    rng = np.random.default_rng(3)
    las.x, las.y, las.z = rng.uniform(0, 100, (3, n)).round(2)
    las.range = np.arange(n, dtype=np.uint16)
    las.echo_width = np.arange(n) * 0.1
    las.normal = rng.normal(size=(n, 3)).astype(np.float32)
    las.write(path)
    rec = np.concatenate(list(iter_las_chunks(path, 128)))
    assert list(rec.dtype.names[len(POINT_DTYPE.names):]) == ["range", "echo_width", "normal_0", "normal_1",
                                                             "normal_2"]
    assert np.array_equal(rec["range"], np.arange(n))
    assert np.allclose(rec["echo_width"], np.arange(n) * 0.1)
    assert np.array_equal(rec["normal_2"], np.asarray(las.normal)[:, 2])


def _ply(path: Path, n: int, text: bool) -> np.ndarray:
    from plyfile import PlyData, PlyElement

    rng = np.random.default_rng(5)
    v = np.zeros(n, [("x", "f8"), ("y", "f8"), ("z", "f8"), ("red", "u1"), ("green", "u1"), ("blue", "u1"),
                     ("scalar_intensity", "f4"), ("reflectance", "f4")])
    v["x"], v["y"], v["z"] = rng.uniform(0, 50, (3, n))
    v["red"], v["green"], v["blue"] = 255, 128, 0
    v["scalar_intensity"] = rng.integers(0, 1000, n)
    v["reflectance"] = rng.normal(size=n)
    PlyData([PlyElement.describe(v, "vertex")], text=text).write(str(path))
    return v


@pytest.mark.parametrize("text", [False, True])
def test_ply_reads_in_chunks_with_extras(tmp_path, text):
    from pipeline.core.pointio import iter_ply_chunks

    v = _ply(tmp_path / "c.ply", 1000, text)
    chunks = list(iter_ply_chunks(tmp_path / "c.ply", 300))
    assert [len(c) for c in chunks] == [300, 300, 300, 100]
    rec = np.concatenate(chunks)
    assert np.allclose(rec["x"], v["x"]) and np.allclose(rec["z"], v["z"])
    assert np.all(rec["red"] == 255 * 257) and np.all(rec["green"] == 128 * 257)
    assert np.array_equal(rec["intensity"], v["scalar_intensity"].astype(np.uint16))
    assert np.allclose(rec["reflectance"], v["reflectance"])


def test_text_points_with_a_column_mapping(tmp_path):
    from pipeline.core.pointio import iter_text_chunks

    rng = np.random.default_rng(7)
    xyz = rng.uniform(0, 100, (700, 3)).round(3)
    cls = rng.integers(1, 7, 700)
    path = tmp_path / "pts.csv"
    lines = ["E,N,H,class,amplitude"] + [f"{a},{b},{c},{k},{k * 1.5}" for (a, b, c), k in zip(xyz, cls, strict=True)]
    path.write_text("\n".join(lines) + "\n")
    cols = {"x": "E", "y": "N", "z": "H", "classification": "class", "amplitude": "amplitude"}
    rec = np.concatenate(list(iter_text_chunks(path, 256, cols, delimiter=None, header=True)))
    assert np.allclose(np.column_stack([rec["x"], rec["y"], rec["z"]]), xyz)
    assert np.array_equal(rec["classification"], cls) and np.allclose(rec["amplitude"], cls * 1.5)
    xyz_path = tmp_path / "pts.xyz"
    xyz_path.write_text("\n".join(f"{a} {b}  {c}" for a, b, c in xyz) + "\n")
    rec = np.concatenate(list(iter_text_chunks(xyz_path, 256, {"x": 0, "y": 1, "z": 2}, delimiter=None,
                                               header=False)))
    assert np.allclose(rec["z"], xyz[:, 2]) and np.all(rec["number_of_returns"] == 1)


def test_bad_text_and_ply_name_the_file(tmp_path):
    from pipeline.core.pointio import iter_ply_chunks, iter_text_chunks

    bad = tmp_path / "bad.xyz"
    bad.write_text("1 2 3\n4 five 6\n")
    with pytest.raises(PointCloudError, match="bad.xyz"):
        list(iter_text_chunks(bad, 100, {"x": 0, "y": 1, "z": 2}, delimiter=None, header=False))
    nan = tmp_path / "nan.xyz"
    nan.write_text("1 2 3\n4 nan 6\n")
    with pytest.raises(PointCloudError, match="non-finite"):
        list(iter_text_chunks(nan, 100, {"x": 0, "y": 1, "z": 2}, delimiter=None, header=False))
    trunc = tmp_path / "t.ply"
    _ply(trunc, 1000, False)
    trunc.write_bytes(trunc.read_bytes()[:-5000])
    with pytest.raises(PointCloudError, match="t.ply"):
        list(iter_ply_chunks(trunc, 100))


def test_copc_is_recognised_and_read_whole(tmp_path):
    """A COPC file written by copc-lib (an independent writer) reads like any LAZ and holds what
    laspy's own COPC reader finds through the octree hierarchy."""
    import copclib

    from pipeline.core.pointio import is_copc, las_checked_count, las_seekable

    path = tmp_path / "cloud.copc.laz"
    writer = copclib.FileWriter(str(path), copclib.CopcConfigWriter(
        6, copclib.Vector3(0.01, 0.01, 0.01), copclib.Vector3(190000, 553000, 0)))
    header = writer.copc_config.las_header
    rng = np.random.default_rng(2)
    written = []
    for key in [copclib.VoxelKey(0, 0, 0, 0), copclib.VoxelKey(1, 0, 0, 0), copclib.VoxelKey(1, 1, 0, 0)]:
        pts = copclib.Points(header)
        xyz = np.column_stack([190000 + rng.uniform(0, 100, 400), 553000 + rng.uniform(0, 100, 400),
                               rng.uniform(0, 30, 400)]).round(2)
        for p in xyz:
            q = pts.CreatePoint()
            q.x, q.y, q.z = p
            pts.AddPoint(q)
        writer.AddNode(key, pts)
        written.append(xyz)
    writer.Close()
    assert is_copc(path) and las_checked_count(path) == 1200
    # one LAZ chunk per octree node: laspy cannot seek in it, so it is read front to back
    assert not las_seekable(path)
    rec = np.concatenate(list(iter_las_chunks(path, 500)))
    got = np.sort(np.round(rec["x"] * 100).astype(np.int64))
    want = np.sort(np.round(np.concatenate(written)[:, 0] * 100).astype(np.int64))
    assert np.array_equal(got, want)
    with laspy.CopcReader.open(str(path)) as reader:
        via_hierarchy = reader.query()
    assert np.array_equal(np.sort(np.round(np.asarray(via_hierarchy.x) * 100).astype(np.int64)), want)


def test_laz_ranges_equal_a_front_to_back_read(tmp_path):
    from pipeline.core.pointio import iter_las_range, las_seekable

    write_las(tmp_path / "r.las", n=120_000)
    laspy.read(tmp_path / "r.las").write(tmp_path / "r.laz")  # fixed 50 000-point chunks
    for name in ("r.las", "r.laz"):
        assert las_seekable(tmp_path / name)
        whole = np.concatenate(list(iter_las_chunks(tmp_path / name, 1_000_000)))
        # ranges across LAZ chunks, each read in pieces that end inside chunks too
        pieces = [rec for s in range(0, 120_000, 33_333)
                  for rec in iter_las_range(tmp_path / name, s, min(33_333, 120_000 - s), piece=7_000)]
        assert max(len(p) for p in pieces) == 7_000
        assert np.array_equal(whole, np.concatenate(pieces))
