"""clean and the point-cloud tiles on a small city: results do not depend on the cell size, the
classes match the generator's truth with either ground filter, every point is tiled once."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pipeline.core.cells import CellStore
from pipeline.core.classify import BUILDING, GROUND
from pipeline.samples.generator import city_cloud
from tests.conftest import run_cli


@pytest.fixture(scope="module")
def city(tmp_path_factory):
    d = tmp_path_factory.mktemp("city")
    city_cloud(d / "city.laz", 300_000, classes_path=d / "classes.npy")
    return d


def _run(city, name: str, cell: float, clean: str = "{}", stages: str = "ingest..clean"):
    w = city / name
    cfg = city / f"{name}.yaml"
    cfg.write_text("site: {origin: {lat: 37.5770, lon: 126.8898}}\n"
                   f"inputs: {{pointclouds: [{{path: {city / 'city.laz'}}}]}}\n"
                   f"stages: {{ingest: {{chunk_size: 50000}}, georef: {{cell_size: {cell}}}, clean: {clean}}}\n")
    proc = run_cli("run", str(cfg), "--workdir", str(w), "--stages", stages, "--quiet")
    assert proc.returncode == 0, proc.stderr
    return w


def _clean(w):
    return CellStore(w / "artifacts" / "clean" / "points").read_all()


STRICT = "{voxel_size: 0.25, outlier_std_ratio: 1.0}"  # a strict filter, so many points are at stake


@pytest.fixture(scope="module")
def c40(city) -> Path:
    """Work directory of the city cleaned in 40 m cells with the strict filter."""
    return _run(city, "c40", 40, STRICT)


def test_results_do_not_depend_on_the_cell_size(city, c40):
    a = _clean(c40)
    b = _clean(_run(city, "c70", 70, STRICT))
    report = json.loads((c40 / "reports" / "clean.json").read_text())
    assert report["statistical_outliers_removed"] > 1000 and report["thinned_away"] > 1000
    assert np.array_equal(a["index"], b["index"])
    assert np.array_equal(a["x"], b["x"]) and np.array_equal(a["z"], b["z"])
    # surface variation is float32 arithmetic around each cell's centre: a point on the threshold
    # may flip, nothing more
    assert np.mean(a["classification"] == b["classification"]) > 0.9999


@pytest.mark.parametrize("method", ["smrf", "csf"])
def test_classes_against_the_generators_truth(city, method):
    w = _run(city, f"m_{method}", 100, f"{{ground_method: {method}}}")
    got = _clean(w)
    truth = np.load(city / "classes.npy")[got["index"]]
    for k in (GROUND, BUILDING):
        assert np.mean(got["classification"][truth == k] == k) >= 0.95, k
    # local geometry only for the single echoes above 2 m: roofs and some canopy, not the ground
    report = json.loads((w / "reports" / "clean.json").read_text())
    above = np.isin(got["classification"], (5, 6))
    assert 0 < report["local_geometry_points"] <= above.sum() < 0.6 * len(got)


def test_existing_classes_are_kept_unless_reclassify(city, tmp_path):
    import laspy

    las = laspy.read(city / "city.laz")
    las.classification = np.where(np.arange(len(las.points)) % 2 == 0, 9, 1).astype(np.uint8)  # 9: water
    las.write(city / "city_water.laz")
    for reclass, want_water in ((False, True), (True, False)):
        w = tmp_path / f"r{reclass}"
        cfg = tmp_path / f"r{reclass}.yaml"
        cfg.write_text("site: {origin: {lat: 37.5770, lon: 126.8898}}\n"
                       f"inputs: {{pointclouds: [{{path: {city / 'city_water.laz'}}}]}}\n"
                       f"stages: {{clean: {{reclassify: {str(reclass).lower()}}}}}\n")
        proc = run_cli("run", str(cfg), "--workdir", str(w), "--stages", "ingest..clean", "--quiet")
        assert proc.returncode == 0, proc.stderr
        got = _clean(w)
        even = got["index"] % 2 == 0
        assert np.all(got["classification"][even] == 9) == want_water
        assert not np.any(got["classification"][~even] == 1)


def test_a_classified_input_costs_no_local_geometry(city, tmp_path):
    import laspy

    las = laspy.read(city / "city.laz")
    las.classification = np.load(city / "classes.npy").astype(np.uint8)
    las.write(tmp_path / "classified.laz")
    cfg = tmp_path / "c.yaml"
    cfg.write_text("site: {origin: {lat: 37.5770, lon: 126.8898}}\n"
                   f"inputs: {{pointclouds: [{{path: {tmp_path / 'classified.laz'}}}]}}\n")
    proc = run_cli("run", str(cfg), "--workdir", str(tmp_path / "w"), "--stages", "ingest..clean", "--quiet")
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "w" / "reports" / "clean.json").read_text())
    assert report["local_geometry_points"] == 0
    got = _clean(tmp_path / "w")
    assert np.array_equal(got["classification"], np.load(city / "classes.npy")[got["index"]])


def test_rasters_are_tiled_compressed_with_nodata(c40):
    import rasterio

    w = c40
    for name in ("dtm.tif", "dsm.tif"):
        with rasterio.open(w / "artifacts" / "clean" / name) as r:
            assert r.nodata == -9999.0 and r.profile["tiled"] and r.compression.name == "deflate"
    with rasterio.open(w / "artifacts" / "clean" / "dtm.tif") as dtm, \
            rasterio.open(w / "artifacts" / "clean" / "dsm.tif") as dsm:
        a, b = dtm.read(1), dsm.read(1)
        both = (a != -9999.0) & (b != -9999.0)
        assert np.all(b[both] >= a[both] - 0.5)  # the surface is never below the ground
        assert (b[both] - a[both]).max() > 10  # and rises over the buildings


def test_ply_with_an_extra_dimension_reaches_the_tiles(tmp_path):
    from plyfile import PlyData, PlyElement

    from pipeline.core.gltf import read_accessor, read_glb

    rng = np.random.default_rng(9)
    n = 60_000
    v = np.zeros(n, [("x", "f8"), ("y", "f8"), ("z", "f8"), ("reflectance", "f4")])
    # EPSG:5186 near the site: a gently sloping 80 m square
    v["x"] = 190_000 + rng.uniform(0, 80, n)
    v["y"] = 553_000 + rng.uniform(0, 80, n)
    v["z"] = 20 + 0.01 * (v["x"] - 190_000) + rng.normal(0, 0.02, n)
    v["reflectance"] = np.round(v["x"] - 190_000, 1)
    PlyData([PlyElement.describe(v, "vertex")]).write(str(tmp_path / "scan.ply"))
    cfg = tmp_path / "c.yaml"
    cfg.write_text("site: {origin: {lat: 37.5770, lon: 126.8898}}\n"
                   "inputs: {pointclouds: [{path: scan.ply, crs: 'EPSG:5186+5773'}]}\n"
                   "stages: {georef: {cell_size: 20}, tile: {pointcloud_max_points: 5000}}\n")
    proc = run_cli("run", str(cfg), "--workdir", str(tmp_path / "w"), "--stages", "ingest..tile", "--quiet")
    assert proc.returncode == 0, proc.stderr
    total, pairs = 0, []
    for glb in (tmp_path / "w" / "artifacts" / "tile" / "pointcloud" / "tiles").glob("*.glb"):
        doc, binary = read_glb(glb.read_bytes())
        attrs = doc["meshes"][0]["primitives"][0]["attributes"]
        refl = read_accessor(doc, binary, attrs["_REFLECTANCE"])
        total += len(refl)
        pairs.append(refl)
    kept = _clean(tmp_path / "w")
    assert total == len(kept) > 0.99 * n
    assert np.array_equal(kept["reflectance"], v["reflectance"][kept["index"]])
    assert np.array_equal(np.sort(np.concatenate(pairs)), np.sort(kept["reflectance"]))


def test_meshopt_compressed_point_tiles_decode_to_the_same_points(city):
    from pipeline.core.gltf import read_accessor, read_glb
    from tests.conftest import validate_gltf

    plain = _run(city, "c70", 70, "{voxel_size: 0.25, outlier_std_ratio: 1.0}", stages="ingest..tile")
    packed = city / "meshopt"
    cfg = city / "meshopt.yaml"
    cfg.write_text((city / "c70.yaml").read_text().replace("clean: {", "tile: {pointcloud_meshopt: true}, clean: {"))
    proc = run_cli("run", str(cfg), "--workdir", str(packed), "--stages", "ingest..tile", "--quiet")
    assert proc.returncode == 0, proc.stderr
    a_dir = plain / "artifacts" / "tile" / "pointcloud" / "tiles"
    b_dir = packed / "artifacts" / "tile" / "pointcloud" / "tiles"
    names = sorted(p.name for p in a_dir.glob("*.glb"))
    assert names == sorted(p.name for p in b_dir.glob("*.glb"))
    size_a = sum((a_dir / n).stat().st_size for n in names)
    size_b = sum((b_dir / n).stat().st_size for n in names)
    assert size_b < 0.8 * size_a
    for n in names[:20]:
        da, ba = read_glb((a_dir / n).read_bytes())
        db, bb = read_glb((b_dir / n).read_bytes())
        assert "EXT_meshopt_compression" in db["extensionsRequired"]
        for attr, ia in da["meshes"][0]["primitives"][0]["attributes"].items():
            ib = db["meshes"][0]["primitives"][0]["attributes"][attr]
            assert np.array_equal(read_accessor(da, ba, ia), read_accessor(db, bb, ib)), (n, attr)
    reports = validate_gltf([b_dir / n for n in names[:10]])
    assert not [r for r in reports if r["errors"] or r["warnings"]], reports[0]
    # the validator cannot decode the extension: it reports it unsupported, and the compressed
    # buffer as unused, nothing else
    assert {m.split(":")[1] for r in reports for m in r["messages"]} <= {"UNSUPPORTED_EXTENSION", "UNUSED_OBJECT"}


def test_a_sampled_threshold_drops_exactly_the_points_beyond_it(city, monkeypatch):
    """On a cloud above the sample size, pass 1 measures only the threshold's sample and one point
    per cube; every point is still kept or dropped by its own exact distance (a float64 k-d tree
    over the whole cloud here) against the sample's threshold."""
    from scipy.spatial import cKDTree

    from pipeline.config import load_config
    from pipeline.core.pointio import HIGH_NOISE, LOW_NOISE
    from pipeline.runner import Runner, select_stages
    from pipeline.stages import clean

    monkeypatch.setattr(clean, "THRESHOLD_SAMPLE", 30_000)
    cfg_path = city / "sampled.yaml"
    cfg_path.write_text("site: {origin: {lat: 37.5770, lon: 126.8898}}\n"
                        f"inputs: {{pointclouds: [{{path: {city / 'city.laz'}}}]}}\n"
                        "stages: {georef: {cell_size: 40}, clean: {outlier_std_ratio: 2.0}}\n")
    w = city / "sampled"
    Runner(load_config(cfg_path), w, quiet=True).run(select_stages("ingest..clean"))
    report = json.loads((w / "reports" / "clean.json").read_text())

    src = CellStore(w / "artifacts" / "georef" / "points").read_all()
    src = src[~np.isin(src["classification"], (LOW_NOISE, HIGH_NOISE))]
    xyz = np.column_stack([src["x"], src["y"], src["z"]])
    assert len(np.unique(xyz, axis=0)) == len(xyz)  # no duplicates to remove: every point is usable
    d = np.minimum(cKDTree(xyz).query(xyz, k=11)[0][:, 1:], 10.0).mean(1)
    stride = -(-len(CellStore(w / "artifacts" / "georef" / "points").read_all()) // 30_000)
    sample = d[src["index"] % stride == 0]
    threshold = sample.mean() + 2.0 * sample.std()
    assert report["outlier_threshold_sample"] == {"every_nth_point": stride, "points": len(sample)}
    assert report["outlier_threshold_m"] == pytest.approx(threshold, rel=1e-5)
    kept = np.isin(src["index"], _clean(w)["index"])
    clear = np.abs(d - threshold) > 1e-4
    assert np.array_equal(kept[clear], d[clear] <= threshold)
    assert report["statistical_outliers_removed"] > 1000
    # a strict threshold (2 deviations) leaves many bounds above it, and still a quarter of the
    # points needed no query of their own
    assert report["neighbour_distances_measured"] < 0.75 * len(xyz)
