"""Vector CRS detection: GPKG, shapefile .prj, GeoJSON crs member and RFC 7946's CRS84."""

from __future__ import annotations

import json

import numpy as np
import pyogrio.raw
import pytest
import shapely

from pipeline.core.vector import read_features
from pipeline.errors import CRSError, InputError
from tests.nasty import L_SHAPE


@pytest.mark.parametrize("ext,driver", [("gpkg", "GPKG"), ("shp", "ESRI Shapefile")])
def test_crs_from_gpkg_and_prj(tmp_path, ext, driver):
    path = tmp_path / f"b.{ext}"
    geom = shapely.affinity.translate(L_SHAPE, 953000, 1952000)
    pyogrio.raw.write(path, np.array([shapely.to_wkb(geom)], dtype=object), [np.array(["B1"])],
                      fields=["id"], geometry_type="Polygon", crs="EPSG:5179", driver=driver)
    fs = read_features(path)
    assert fs.crs.to_epsg() == 5179 and fs.value("id", 0) == "B1"
    assert fs.geometries[0].equals(geom)  # shapefiles store exteriors clockwise
    assert read_features(path, crs="EPSG:5186").crs.to_epsg() == 5186


def test_geojson_without_crs_is_crs84(tmp_path):
    p = tmp_path / "p.geojson"
    p.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"name": "x"},
         "geometry": {"type": "Point", "coordinates": [126.89, 37.58]}}]}))
    fs = read_features(p)
    assert fs.crs.to_epsg() == 4326 and fs.geometries[0].x == pytest.approx(126.89)


def test_missing_and_unreadable(tmp_path):
    with pytest.raises(InputError, match="not found"):
        read_features(tmp_path / "none.gpkg")
    bad = tmp_path / "bad.geojson"
    bad.write_text("{not json")
    with pytest.raises(InputError, match="bad.geojson"):
        read_features(bad)


def test_shapefile_without_prj_needs_a_crs(tmp_path):
    path = tmp_path / "noprj.shp"
    pyogrio.raw.write(path, np.array([shapely.to_wkb(L_SHAPE)], dtype=object), [np.array([1])],
                      fields=["n"], geometry_type="Polygon", driver="ESRI Shapefile")
    with pytest.raises(CRSError, match="noprj.shp"):
        read_features(path)
    assert read_features(path, default_crs="EPSG:5186").crs.to_epsg() == 5186


def test_a_cpg_that_misstates_the_encoding_is_named_not_mojibake(tmp_path):
    path = tmp_path / "b.shp"
    pyogrio.raw.write(path, shapely.to_wkb(np.array([shapely.box(190000, 553000, 190020, 553020)], dtype=object)),
                      [np.array(["B1"], dtype=object), np.array(["상암 타워"], dtype=object)], ["id", "name"],
                      crs="EPSG:5186", geometry_type="Polygon", encoding="cp949", driver="ESRI Shapefile")
    path.with_suffix(".cpg").write_text("UTF-8")  # a .cpg that says UTF-8 over CP949 text
    with pytest.raises(InputError, match=r"b\.shp: the attributes' text is not utf-8, as the file declares \(its "
                                         r"\.cpg\): an attribute value holds byte 0xbb.*\(Korean layers: cp949\)"):
        read_features(path)
    assert read_features(path, encoding="cp949").fields["name"].tolist() == ["상암 타워"]
