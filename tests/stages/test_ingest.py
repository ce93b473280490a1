"""ingest: memory follows the chunk size, not the file; formats are told apart."""

from __future__ import annotations

import tracemalloc

import laspy
import numpy as np
import pytest

from pipeline.config import load_config
from pipeline.core.executor import InlineExecutor
from pipeline.core.pointio import ChunkStore
from pipeline.core.progress import Reporter
from pipeline.stage import StageContext
from pipeline.stages import ingest
from tests.conftest import building_docs


def _write_big_las(path, n: int, block: int = 2_000_000) -> None:
    header = laspy.LasHeader(point_format=0, version="1.2")
    header.scales = np.array([0.01, 0.01, 0.01])
    header.offsets = np.array([190000.0, 553000.0, 0.0])
    with laspy.open(path, mode="w", header=header) as w:
        for s in range(0, n, block):
            m = min(block, n - s)
            rec = laspy.ScaleAwarePointRecord.zeros(m, header=header)
            k = np.arange(s, s + m)
            rec.X, rec.Y, rec.Z = k % 100_000, k // 100_000, k % 5000
            w.write_points(rec)


@pytest.mark.slow
def test_ingest_memory_follows_the_chunk_size_not_the_file(tmp_path):
    n, chunk = 20_000_000, 250_000
    src = tmp_path / "big.las"
    _write_big_las(src, n)
    cfg_path = tmp_path / "c.yaml"
    cfg_path.write_text(f"inputs: {{pointclouds: [{{path: {src}, crs: 'EPSG:5186+5773'}}]}}\n"
                        f"stages: {{ingest: {{chunk_size: {chunk}}}}}\n")
    cfg = load_config(cfg_path)
    out = tmp_path / "out"
    out.mkdir()
    # inline: every chunk is read in this process, where tracemalloc sees it
    ctx = StageContext(tmp_path, out, {}, Reporter(quiet=True), executor_factory=InlineExecutor)
    tracemalloc.start()
    try:
        result = ingest.run(ctx, cfg)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert result.counts["points"] == n
    store = ChunkStore(out / "points" / "00_big")
    # an uncompressed file is checked range by range and read in place: nothing is copied
    assert store.paths() == [] and store.meta()["chunk_points"] == chunk
    assert store.meta()["bounds"] == [190000.0, 553000.0, 0.0, 190999.99, 553001.99, 49.99]
    # the file is 20 B x 20 M = 400 MB; a range's class byte and bit fields are a few MB
    assert peak < 400 * chunk, f"peak {peak / 2**20:.0f} MiB"


def test_gcp_survey_accuracy_from_columns_or_defaults(tmp_path):
    from pipeline.errors import InputError

    path = tmp_path / "gcps.csv"
    path.write_text("id,x,y,z,sigma_h,sigma_v\nA,1,2,3,0.01,0.02\nB,4,5,6,,\n")
    a, b = ingest.read_gcp_csv(path, sigma_h=0.05, sigma_v=0.07)
    assert (a.sigma_h, a.sigma_v, b.sigma_h, b.sigma_v) == (0.01, 0.02, 0.05, 0.07)
    assert ingest.read_gcp_csv(path)[1].sigma_v is None  # not stated anywhere: unknown, not zero
    path.write_text("id,x,y,z,sigma_v\nA,1,2,3,-0.1\n")
    with pytest.raises(InputError, match="line 2: sigma_v must be a positive number") as e:
        ingest.read_gcp_csv(path)
    assert "gcps.csv" in str(e.value)


def _footprint_ids(tmp_path, features: list[dict], fields: str = "") -> list[str]:
    import json

    from pipeline.artifacts.footprints import read_source_footprints
    from pipeline.runner import Runner

    tmp_path.mkdir(parents=True, exist_ok=True)
    layer = tmp_path / "f.geojson"
    layer.write_text(json.dumps({"type": "FeatureCollection", "features": features,
                                 "crs": {"type": "name", "properties": {"name": "EPSG:5186"}}}))
    cfg = tmp_path / "c.yaml"
    cfg.write_text("site: {origin: {lat: 37.5770, lon: 126.8898}}\n"
                   f"inputs: {{footprints: {{path: {layer}{fields}}}}}\n")
    work = tmp_path / "w"
    Runner(load_config(cfg), work, quiet=True).run(["ingest"])
    return [f.id for f in read_source_footprints(work / "artifacts" / "ingest").features]


def _square(x: float, y: float, props: dict) -> dict:
    ring = [[x, y], [x + 20, y], [x + 20, y + 20], [x, y + 20], [x, y]]
    return {"type": "Feature", "properties": props, "geometry": {"type": "Polygon", "coordinates": [ring]}}


def test_footprint_ids_follow_the_national_id_or_the_building_not_the_row(tmp_path):
    at = [(190100.0, 553100.0), (190200.0, 553100.0), (190300.0, 553200.0)]
    bd = [{"BD_MGT_SN": f"11440101001234500000{k}"} for k in range(3)]
    # a national building management number, named in the field mapping, is the id
    ids = _footprint_ids(tmp_path / "a", [_square(*xy, p) for xy, p in zip(at, bd, strict=True)],
                         ", fields: {id: BD_MGT_SN}")
    assert ids == [p["BD_MGT_SN"] for p in bd]
    # without ids: the same building keeps its id when another row goes and the rest are reordered
    first = _footprint_ids(tmp_path / "b", [_square(*xy, {}) for xy in at])
    again = _footprint_ids(tmp_path / "c", [_square(*xy, {}) for xy in reversed(at[1:])])
    assert len(set(first)) == 3 and all(i.startswith("B-") for i in first)
    assert again == list(reversed(first[1:]))


def _property_rows(glb: bytes) -> list[dict]:
    """The building property table of one tile: strings and UINT16 columns, per feature."""
    import json as _json

    from pipeline.core.gltf import read_glb

    doc, binary = read_glb(glb)
    table = doc["extensions"]["EXT_structural_metadata"]["propertyTables"][0]
    n, cols = table["count"], {}
    for key, prop in table["properties"].items():
        view = doc["bufferViews"][prop["values"]]
        if "stringOffsets" in prop:
            offs_view = doc["bufferViews"][prop["stringOffsets"]]
            offs = np.frombuffer(binary, np.uint32, n + 1, offs_view["byteOffset"])
            raw = binary[view["byteOffset"]:view["byteOffset"] + view["byteLength"]]
            cols[key] = [raw[offs[k]:offs[k + 1]].decode("utf-8") for k in range(n)]
        elif key in ("floors", "floors_below"):
            cols[key] = np.frombuffer(binary, np.uint16, n, view["byteOffset"]).tolist()
    assert _json.dumps(cols, ensure_ascii=False)
    return [{k: v[i] for k, v in cols.items()} for i in range(n)]


@pytest.mark.slow
@pytest.mark.parametrize("cpg", [True, False], ids=["with .cpg", "without .cpg"])
def test_the_national_road_address_building_layer_reaches_tiles_and_anchors(tmp_path, cpg):
    """A TL_SPBD_BULD-like shapefile (CP949 text, EPSG:5179, the national attribute names): the
    building management number becomes the id, Korean names reach the tiles' metadata and the
    anchors intact, floors above and below ground and the use code are read."""
    import json

    import pyogrio.raw
    import pyproj
    import shapely

    from tests.conftest import SAMPLE, run_cli

    to_5179 = pyproj.Transformer.from_crs("EPSG:4326", "EPSG:5179", always_xy=True)
    rows = [("11440101001000100010000001", "상암 MBC 방송센터", "24000", 23, 4, (126.8913, 37.5812)),
            ("11440101001000100020000002", "누리꿈스퀘어", "14000", 21, 3, (126.8888, 37.5795)),
            ("11440101001000100030000003", "월드컵파크 아파트", "2001", 15, 0, (126.8930, 37.5740))]
    squares = []
    for *_, (lon, lat) in rows:
        x, y = to_5179.transform(lon, lat)
        squares.append(shapely.box(x - 15, y - 15, x + 15, y + 15))
    path = tmp_path / "TL_SPBD_BULD.shp"
    columns = [np.array([r[i] for r in rows], dtype=object) for i in range(3)]
    pyogrio.raw.write(path, shapely.to_wkb(np.array(squares, dtype=object)),
                      [*columns, np.array([r[3] for r in rows]), np.array([r[4] for r in rows])],
                      ["BD_MGT_SN", "BULD_NM", "BDTYP_CD", "GRO_FLO_CO", "UND_FLO_CO"],
                      crs="EPSG:5179", geometry_type="Polygon", encoding="cp949", driver="ESRI Shapefile")
    assert "상암".encode("cp949") in path.with_suffix(".dbf").read_bytes()
    if not cpg:
        path.with_suffix(".cpg").unlink()
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"site: {{origin: {{lat: 37.5770, lon: 126.8898}}}}\n"
                   f"inputs:\n  footprints: {{path: {path}, layout: kr-road-address}}\n"
                   f"  dem: {{path: {SAMPLE / 'dem.tif'}}}\n"
                   "stages: {analysis: {enabled: false}, publish: {viewer: {enabled: false}, validate_bundle: false,"
                   " elevation: {enabled: false}}}\n", encoding="utf-8")
    work = tmp_path / "w"
    proc = run_cli("run", str(cfg), "--workdir", str(work), "--quiet")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert ("does not say how its text is encoded" in proc.stderr) is not cpg
    tiles = [r for glb in sorted((work / "bundle" / "buildings").rglob("*.glb"))
             for r in _property_rows(glb.read_bytes())]
    leaf = {r["id"]: r for r in tiles}  # every level carries the same row of a building
    assert set(leaf) == {r[0] for r in rows}
    for ident, name, _, floors, below, _ in rows:
        assert (leaf[ident]["name"], leaf[ident]["floors"], leaf[ident]["floors_below"]) == (name, floors, below)
    assert [leaf[r[0]]["use"] for r in rows] == ["broadcast", "office", "residential"]
    anchors = json.loads((work / "bundle" / "anchors" / "anchors.json").read_text(encoding="utf-8"))["anchors"]
    names = {a["feature"]["building_id"]: a["name"] for a in anchors if a["kind"] == "building"}
    assert names == {r[0]: r[1] for r in rows}


def _register_site(tmp_path, register: bytes, join: str = "") -> tuple:
    """Five 20 m squares near the site (ids A..E, with the layer's own height and floors for D
    and C) and a register export; a footprints-only run."""
    import json

    import pyproj

    from tests.conftest import run_cli

    to_5186 = pyproj.Transformer.from_crs("EPSG:4326", "EPSG:5186", always_xy=True)
    layer = {"A": {}, "B": {}, "C": {"floors": 7}, "D": {"height": 12.0}, "E": {}}
    feats = []
    for k, (ident, props) in enumerate(layer.items()):
        x, y = to_5186.transform(126.8870 + 0.0006 * k, 37.5790)
        ring = [[x, y], [x + 20, y], [x + 20, y + 20], [x, y + 20], [x, y]]
        feats.append({"type": "Feature", "properties": {"id": ident, "pnu": f"P-{ident}", **props},
                      "geometry": {"type": "Polygon", "coordinates": [ring]}})
    fp = tmp_path / "fp.geojson"
    fp.write_text(json.dumps({"type": "FeatureCollection", "features": feats, "crs": {
        "type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::5186"}}}))
    reg = tmp_path / "register.csv"
    reg.write_bytes(register)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"site: {{origin: {{lat: 37.5770, lon: 126.8898}}}}\n"
                   f"inputs:\n  footprints: {{path: {fp}}}\n"
                   f"  building_register: {{path: {reg}{join}}}\n"
                   "stages: {analysis: {enabled: false},\n"
                   "         publish: {viewer: {enabled: false}, validate_bundle: false}}\n")
    work = tmp_path / "w"
    return run_cli("run", str(cfg), "--workdir", str(work), "--quiet"), work


@pytest.mark.slow
def test_the_building_register_fills_heights_with_their_sources(tmp_path):
    """A register (CP949, keyed by the parcel number) with a height, a zero height with floors,
    empty values and a row for no building: each building's height and its source as documented."""
    import json

    register = ("mgmBldrgstPk,bldNm,heit,grndFlrCnt,ugrndFlrCnt,mainPurpsCd,useAprDay\n"
                "P-A,누리꿈스퀘어,30.5,9,2,14000,20080515\n"
                "P-B,상암 아파트,0,5,1,02001,20100301\n"
                "P-C,,,,,,\n"
                "P-Z,없는 건물,40,10,0,14000,\n").encode("cp949")
    proc, work = _register_site(tmp_path, register, ", join: pnu")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "2 of 5 footprint(s) of fp.geojson have no register row (e.g. 'D')" in proc.stderr
    records = {b["id"]: b for b in building_docs(work)}
    storey = 3.5
    expected = {"A": (30.5, "register"), "B": (5 * storey, "register floors"), "C": (7 * storey, "floors"),
                "D": (12.0, "attribute"), "E": (10.0, "default")}
    for ident, (height, source) in expected.items():
        assert (round(records[ident]["height"], 3), records[ident]["height_source"]) == (height, source), ident
    assert records["A"]["name"] == "누리꿈스퀘어" and records["A"]["use"] == "office"
    assert records["A"]["approval_date"] == "2008-05-15" and records["B"]["floors_below"] == 1
    report = json.loads((work / "reports" / "ingest.json").read_text(encoding="utf-8"))["footprints"]["register"]
    assert (report["matched"], report["rows_without_footprint"], report["footprints_without_row"]) == (3, 1, ["D", "E"])
    rows = {r["id"]: r for glb in (work / "bundle" / "buildings").rglob("*.glb")
            for r in _property_rows(glb.read_bytes())}
    assert rows["A"]["approval_date"] == "2008-05-15" and rows["B"]["source"] == "register floors"


def test_a_register_whose_key_matches_nothing_is_refused(tmp_path):
    register = b"mgmBldrgstPk,heit\nX-1,10\nX-2,12\n"
    proc, work = _register_site(tmp_path, register)
    assert proc.returncode == 2
    assert ("building register: its 'mgmBldrgstPk' matches no footprint's id (e.g. footprint 'A', register "
            "'X-1')") in proc.stderr and "register.csv" in proc.stderr
    assert not (work / "bundle").exists()


@pytest.mark.slow
def test_the_gis_building_layer_as_a_geopackage(tmp_path):
    """GIS건물통합정보 (AL_D010 columns) in a GeoPackage: its id, height, floors, use class name
    and approval date are read; a row with no height takes its floors."""

    import pyogrio.raw
    import pyproj
    import shapely

    from tests.conftest import run_cli

    to_5186 = pyproj.Transformer.from_crs("EPSG:4326", "EPSG:5186", always_xy=True)
    rows = [("11440-0001", "업무시설", "20080515", 80.5, 21, 3),
            ("11440-0002", "공동주택", "2010-03-01", None, 15, 1)]
    squares = [shapely.box(x - 15, y - 15, x + 15, y + 15) for x, y in
               (to_5186.transform(126.8880 + 0.001 * k, 37.5790) for k in range(len(rows)))]
    path = tmp_path / "AL_D010_11.gpkg"
    pyogrio.raw.write(path, shapely.to_wkb(np.array(squares, dtype=object)),
                      [np.array([r[0] for r in rows], dtype=object), np.array([r[1] for r in rows], dtype=object),
                       np.array([r[2] for r in rows], dtype=object),
                       np.array([np.nan if r[3] is None else r[3] for r in rows]),
                       np.array([r[4] for r in rows]), np.array([r[5] for r in rows])],
                      ["A1", "A9", "A13", "A16", "A26", "A27"], crs="EPSG:5186", geometry_type="Polygon",
                      driver="GPKG")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"site: {{origin: {{lat: 37.5770, lon: 126.8898}}}}\n"
                   f"inputs:\n  footprints: {{path: {path}, layout: kr-gis-building}}\n"
                   "stages: {analysis: {enabled: false}, publish: {viewer: {enabled: false}, validate_bundle: false,"
                   " elevation: {enabled: false}}}\n", encoding="utf-8")
    proc = run_cli("run", str(cfg), "--workdir", str(tmp_path / "w"), "--stages", "ingest..mesh", "--quiet")
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = {b["id"]: b for b in building_docs(tmp_path / "w")}
    a, b = got["11440-0001"], got["11440-0002"]
    assert (a["use"], a["approval_date"], a["height"], a["height_source"], a["floors"], a["floors_below"]) == (
        "office", "2008-05-15", 80.5, "attribute", 21, 3)
    assert (b["use"], b["approval_date"], b["height_source"], b["floors"], b["floors_below"]) == (
        "residential", "2010-03-01", "floors", 15, 1)


def test_a_laz_range_is_stored_piece_by_piece_as_the_records_and_sums_it_would_make_whole(tmp_path, monkeypatch):
    """ingest's task decodes a range in pieces and writes them after one ``.npy`` header: the
    stored chunk loads as the whole range's records (an ExtraBytes dimension included), and its
    count, bounds and class histogram are those of all its points, not of the last piece."""
    from pipeline.core import pointio

    monkeypatch.setattr(pointio, "RANGE_PIECE", 7_000)  # several pieces, ending inside LAZ chunks
    rng = np.random.default_rng(5)
    n = 60_000
    header = laspy.LasHeader(point_format=7, version="1.4")
    header.scales, header.offsets = np.array([0.01] * 3), np.array([190000.0, 553000.0, 0.0])
    header.add_extra_dim(laspy.ExtraBytesParams(name="reflectance", type=np.float32))
    las = laspy.LasData(header)
    las.x, las.y, las.z = rng.uniform(190000, 190500, n), rng.uniform(553000, 553500, n), rng.uniform(10, 60, n)
    las.classification = rng.choice([2, 5, 6], n)
    las.intensity = rng.integers(0, 4000, n)
    las.gps_time = np.arange(n) * 1e-4
    las.reflectance = rng.uniform(-20, 0, n).astype(np.float32)
    las.write(tmp_path / "c.laz")
    start, count = 12_345, 40_000
    stats = ingest.ingest_las_range(str(tmp_path / "c.laz"), start, count, str(tmp_path / "chunk.npy"))
    stored = np.load(tmp_path / "chunk.npy")
    whole = np.concatenate(list(pointio.iter_las_chunks(tmp_path / "c.laz", 1_000_000)))[start:start + count]
    assert stored.dtype == whole.dtype and "reflectance" in stored.dtype.names
    assert np.array_equal(stored, whole)
    assert np.array_equal(stored["reflectance"], np.asarray(las.reflectance)[start:start + count])
    assert stats["count"] == count and stats["extra"] == [["reflectance", "<f4"]]
    for k, name in enumerate("xyz"):
        assert stats["lo"][k] == whole[name].min() and stats["hi"][k] == whole[name].max()
    assert np.array_equal(stats["classes"], np.bincount(whole["classification"], minlength=256))
