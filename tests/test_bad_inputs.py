"""The bad-input corpus: every malformed or extreme input, of every kind and config key, gives one
line on stderr naming the file (and key, feature or line) and what is wrong, exit code 2, and
leaves the previous good bundle exactly as it was.

The cases are made by the tests (small files written with laspy, rasterio, trimesh and plain
text). They run in this process (``pipeline.cli.main``) with the inline executor, so sixty of them
take well under a minute; each has a timeout, since a hang is a failure too.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import rasterio
import trimesh
import yaml
from rasterio.transform import from_origin
from rasterio.windows import Window

from pipeline import cli
from pipeline.samples.generator import origin_xy
from tests.conftest import SAMPLE
from tests.fixtures_las import sample_points, write_las

SITE = "site: {origin: {lat: 37.5770, lon: 126.8898}}\nexecutor: {kind: inline}\n"
# no viewer in the corpus's bundles (8.5 MB each, and not what it tests) unless a case asks for one
ORIGIN = SITE + "stages: {publish: {viewer: {enabled: false}}}\n"
FOOTPRINTS = SAMPLE / "buildings.geojson"
DEM = SAMPLE / "dem.tif"
X0, Y0 = origin_xy()


def _cli(args: list[str], capsys) -> tuple[int, str]:
    """(exit code, stderr) of ``dmctwin ARGS`` run here; the CLI's warning printer is put back."""
    shown = warnings.showwarning
    try:
        code = cli.main(args)
    finally:
        warnings.showwarning = shown
    return code, capsys.readouterr().err


@pytest.fixture(scope="module")
def good_workdir(tmp_path_factory) -> Path:
    """A workdir with a published bundle (footprints on the sample DEM, no sunlight analysis: a few
    seconds)."""
    root = tmp_path_factory.mktemp("good")
    cfg = root / "good.yaml"
    cfg.write_text(SITE + f"inputs: {{footprints: {{path: {FOOTPRINTS}}}, dem: {{path: {DEM}}}}}\n"
                   "stages: {mesh: {terrain_lods: 2}, analysis: {enabled: false}, "
                   "publish: {viewer: {enabled: false}}}\n")
    assert cli.main(["run", str(cfg), "--workdir", str(root / "w"), "--quiet"]) == 0
    return root / "w"


def _las(tmp: Path, name: str = "cloud.las", n: int = 2000, **kw) -> Path:
    return write_las(tmp / name, sample_points(n), crs=kw.pop("crs", "EPSG:5186+5773"), **kw)


def _dem(tmp: Path, values: np.ndarray, name: str = "dem.tif", crs: str | None = "EPSG:5186",
         res: float = 5.0) -> Path:
    path = tmp / name
    with rasterio.open(path, "w", driver="GTiff", width=values.shape[1], height=values.shape[0], count=1,
                       dtype="float32", crs=crs, nodata=-9999.0,
                       transform=from_origin(X0 - 150, Y0 + 150, res, res)) as dst:
        dst.write(values.astype(np.float32), 1)
    return path


def _write(tmp: Path, name: str, data: bytes | str) -> Path:
    path = tmp / name
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def _geojson(tmp: Path, features: list[dict], name: str = "fp.geojson", crs: str = "EPSG::5186") -> Path:
    doc = {"type": "FeatureCollection", "crs": {"type": "name", "properties": {"name": f"urn:ogc:def:crs:{crs}"}},
           "features": features}
    return _write(tmp, name, json.dumps(doc))


def _square(dx: float = 0.0, dy: float = 0.0, size: float = 20.0) -> dict:
    ring = [[X0 + dx, Y0 + dy], [X0 + dx + size, Y0 + dy], [X0 + dx + size, Y0 + dy + size],
            [X0 + dx, Y0 + dy + size], [X0 + dx, Y0 + dy]]
    return {"type": "Polygon", "coordinates": [ring]}


def _feature(geom: dict, **props) -> dict:
    return {"type": "Feature", "properties": {"id": "B1", **props}, "geometry": geom}


def _model(tmp: Path, name: str = "m.obj", extent: float = 10.0) -> Path:
    box = trimesh.creation.box((extent, extent, extent))
    path = tmp / name
    box.export(path)
    return path


def _patched_las(tmp: Path, name: str, offset: int, fmt: str, *values) -> Path:
    """A LAS 1.4 file with one header field overwritten (offsets of the LAS 1.4 header)."""
    path = _las(tmp, name)
    data = bytearray(path.read_bytes())
    struct.pack_into(fmt, data, offset, *values)
    path.write_bytes(bytes(data))
    return path


def _laz_count(tmp: Path, count: int) -> Path:
    """The sample's LAZ with its header's point counts (legacy and LAS 1.4) set to ``count``."""
    data = bytearray((SAMPLE / "dmc_aerial.laz").read_bytes())
    struct.pack_into("<I", data, 107, count)
    if data[25] >= 4:
        struct.pack_into("<Q", data, 247, count)
    return _write(tmp, "few.laz", bytes(data))


def _huge_dem(tmp: Path) -> Path:
    """A GeoTIFF declaring 200,000 x 200,000 pixels it does not hold (sparse tiles)."""
    path = tmp / "huge.tif"
    with rasterio.open(path, "w", driver="GTiff", width=200_000, height=200_000, count=1, dtype="float32",
                       crs="EPSG:5186", tiled=True, sparse_ok=True, nodata=-9999.0,
                       transform=from_origin(X0 - 1000, Y0 + 1000, 0.01, 0.01)) as dst:
        dst.write(np.full((256, 256), 15.0, np.float32), 1, window=Window(0, 0, 256, 256))
    return path


def _gltf_pointing_at(tmp: Path, uri: str, name: str) -> Path:
    doc = {"asset": {"version": "2.0"}, "buffers": [{"uri": uri, "byteLength": 36}],
           "bufferViews": [{"buffer": 0, "byteLength": 36}],
           "accessors": [{"bufferView": 0, "componentType": 5126, "count": 3, "type": "VEC3",
                          "min": [0, 0, 0], "max": [1, 1, 0]}],
           "meshes": [{"primitives": [{"attributes": {"POSITION": 0}}]}], "nodes": [{"mesh": 0}],
           "scenes": [{"nodes": [0]}], "scene": 0}
    return _write(tmp, name, json.dumps(doc))


def _glb_with_garbage(tmp: Path) -> Path:
    box = trimesh.creation.box((10, 10, 10))
    data = bytearray(box.export(file_type="glb"))
    json_len = struct.unpack_from("<I", data, 12)[0]
    start = 20 + json_len + 8  # the binary chunk's payload
    data[start:] = bytes((7 * i) % 251 for i in range(len(data) - start))
    return _write(tmp, "garbage.glb", bytes(data))


def _loop(tmp: Path) -> Path:
    a, b = tmp / "loop_a.las", tmp / "loop_b.las"
    os.symlink(b, a)
    os.symlink(a, b)
    return a


def _cloud(path: Path, extra: str = "") -> str:
    return f"  pointclouds: [{{path: {path}{extra}}}]\n"


def _model_far(tmp: Path) -> Path:
    box = trimesh.creation.box((10, 10, 10))
    box.apply_translation([1e12, 0, 0])
    path = tmp / "far.obj"
    box.export(path)
    return path


GCP_OK = f"id,x,y,z\nG1,{X0},{Y0},15.0\n"
GEOID_CSV = "lat,lon,n\n37.5,126.9,24.1\n"
DEM_IN = f"  dem: {{path: {DEM}}}\n"


@dataclass
class Bad:
    """One bad case: the lines under ``inputs:``, other top-level YAML, extra CLI arguments, and
    what its one error line must say (besides ``dmctwin: error:``)."""

    inputs: str = DEM_IN
    config: str = ""
    args: tuple[str, ...] = ()
    says: tuple[str, ...] = ()
    #: the config file's bytes, for a file that is broken as a file
    raw: bytes | None = None

    def config_bytes(self) -> bytes:
        """The base config (site origin, inline executor, inputs) with ``config`` merged into it."""
        if self.raw is not None:
            return self.raw
        doc = yaml.safe_load(ORIGIN)
        doc["inputs"] = yaml.safe_load("inputs:\n" + self.inputs)["inputs"] or {} if self.inputs else {}
        for key, value in (yaml.safe_load(self.config) or {}).items():
            doc[key] = _merged(doc.get(key), value)
        return yaml.safe_dump(doc, allow_unicode=True).encode()


def _merged(base, extra):
    if isinstance(base, dict) and isinstance(extra, dict):
        return {**base, **{k: _merged(base.get(k), v) for k, v in extra.items()}}
    return extra


CASES: dict[str, Callable[[Path], Bad]] = {
    # the config and the command line
    "config: a key given twice": lambda t: Bad(raw=(ORIGIN + "inputs: {}\ninputs: {}\n").encode(),
                                               says=("given twice", "line 4")),
    "config: origin height .nan": lambda t: Bad(config="site: {origin: {height: .nan}}\n",
                                                says=("site.origin.height", "finite")),
    "config: origin height 1e9": lambda t: Bad(config="site: {origin: {height: 1e9}}\n", says=("site.origin.height",)),
    "config: terrain_resolution .inf": lambda t: Bad(config="stages: {mesh: {terrain_resolution: .inf}}\n",
                                                     says=("stages.mesh.terrain_resolution",)),
    "config: terrain_resolution 0.0001": lambda t: Bad(config="stages: {mesh: {terrain_resolution: 0.0001}}\n",
                                                       says=("stages.mesh.terrain_resolution",)),
    # the LiDAR DTM's grid spans the DEM too (a DEM alone keeps its own spacing)
    "config: terrain_resolution 0.02 over the DEM": lambda t: Bad(
        DEM_IN + _cloud(_las(t)), config="stages: {mesh: {terrain_resolution: 0.02}}\n",
        says=("stages.mesh.terrain_resolution 0.02 m", "would need", "km²")),
    "config: dtm_resolution 0.0001": lambda t: Bad(_cloud(_las(t)), "stages: {clean: {dtm_resolution: 0.0001}}\n",
                                                   says=("stages.clean.dtm_resolution",)),
    "config: model scale .nan": lambda t: Bad(_mesh(_model(t), scale=".nan"), says=("inputs.meshes[0].scale",)),
    "config: model heading .inf": lambda t: Bad(_mesh(_model(t), heading_deg=".inf"),
                                                says=("inputs.meshes[0].heading_deg",)),
    "config: origin latitude 100": lambda t: Bad(config="site: {origin: {lat: 100}}\n", says=("site.origin.lat",)),
    "config: an unknown key": lambda t: Bad(DEM_IN + "  lidar: 1\n", says=("inputs.lidar", "unknown key")),
    "config: no workers": lambda t: Bad(config="executor: {kind: local, workers: 0}\n", says=("executor.workers",)),
    "config: an executor that is not one": lambda t: Bad(config="executor: {kind: cloud}\n", says=("executor.kind",)),
    "config: site.crs EPSG:999999": lambda t: Bad(config="site: {crs: 'EPSG:999999'}\n", says=("site.crs",)),
    "config: the geoid is a CSV": lambda t: Bad(config=f"site: {{geoid: {_write(t, 'n.csv', GEOID_CSV)}}}\n",
                                                says=("n.csv",)),
    "config: the geoid is missing": lambda t: Bad(config=f"site: {{geoid: {t / 'no.gtx'}}}\n", says=("no.gtx",)),
    "config: a 0.5 m point cell": lambda t: Bad(config="stages: {georef: {cell_size: 0.5}}\n",
                                               says=("stages.georef.cell_size",)),
    "config: a negative radius": lambda t: Bad(config="site: {radius_km: -1}\n", says=("site.radius_km",)),
    "config: no inputs": lambda t: Bad(inputs="", says=("nothing to build a twin from",)),
    "config: gcps alone": lambda t: Bad(f"  gcps: {{path: {_write(t, 'g.csv', GCP_OK)}, crs: 'EPSG:5186'}}\n",
                                        says=("nothing to build a twin from",)),
    "config: a CSV of GCPs without a CRS": lambda t: Bad(DEM_IN + f"  gcps: {{path: {_write(t, 'g.csv', GCP_OK)}}}\n",
                                                          says=("inputs.gcps", "no CRS")),
    "config: not UTF-8 or CP949": lambda t: Bad(raw=ORIGIN.encode() + b"# \xff\n", says=("bad.yaml", "UTF-8")),
    "cli: an unknown stage": lambda t: Bad(args=("--stages", "ingest..tiles"), says=("tiles",)),
    "cli: the workdir is a file": lambda t: Bad(args=("--workdir", str(_write(t, "afile", "x"))), says=("afile",)),
    # any input file
    "input: missing": lambda t: Bad(f"  dem: {{path: {t / 'none.tif'}}}\n", says=("none.tif", "not found")),
    "input: a directory": lambda t: Bad(f"  dem: {{path: {t}}}\n", says=("inputs.dem",)),
    "input: a symlink loop": lambda t: Bad(_cloud(_loop(t)), says=("loop_a.las",)),
    "input: an empty file": lambda t: Bad(_cloud(_write(t, "e.las", b"")), says=("e.las", "empty")),
    "input: Markdown as a point cloud": lambda t: Bad(_cloud(_write(t, "notes.las", "# notes\n")),
                                                      says=("notes.las",)),
    # point clouds
    "las: truncated": lambda t: Bad(_cloud(_write(t, "cut.las", _las(t).read_bytes()[:-5000])), says=("cut.las",)),
    "las: header claims fewer points than it holds": lambda t: Bad(
        _cloud(_patched_las(t, "few.las", 247, "<Q", 1000)), says=("few.las", "1,000 points", "2,000")),
    "las: header claims more points than it holds": lambda t: Bad(
        _cloud(_patched_las(t, "many.las", 247, "<Q", 5000)), says=("many.las", "5000")),
    "las: a zero scale": lambda t: Bad(_cloud(_patched_las(t, "zs.las", 131, "<d", 0.0)), says=("zs.las", "scale")),
    "las: a NaN scale": lambda t: Bad(_cloud(_patched_las(t, "ns.las", 131, "<d", float("nan"))), says=("ns.las",)),
    "las: version 9.9": lambda t: Bad(_cloud(_patched_las(t, "v99.las", 24, "<BB", 9, 9)), says=("v99.las",)),
    "las: no CRS anywhere": lambda t: Bad(_cloud(_las(t, "nocrs.las", crs=None)), says=("nocrs.las", "no CRS")),
    "las: lands 400 km away": lambda t: Bad(
        _cloud(write_las(t / "far.las", sample_points(500) + [3e5, 3e5, 0], crs="EPSG:5186")),
        says=("far.las", "lands")),
    "las: projected values labelled geographic": lambda t: Bad(_cloud(_las(t, "geo.las", crs="EPSG:4326")),
                                                              says=("geo.las",)),
    "las: UTM values labelled geocentric": lambda t: Bad(_cloud(_las(t, "ecef.las", crs="EPSG:4978")),
                                                        says=("ecef.las", "geocentric")),
    "laz: header claims fewer points than its chunks hold": lambda t: Bad(
        _cloud(_laz_count(t, 1000)), says=("few.laz", "1,000 points", "compressed chunks")),
    "laz: garbage after the header": lambda t: Bad(
        _cloud(_write(t, "bad.laz", (SAMPLE / "dmc_aerial.laz").read_bytes()[:4000] + bytes(range(256)) * 40)),
        says=("bad.laz",)),
    "text: a word among the numbers": lambda t: Bad(
        _cloud(_write(t, "p.xyz", f"{X0} {Y0} 15\n{X0} abc 16\n"), ", columns: {x: 0, y: 1, z: 2}, crs: 'EPSG:5186'"),
        says=("p.xyz",)),
    "text: no column mapping": lambda t: Bad(_cloud(_write(t, "q.xyz", f"{X0} {Y0} 15\n"), ", crs: 'EPSG:5186'"),
                                             says=("q.xyz", "columns")),
    "text: a NaN height": lambda t: Bad(
        _cloud(_write(t, "n.xyz", f"{X0} {Y0} nan\n"), ", columns: {x: 0, y: 1, z: 2}, crs: 'EPSG:5186'"),
        says=("n.xyz",)),
    "ply: a garbage header": lambda t: Bad(
        _cloud(_write(t, "g.ply", "ply\nformat nonsense\nend_header\n"), ", crs: 'EPSG:5186'"), says=("g.ply",)),
    # footprints
    "footprints: not JSON": lambda t: Bad(f"  footprints: {{path: {_write(t, 'x.geojson', '{oops')}}}\n",
                                          says=("x.geojson",)),
    "footprints: one id twice": lambda t: Bad(
        f"  footprints: {{path: {_geojson(t, [_feature(_square()), _feature(_square(50))])}}}\n",
        says=("fp.geojson", "B1", "more than once")),
    "footprints: 500 km away": lambda t: Bad(
        f"  footprints: {{path: {_geojson(t, [_feature(_square(5e5, 5e5))])}}}\n", says=("fp.geojson", "lands")),
    "footprints: an empty GeoPackage": lambda t: Bad(f"  footprints: {{path: {_write(t, 'n.gpkg', b'')}}}\n",
                                                     says=("n.gpkg",)),
    "footprints: a shapefile without its .shx": lambda t: Bad(
        f"  footprints: {{path: {_write(t, 'lone.shp', bytes(100))}}}\n", says=("lone.shp",)),
    "footprints: points, not polygons": lambda t: Bad(
        f"  footprints: {{path: {_geojson(t, [_feature({'type': 'Point', 'coordinates': [X0, Y0]})])}}}\n",
        says=("fp.geojson", "no usable footprint", "not a polygon")),
    # DEM
    "dem: garbage": lambda t: Bad(f"  dem: {{path: {_write(t, 'g.tif', b'II*' + bytes(201))}}}\n", says=("g.tif",)),
    "dem: only nodata": lambda t: Bad(f"  dem: {{path: {_dem(t, np.full((60, 60), -9999.0))}}}\n",
                                      says=("dem.tif", "nodata")),
    "dem: no CRS": lambda t: Bad(f"  dem: {{path: {_dem(t, np.full((60, 60), 15.0), crs=None)}}}\n",
                                 says=("dem.tif", "CRS")),
    "dem: more pixels than memory": lambda t: Bad(f"  dem: {{path: {_huge_dem(t)}}}\n",
                                                  says=("huge.tif", "DEM pixels", "would need")),
    # control points
    "gcps: columns missing": lambda t: Bad(DEM_IN + _gcps(t, "name,east,north\n"), says=("gcps.csv", "columns")),
    "gcps: a word for a number": lambda t: Bad(DEM_IN + _gcps(t, f"id,x,y,z\nG1,{X0},{Y0},abc\n"),
                                               says=("gcps.csv", "line 2")),
    "gcps: no rows": lambda t: Bad(DEM_IN + _gcps(t, "id,x,y,z\n"), says=("gcps.csv", "no rows")),
    "gcps: one id twice": lambda t: Bad(DEM_IN + _gcps(t, GCP_OK + f"G1,{X0 + 5},{Y0},15\n"),
                                        says=("gcps.csv", "G1")),
    "gcps: neither UTF-8 nor CP949": lambda t: Bad(DEM_IN + _gcps(t, b"id,x,y,z\n\xff\xfe\xfa,1,2,3\n"),
                                                   says=("gcps.csv", "UTF-8")),
    "gcps: a survey that misses the LiDAR": lambda t: Bad(
        _cloud(_las(t)) + _gcps(t, f"id,x,y,z\nG1,{X0 + 3000},{Y0 + 3000},15\n"),
        says=("gcps.csv", "do not overlap")),
    # models
    "model: garbage in the GLB's binary chunk": lambda t: Bad(DEM_IN + _mesh(_glb_with_garbage(t)),
                                                              says=("garbage.glb",)),
    "model: a glTF buffer at /etc/passwd": lambda t: Bad(
        DEM_IN + _mesh(_gltf_pointing_at(t, "/etc/passwd", "abs.gltf")), says=("abs.gltf",)),
    "model: a glTF buffer up the tree": lambda t: Bad(
        DEM_IN + _mesh(_gltf_pointing_at(t, "../../../etc/passwd", "up.gltf")), says=("up.gltf",)),
    "model: a glTF buffer by file://": lambda t: Bad(
        DEM_IN + _mesh(_gltf_pointing_at(t, "file:///etc/passwd", "uri.gltf")), says=("uri.gltf",)),
    "model: no faces": lambda t: Bad(DEM_IN + _mesh(_write(t, "pts.obj", "v 0 0 0\nv 1 0 0\nv 0 1 0\n")),
                                     says=("pts.obj", "no faces")),
    "model: vertices at 1e12 m": lambda t: Bad(DEM_IN + _mesh(_model_far(t)), says=("far.obj", "world coordinates")),
    "model: scaled to 10 km": lambda t: Bad(DEM_IN + _mesh(_model(t, extent=20.0), scale=1000),
                                            says=("m.obj", "scale 1000")),
    "model: an unknown format": lambda t: Bad(DEM_IN + _mesh(_write(t, "m.fbx", "FBX")), says=("m.fbx",)),
    "model: without a CRS": lambda t: Bad(DEM_IN + f"  meshes: [{{path: {_model(t)}, origin: [0, 0, 0]}}]\n",
                                          says=("inputs.meshes[0]", "no CRS")),
    # city models
    "city model: CityGML without buildings": lambda t: Bad(DEM_IN + _city(_write(
        t, "empty.gml", '<core:CityModel xmlns:core="http://www.opengis.net/citygml/2.0"/>')),
        says=("empty.gml", "no buildings")),
    "city model: every vertex index wrong": lambda t: Bad(DEM_IN + _city(_cityjson(t, lambda d: [
        g["boundaries"][0][0].__setitem__(0, [10_000, 10_001, 10_002]) for o in d["CityObjects"].values()
        for g in o["geometry"]])), says=("m.json", "no usable building", "vertex index 10000 out of range")),
    "city model: no CRS anywhere": lambda t: Bad(DEM_IN + _city(_cityjson(t, lambda d: d.pop("metadata"))),
                                                 says=("m.json", "declares no CRS", "inputs.city_models[0].crs")),
    "city model: join names no attribute": lambda t: Bad(DEM_IN + _city(_cityjson(t), join="BD_MGT_SN"),
                                                         says=("m.json", "inputs.city_models[0].join", "BD_MGT_SN")),
    "city model: an unknown format": lambda t: Bad(DEM_IN + _city(_model(t)),
                                                   says=("inputs.city_models[0].path", ".obj")),
    "city model: coordinates of another CRS": lambda t: Bad(DEM_IN + _city(_cityjson(
        t, lambda d: d["transform"].__setitem__("translate", [946_000.0, 1_950_000.0, 0.0]))), says=("m.json",)),
    # the bundle's viewer
    "viewer: CesiumJS not where the config says": lambda t: Bad(
        config=f"stages: {{publish: {{viewer: {{enabled: true, cesium: {t / 'nowhere'}}}}}}}\n",
        says=("stages.publish.viewer.cesium", "not a CesiumJS npm package")),
    "viewer: imagery missing": lambda t: Bad(
        config=f"stages: {{publish: {{viewer: {{enabled: true, imagery: {t / 'ortho.tif'}}}}}}}\n",
        says=("stages.publish.viewer.imagery", "not found", "ortho.tif")),
    "viewer: imagery without a CRS": lambda t: Bad(
        config=f"stages: {{publish: {{viewer: {{enabled: true, imagery: {_image_without_crs(t)}}}}}}}\n",
        says=("ortho.png", "no CRS")),
    # points of interest
    "pois: polygons": lambda t: Bad(DEM_IN + f"  pois: {{path: {_geojson(t, [_feature(_square())], 'poi.geojson')}}}\n",
                                    says=("poi.geojson", "points")),
    "pois: garbage": lambda t: Bad(DEM_IN + f"  pois: {{path: {_write(t, 'p.geojson', 'nope')}}}\n",
                                   says=("p.geojson",)),
}


def _image_without_crs(tmp: Path) -> Path:
    path = tmp / "ortho.png"
    with rasterio.open(path, "w", driver="PNG", width=8, height=8, count=3, dtype="uint8") as dst:
        dst.write(np.full((3, 8, 8), 128, np.uint8))
    return path


def _cityjson(tmp: Path, change: Callable[[dict], object] | None = None) -> Path:
    """A CityJSON file of two buildings beside the site origin (EPSG:5186), changed by ``change``."""
    from tests.fixtures_citymodel import block, courtyard, write_cityjson

    path = write_cityjson(tmp / "m.json", [courtyard("B1", X0 - 60, Y0 - 60, 15.0), block("B2", X0, Y0, 15.0)])
    if change is not None:
        doc = json.loads(path.read_text(encoding="utf-8"))
        change(doc)
        path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def _city(path: Path, **extra) -> str:
    more = "".join(f", {k}: {v}" for k, v in extra.items())
    return f"  city_models: [{{path: {path}{more}}}]\n"


def _mesh(path: Path, **extra) -> str:
    more = "".join(f", {k}: {v}" for k, v in extra.items())
    return f"  meshes: [{{path: {path}, crs: 'EPSG:5186', origin: [{X0}, {Y0}, 15.0]{more}}}]\n"


def _gcps(tmp: Path, text: bytes | str) -> str:
    return f"  gcps: {{path: {_write(tmp, 'gcps.csv', text)}, crs: 'EPSG:5186'}}\n"


def test_the_corpus_is_large():
    assert len(CASES) >= 60


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_is_one_line_and_the_bundle_stays(name, tmp_path, good_workdir, capsys):
    bad = CASES[name](tmp_path)
    workdir = tmp_path / "w"
    shutil.copytree(good_workdir, workdir, symlinks=True)
    sums = (workdir / "bundle" / "SHA256SUMS").read_bytes()
    cfg = tmp_path / "bad.yaml"
    cfg.write_bytes(bad.config_bytes())
    args = ["run", str(cfg), "--quiet", *bad.args]
    if "--workdir" not in bad.args:
        args += ["--workdir", str(workdir)]
    code, err = _cli(args, capsys)
    errors = [ln for ln in err.splitlines() if ln.startswith("dmctwin: error:")]
    assert code == 2 and "Traceback" not in err, err
    assert len(errors) == 1 and len([ln for ln in err.splitlines() if ln.strip()]) - len(errors) == sum(
        ln.startswith("dmctwin: warning:") for ln in err.splitlines()), err
    for needle in bad.says:
        assert needle in errors[0], (needle, errors[0])
    assert (workdir / "bundle" / "SHA256SUMS").read_bytes() == sums
    assert not list(workdir.rglob(".tmp-*"))



def _shapefile_cp949(tmp: Path) -> Path:
    """A shapefile whose .dbf text is CP949 with no .cpg beside it, as Korean portals hand them out."""
    import pyogrio.raw
    import shapely

    path = tmp / "buildings.shp"
    sq = shapely.from_geojson(json.dumps(_square()))
    pyogrio.raw.write(path, shapely.to_wkb(np.array([sq], dtype=object)),
                      [np.array(["B1"], dtype=object), np.array(["상암 타워"], dtype=object)], ["id", "name"],
                      crs="EPSG:5186", geometry_type="Polygon", encoding="cp949", driver="ESRI Shapefile")
    path.with_suffix(".cpg").unlink()
    return path


def _wiggly(tmp: Path, n: int = 100_000) -> Path:
    a = np.linspace(0, 2 * np.pi, n, endpoint=False)
    r = 30 + 0.5 * np.sin(50 * a)
    ring = np.column_stack([X0 + r * np.cos(a), Y0 + r * np.sin(a)]).tolist()
    return _geojson(tmp, [_feature({"type": "Polygon", "coordinates": [ring + ring[:1]]})], "wiggly.geojson")


def _edges_nodata(tmp: Path) -> Path:
    values = np.full((60, 60), 15.0)
    values[:, :3] = values[-2:, :] = -9999.0  # clipped to a boundary
    return _dem(tmp, values, "clipped.tif")


def _half_nodata(tmp: Path) -> Path:
    values = np.full((60, 60), 15.0)
    values[:, :30] = -9999.0
    return _dem(tmp, values, "half.tif")


KOREAN = "상암 디지털미디어시티"
#: awkward but sound inputs: name -> builder(tmp) -> (config bytes, check on the workdir)
GOOD: dict[str, Callable[[Path], tuple[bytes, Callable[[Path], bool]]]] = {
    "dem: edge rows and columns of nodata": lambda t: (
        Bad(f"  dem: {{path: {_edges_nodata(t)}}}\n").config_bytes(), lambda w: _layers(w) == {"terrain"}),
    "dem: nodata over half of it": lambda t: (
        Bad(f"  dem: {{path: {_half_nodata(t)}}}\n").config_bytes(), lambda w: _layers(w) == {"terrain"}),
    "config: CP949 text with a Korean site name": lambda t: (
        Bad(config=f"site: {{name: {KOREAN}}}\n").config_bytes().decode().encode("cp949"),
        lambda w: KOREAN in (w / "bundle" / "README.md").read_text(encoding="utf-8")),
    "gcps: UTF-8 with a byte-order mark": lambda t: (
        Bad(DEM_IN + _gcps(t, "\ufeff" + GCP_OK)).config_bytes(),
        lambda w: _report(w, "georef")["control"]["points"] == 1),
    "gcps: CP949 with Korean ids": lambda t: (
        Bad(DEM_IN + _gcps(t, f"id,x,y,z\n기준점1,{X0},{Y0},15.0\n".encode("cp949"))).config_bytes(),
        lambda w: "기준점1" in (w / "artifacts" / "georef" / "gcps.json").read_text(encoding="utf-8")),
    "footprints: 100,000 vertices": lambda t: (
        Bad(DEM_IN + f"  footprints: {{path: {_wiggly(t)}}}\n").config_bytes(),
        lambda w: _layers(w) == {"terrain", "buildings"}),
    "footprints: a CP949 shapefile without .cpg": lambda t: (
        Bad(DEM_IN + f"  footprints: {{path: {_shapefile_cp949(t)}}}\n").config_bytes(),
        lambda w: _report(w, "mesh")["buildings"]["buildings"] == 1 and "상암 타워" in
        (w / "artifacts" / "mesh" / "buildings.jsonl").read_text(encoding="utf-8")),
}


def _layers(workdir: Path) -> set[str]:
    root = json.loads((workdir / "bundle" / "tileset.json").read_text())["root"]
    return {c["content"]["uri"].split("/")[0] for c in root["children"]}


def _report(workdir: Path, stage: str) -> dict:
    return json.loads((workdir / "reports" / f"{stage}.json").read_text(encoding="utf-8"))


@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", sorted(GOOD))
def test_awkward_but_sound_input_makes_a_bundle(name, tmp_path, capsys):
    config, check = GOOD[name](tmp_path)
    cfg = tmp_path / "good.yaml"
    try:  # the case's own encoding is kept: one case is a CP949 config
        encoding, text = "utf-8", config.decode("utf-8")
    except UnicodeDecodeError:
        encoding, text = "cp949", config.decode("cp949")
    doc = yaml.safe_load(text)
    doc["stages"] = _merged(doc.get("stages"), {"mesh": {"terrain_lods": 1}})
    cfg.write_bytes(yaml.safe_dump(doc, allow_unicode=True).encode(encoding))
    code, err = _cli(["run", str(cfg), "--workdir", str(tmp_path / "w"), "--quiet"], capsys)
    assert code == 0 and "Traceback" not in err, err
    assert check(tmp_path / "w")
