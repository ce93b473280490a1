"""The bundle's STAC catalog: valid under pystac and stac-validator with no network, checksums and
projection fields true to the files, and damage found."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
from pathlib import Path

import pyproj
import pystac
import pytest
import rasterio

from pipeline.core.stac import (CATALOG, Layer, LayerAsset, check_catalog, extension_schema_files, offline_validator,
                                write_catalog)


def _stac_validator_map() -> dict[str, str]:
    """Every schema stac-validator would fetch, mapped to a local copy: pystac's core STAC 1.1.0
    and GeoJSON schemas and this package's extension schemas."""
    core = Path(pystac.validation.__file__).parent / "jsonschemas" / "stac-spec" / "v1.1.0"
    out = {f"https://schemas.stacspec.org/v1.1.0/{k}-spec/json-schema/{k}.json": str(core / f"{k}.json")
           for k in ("item", "catalog", "collection")}
    for p in core.glob("*.json"):
        out.setdefault(f"https://schemas.stacspec.org/v1.1.0/item-spec/json-schema/{p.name}", str(p))
    for name in ("Feature", "Geometry"):
        out[f"https://geojson.org/schema/{name}.json"] = str(core.parent.parent / "geojson" / f"{name}.json")
    out.update({url: str(path) for url, path in extension_schema_files().items()})
    return out


def _stac_validator(catalog: Path) -> tuple[bool, list[dict]]:
    from stac_validator import stac_validator

    v = stac_validator.StacValidate(str(catalog), recursive=True, schema_map=_stac_validator_map())
    return v.run(), v.message


def _tiny_bundle(tmp_path: Path) -> Path:
    bundle = tmp_path / "b"
    (bundle / "data").mkdir(parents=True)
    (bundle / "data" / "a.json").write_text('{"a": 1}')
    (bundle / "README.md").write_text("# tiny\n")
    return bundle


def _write_tiny(bundle: Path, start: dt.datetime, end: dt.datetime) -> None:
    asset = LayerAsset("a", "data/a.json", "application/json", ("data",), "A")
    write_catalog(bundle, collection_id="tiny", title="Tiny", description="A tiny bundle.", version="1.0.0",
                  bbox=[126.88, 37.57, 126.89, 37.58], start=start, end=end, assets={"a": asset},
                  layers=[Layer("a", "A", "The A layer.", (126.88, 37.57, 126.89, 37.58), [asset],
                                {"proj:epsg": 4326}),
                          Layer("readme", "Readme", "Words.", (126.88, 37.57, 126.89, 37.58),
                                [LayerAsset("readme", "README.md", "text/markdown", ("overview",))])],
                  properties={})


def test_a_written_catalog_validates_offline_and_its_checksums_are_the_files(tmp_path):
    bundle = _tiny_bundle(tmp_path)
    day = dt.datetime(2024, 5, 1, tzinfo=dt.UTC)
    _write_tiny(bundle, day, day)
    assert check_catalog(bundle) == []
    ok, messages = _stac_validator(bundle / CATALOG)
    assert ok, messages
    collection = pystac.Collection.from_file(str(bundle / CATALOG))
    items = list(collection.get_items())
    assert sorted(i.id for i in items) == ["a", "readme"]
    for path in sorted((bundle / "stac").glob("*.json")):
        # the file as written (pystac's reader moves extensions to their newest versions)
        pystac.validation.validate_dict(json.loads(path.read_text()), validator=offline_validator())
    for item in items:
        assert item.datetime == day
        for asset in item.assets.values():
            data = Path(asset.get_absolute_href()).read_bytes()
            assert asset.extra_fields["file:checksum"] == "1220" + hashlib.sha256(data).hexdigest()
            assert asset.extra_fields["file:size"] == len(data)
    # self-contained: no absolute path of this machine anywhere
    for path in [bundle / CATALOG, *sorted((bundle / "stac").glob("*.json"))]:
        assert str(tmp_path) not in path.read_text()


def test_a_span_of_days_is_a_start_and_an_end(tmp_path):
    bundle = _tiny_bundle(tmp_path)
    _write_tiny(bundle, dt.datetime(2023, 10, 27, tzinfo=dt.UTC), dt.datetime(2023, 11, 2, tzinfo=dt.UTC))
    item = json.loads((bundle / "stac" / "a.json").read_text())
    assert item["properties"]["datetime"] is None
    assert (item["properties"]["start_datetime"], item["properties"]["end_datetime"]) == (
        "2023-10-27T00:00:00Z", "2023-11-02T00:00:00Z")
    assert check_catalog(bundle) == []


def test_damage_to_the_catalog_is_found(tmp_path):
    bundle = _tiny_bundle(tmp_path)
    day = dt.datetime(2024, 5, 1, tzinfo=dt.UTC)
    _write_tiny(bundle, day, day)
    item = json.loads((bundle / "stac" / "a.json").read_text())
    item["properties"]["proj:epsg"] = "EPSG:4326"  # v1.1 wants the integer
    (bundle / "stac" / "a.json").write_text(json.dumps(item))
    (bundle / "data" / "a.json").write_text('{"a": 2}')
    (bundle / "stac" / "readme.json").unlink()
    problems = check_catalog(bundle)
    assert ("stac/a.json", "STAC: properties/proj:epsg: 'EPSG:4326' is not of type 'integer', 'null'") in problems
    assert ("stac/a.json", "asset 'a': ../data/a.json: file:checksum differs: changed since it was published"
            ) in problems
    assert ("catalog.json", "asset 'a': data/a.json: file:checksum differs: changed since it was published"
            ) in problems
    assert ("catalog.json", "link 'item': ./stac/readme.json does not exist") in problems
    assert len(problems) == 4, problems


@pytest.mark.slow
def test_the_sample_catalog_is_valid_stac_with_true_projection_fields(sample_run):
    bundle = sample_run / "bundle"
    assert check_catalog(bundle) == []
    ok, messages = _stac_validator(bundle / CATALOG)
    assert ok, messages
    assert len(messages) == 9  # the Collection and its eight Items
    collection = pystac.Collection.from_file(str(bundle / CATALOG))
    items = {i.id: i for i in collection.get_items()}
    assert set(items) == {"terrain", "buildings", "pointcloud", "anchors", "dtm", "dsm", "sunlight", "reports"}
    assert collection.extra_fields["version"] == "0.1.0"
    # the sample's LAZ header dates its capture
    assert items["dtm"].datetime == dt.datetime(2023, 10, 27, tzinfo=dt.UTC)
    raw = {p.stem: json.loads(p.read_text()) for p in (bundle / "stac").glob("*.json")}  # as written, unmigrated
    for key in ("dtm", "dsm"):
        props = raw[key]["properties"]
        with rasterio.open(bundle / "rasters" / f"{key}.tif") as src:
            assert pyproj.CRS(src.crs.to_wkt()).sub_crs_list[0].to_epsg() == props["proj:epsg"] == 5186
            assert props["proj:shape"] == [src.height, src.width]
            assert props["proj:transform"] == list(src.transform)[:6]
            assert props["proj:bbox"] == pytest.approx(list(src.bounds))
    for item in items.values():
        for asset in item.assets.values():
            data = Path(asset.get_absolute_href()).read_bytes()
            assert asset.extra_fields["file:checksum"] == "1220" + hashlib.sha256(data).hexdigest()
    assert raw["terrain"]["properties"]["proj:epsg"] == 4978
    assert raw["anchors"]["properties"]["proj:epsg"] == 4979


@pytest.mark.slow
def test_verify_reports_a_changed_raster_through_the_catalog(sample_run, tmp_path):
    bundle = tmp_path / "bundle"
    shutil.copytree(sample_run / "bundle", bundle)
    with rasterio.open(bundle / "rasters" / "dtm.tif", "r+") as dst:
        band = dst.read(1)
        band[10, 10] += 1.0
        dst.write(band, 1)
    problems = [f"{f}: {m}" for f, m in check_catalog(bundle)]
    assert "stac/dtm.json: asset 'elevation': ../rasters/dtm.tif: file:checksum differs: changed since it was " \
           "published" in problems
