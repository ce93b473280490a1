"""Frames against PROJ computed another way (compound-CRS pipelines, PROJ's topocentric)."""

from __future__ import annotations

import numpy as np
import pyproj
import pytest

from pipeline.core.geodesy import (GeoidModel, SiteFrame, check_area_of_use, check_near_site,
                                   ellipsoid_normals_ecef, ensure_proj_data, enu_axes_ecef, geodetic_to_ecef,
                                   geodetic_to_source, parse_crs,
                                   resolve_geoid, source_to_geodetic, vertical_kind, vertical_unit_factor,
                                   with_linear_unit)
from pipeline.errors import CRSError, GeoidError

ORIGIN = (37.5770, 126.8898)


@pytest.fixture(scope="module")
def geoid() -> GeoidModel:
    return GeoidModel.from_spec("egm96")


def test_undulation_matches_compound_crs_at_origin(geoid):
    ensure_proj_data()
    # independent: PROJ's own EPSG:4326+5773 -> 4979 pipeline (height 0 above EGM96)
    t = pyproj.Transformer.from_crs("EPSG:4326+5773", "EPSG:4979", always_xy=True)
    _, _, expected = t.transform(ORIGIN[1], ORIGIN[0], 0.0, errcheck=True)
    n = geoid.undulation(np.array([ORIGIN[1]]), np.array([ORIGIN[0]]))[0]
    assert n == pytest.approx(expected, abs=1e-6)
    assert 22.0 < n < 23.5  # ~ +22.7 m around Seoul


def test_outside_grid_is_an_error(geoid):
    with pytest.raises(GeoidError, match="outside"):
        geoid.undulation(np.array([0.0]), np.array([95.0]))


def test_missing_grid_file_names_it(tmp_path):
    with pytest.raises(GeoidError) as e:
        resolve_geoid(str(tmp_path / "kngeoid18.gtx"))
    assert "kngeoid18.gtx" in str(e.value)


@pytest.mark.parametrize("epsg", [5186, 5179, 5174, 32652])
def test_source_to_geodetic_matches_pyproj_compound(geoid, epsg):
    ensure_proj_data()
    lon0, lat0 = ORIGIN[1], ORIGIN[0]
    fwd = pyproj.Transformer.from_crs("EPSG:4326", f"EPSG:{epsg}", always_xy=True)
    x, y = fwd.transform(np.array([lon0, lon0 + 0.01]), np.array([lat0, lat0 - 0.01]))
    H = np.array([15.0, 98.0])
    crs = pyproj.CRS.from_user_input(f"EPSG:{epsg}+5773")
    lon, lat, h = source_to_geodetic(crs, x, y, H, heights="orthometric", geoid=geoid)
    ref = pyproj.Transformer.from_crs(crs, "EPSG:4979", always_xy=True)
    elon, elat, eh = ref.transform(x, y, H, errcheck=True)
    assert np.allclose(lon, elon, atol=1e-9) and np.allclose(lat, elat, atol=1e-9)
    assert np.allclose(h, eh, atol=1e-3)


def test_feet_crs_units_honoured(geoid):
    # NAD83 / Texas Central (ftUS) + NAVD88 height (ftUS): nothing Korean, only the units matter
    crs = pyproj.CRS.from_user_input("EPSG:2277+6360")
    assert vertical_unit_factor(crs) == pytest.approx(0.3048006096, rel=1e-9)
    t = pyproj.Transformer.from_crs("EPSG:4326", "EPSG:2277", always_xy=True)
    x, y = t.transform(-97.74, 30.27)
    lon, lat, h = source_to_geodetic(crs, np.array([x]), np.array([y]), np.array([100.0]),
                                     heights="orthometric", geoid=geoid)
    assert lon[0] == pytest.approx(-97.74, abs=1e-9) and lat[0] == pytest.approx(30.27, abs=1e-9)
    n = geoid.undulation(lon, lat)[0]
    assert h[0] == pytest.approx(100.0 * 0.3048006096 + n, abs=1e-6)


def test_vertical_kind():
    assert vertical_kind(parse_crs("EPSG:5186+5773"), "ellipsoidal") == "orthometric"
    assert vertical_kind(parse_crs("EPSG:4979"), "orthometric") == "ellipsoidal"
    assert vertical_kind(parse_crs("EPSG:5186"), "orthometric") == "orthometric"


def test_unknown_crs_is_named():
    with pytest.raises(CRSError, match="EPSG:999999"):
        parse_crs("EPSG:999999", path="x.laz")


def test_enu_origin_and_roundtrip():
    f = SiteFrame(ORIGIN[0], ORIGIN[1], 0.0)
    lon, lat, h = f.enu_to_geodetic(np.zeros((1, 3)))
    assert lon[0] == pytest.approx(ORIGIN[1], abs=1e-12)
    assert lat[0] == pytest.approx(ORIGIN[0], abs=1e-12)
    assert h[0] == pytest.approx(0.0, abs=1e-6)
    rng = np.random.default_rng(1)
    enu = rng.uniform(-2000, 2000, (100, 3))
    back = f.geodetic_to_enu(*f.enu_to_geodetic(enu))
    assert np.abs(back - enu).max() < 1e-6


def test_enu_matches_proj_topocentric():
    f = SiteFrame(ORIGIN[0], ORIGIN[1], 10.0)
    topo = pyproj.Transformer.from_pipeline(
        f"+proj=topocentric +ellps=WGS84 +lat_0={ORIGIN[0]} +lon_0={ORIGIN[1]} +h_0=10")
    ecef = geodetic_to_ecef(np.array([126.90, 126.88]), np.array([37.58, 37.56]), np.array([0.0, 95.0]))
    e, n, u = topo.transform(ecef[:, 0], ecef[:, 1], ecef[:, 2])
    assert np.allclose(f.ecef_to_enu(ecef), np.column_stack([e, n, u]), atol=1e-6)
    # U is not height: 1 km away a point on the ellipsoid is below the tangent plane
    assert f.ecef_to_enu(ecef)[0, 2] < -10.0


def test_ellipsoid_normals_are_the_up_axis_and_pyproj_s_vertical():
    rng = np.random.default_rng(2)
    lon, lat = rng.uniform(-180, 180, 500), rng.uniform(-89, 89, 500)
    up = ellipsoid_normals_ecef(lon, lat)
    assert np.array_equal(up, enu_axes_ecef(lon, lat)[:, :, 2])
    step = geodetic_to_ecef(lon, lat, np.full(500, 1.0)) - geodetic_to_ecef(lon, lat, np.zeros(500))
    assert np.abs(up - step).max() < 1e-8


def test_enu_to_ecef_matrix_maps_points():
    f = SiteFrame(ORIGIN[0], ORIGIN[1], 0.0)
    enu = np.array([[100.0, -250.0, 30.0]])
    m = f.enu_to_ecef_matrix()
    assert np.allclose(m[:3, :3] @ enu[0] + m[:3, 3], f.enu_to_ecef(enu)[0], atol=1e-8)


def test_far_data_is_refused_with_where_it_lands():
    f = SiteFrame(ORIGIN[0], ORIGIN[1])
    with pytest.raises(CRSError) as e:
        check_near_site(f, np.array([127.5]), np.array([36.0]), 20.0, crs_name="EPSG:5186",
                        path="feet.laz")
    msg = str(e.value)
    assert "feet.laz" in msg and "lands at" in msg and "EPSG:5186" in msg


@pytest.mark.parametrize("crs_text", ["EPSG:5186+5773", "EPSG:5179+5773", "EPSG:5174+5773",
                                      "EPSG:32652+5773", "EPSG:4326+5773", "EPSG:2277+5773"])
def test_both_directions_against_pyproj(geoid, crs_text):
    """geodetic -> source and back, each compared with PROJ's own compound-CRS pipeline.

    (EPSG:2277 is a US-survey-feet CRS; its NAVD88 partner would need a grid PROJ lacks here and
    would silently fall back to a ballpark without geoid, so it is paired with EGM96.)"""
    ensure_proj_data()
    crs = pyproj.CRS.from_user_input(crs_text)
    if crs_text.startswith("EPSG:2277"):  # a feet CRS needs its own area (Texas)
        lon, lat = np.array([-97.74, -97.70]), np.array([30.27, 30.30])
    else:
        lon, lat = np.array([126.8898, 126.90]), np.array([37.577, 37.57])
    h = np.array([40.0, 120.0])
    x, y, z = geodetic_to_source(crs, lon, lat, h, heights="orthometric", geoid=geoid)
    ref = pyproj.Transformer.from_crs("EPSG:4979", crs, always_xy=True)
    ex, ey, ez = ref.transform(lon, lat, h, errcheck=True)
    scale = 1e-9 if crs.sub_crs_list[0].is_geographic else 1e-4
    assert np.allclose(x, ex, atol=scale) and np.allclose(y, ey, atol=scale)
    assert np.allclose(z, ez, atol=2e-3)
    lon2, lat2, h2 = source_to_geodetic(crs, x, y, z, heights="orthometric", geoid=geoid)
    assert np.allclose(lon2, lon, atol=1e-10) and np.allclose(lat2, lat, atol=1e-10)
    assert np.allclose(h2, h, atol=1e-6)


def test_area_of_use():
    crs = parse_crs("EPSG:5186")
    check_area_of_use(crs, np.array([126.89]), np.array([37.58]), path="ok.laz")
    with pytest.raises(CRSError) as e:
        check_area_of_use(crs, np.array([131.5]), np.array([48.0]), path="far.laz")
    assert "far.laz" in str(e.value) and "area of use" in str(e.value)


def test_linear_unit_override_keeps_the_projection():
    crs = with_linear_unit(parse_crs("EPSG:5186"), 9003)
    to_m = pyproj.Transformer.from_crs(crs, "EPSG:5186", always_xy=True)
    ft = 1200.0 / 3937.0
    x, y = to_m.transform(190265.5 / ft, 553055.9 / ft)
    assert x == pytest.approx(190265.5, abs=1e-6) and y == pytest.approx(553055.9, abs=1e-6)


def test_user_geoid_grid(tmp_path):
    grid = write_gtx(tmp_path / "flat25.gtx", lat0=37.0, lon0=126.0, rows=21, cols=21, step=0.1, value=25.0)
    g = GeoidModel(grid)
    assert g.undulation(np.array([126.8898]), np.array([37.577]))[0] == pytest.approx(25.0)
    with pytest.raises(GeoidError):
        g.undulation(np.array([129.5]), np.array([37.577]))


def write_gtx(path, *, lat0, lon0, rows, cols, step, value):
    """A NOAA GTX grid (big-endian header: lat0, lon0, dlat, dlon, rows, cols; float32 values)."""
    import struct
    header = struct.pack(">4d2i", lat0, lon0, step, step, rows, cols)
    path.write_bytes(header + np.full(rows * cols, value, ">f4").tobytes())
    return path


def test_plan_coordinates_invert_exactly_and_keep_the_plumb_line():
    frame = SiteFrame(*ORIGIN)
    lon = ORIGIN[1] + np.array([0.0, 0.011, -0.017, 0.02])
    lat = ORIGIN[0] + np.array([0.0, -0.013, 0.008, 0.015])
    n = 22.7
    plan = frame.geodetic_to_enu(lon, lat, np.full(4, n))
    back_lon, back_lat = frame.plan_to_geodetic(plan[:, 0], plan[:, 1], n)
    assert np.abs(back_lon - lon).max() < 1e-11 and np.abs(back_lat - lat).max() < 1e-11
    # a point 150 m up its own plumb line keeps its plan position but not its ENU E/N
    up = frame.plan_to_enu(plan[:, 0], plan[:, 1], n, np.full(4, n + 150.0))
    assert np.abs(up - frame.geodetic_to_enu(lon, lat, np.full(4, n + 150.0))).max() < 1e-6
    assert np.abs(up[1:, :2] - plan[1:, :2]).max() > 0.01  # the vertical leans away from ENU up


def test_gis_files_use_a_projected_crs_whatever_the_inputs_say():
    """The site's CRS when projected, else the layer's, else the site's UTM zone: a grid needs
    linear units (a layer in WGS84 degrees, RFC 7946 GeoJSON, has none)."""
    from pipeline.core.geodesy import gis_crs

    wgs84 = pyproj.CRS("OGC:CRS84").to_wkt()
    lon, lat = 126.8898, 37.5770
    assert gis_crs("EPSG:5186", wgs84, lon, lat).to_epsg() == 5186
    assert gis_crs("EPSG:4326", pyproj.CRS("EPSG:5179").to_wkt(), lon, lat).to_epsg() == 5179
    assert gis_crs(None, wgs84, lon, lat).to_epsg() == 32652  # UTM 52N
    assert gis_crs("EPSG:5186+5773", None, lon, lat).to_epsg() == 5186  # the horizontal part
