"""The national geoid as NGII distributes it (and Gravsoft grids): read, cached, named, and
equal to the same undulations through a GTX grid and through PROJ's own EGM96."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from pipeline.core.geodesy import GeoidModel, resolve_geoid
from pipeline.core.geoid_grids import identify
from pipeline.errors import GeoidError

# EGM96's own 15' nodes over the Korean peninsula: a grid resampled there interpolates exactly
# as PROJ interpolates egm96_15.gtx, so all three paths must agree to float32 precision
LATS = np.arange(39.0, 32.99, -0.25)
LONS = np.arange(124.0, 132.01, 0.25)


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DMCTWIN_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def egm96() -> GeoidModel:
    return GeoidModel.from_spec("egm96")


@pytest.fixture(scope="module")
def nodes(egm96) -> np.ndarray:
    """(rows north to south, columns west to east) of EGM96 undulations at its own nodes."""
    lon, lat = np.meshgrid(LONS, LATS)
    return egm96.undulation(lon.ravel(), lat.ravel()).reshape(lon.shape)


def write_ngii(path, nodes, *, shuffle: bool = False, newline: str = "\n", lats=LATS, lons=LONS) -> None:
    """NGII's layout: 'latitude<TAB>longitude<TAB>N' per line, no header."""
    lon, lat = np.meshgrid(lons, lats)
    rows = np.column_stack([lat.ravel(), lon.ravel(), nodes.ravel()])
    if shuffle:
        rows = rows[np.random.default_rng(7).permutation(len(rows))]
    path.write_text(newline.join(f"{a:.6f}\t{b:.6f}\t{n:.6f}" for a, b, n in rows) + newline)


def write_gravsoft(path, nodes) -> None:
    head = f"{LATS[-1]:.4f} {LATS[0]:.4f} {LONS[0]:.4f} {LONS[-1]:.4f} 0.25 0.25\n"
    body = "\n".join(" ".join(f"{v:.6f}" for v in row) for row in nodes)
    path.write_text(head + body + "\n")


def write_gtx(path, nodes) -> None:
    with rasterio.open(path, "w", driver="GTX", height=nodes.shape[0], width=nodes.shape[1], count=1,
                       dtype="float32", crs="EPSG:4326",
                       transform=from_origin(LONS[0] - 0.125, LATS[0] + 0.125, 0.25, 0.25)) as dst:
        dst.write(nodes.astype(np.float32), 1)


def probe() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(20261127)
    return rng.uniform(124.3, 131.7, 400), rng.uniform(33.3, 38.7, 400)


@pytest.mark.parametrize("layout", ["ngii", "ngii-shuffled-crlf", "gravsoft"])
def test_text_grid_equals_gtx_and_egm96(tmp_path, nodes, egm96, layout):
    src = tmp_path / ("KNGeoid24.dat" if layout.startswith("ngii") else "KNGeoid14.gri")
    if layout == "gravsoft":
        write_gravsoft(src, nodes)
    else:
        write_ngii(src, nodes, shuffle=layout != "ngii", newline="\r\n" if layout != "ngii" else "\n")
    write_gtx(tmp_path / "same.gtx", nodes)
    lon, lat = probe()
    n_text = GeoidModel.from_spec(str(src)).undulation(lon, lat)
    n_gtx = GeoidModel.from_spec(str(tmp_path / "same.gtx")).undulation(lon, lat)
    assert np.abs(n_text - n_gtx).max() < 1e-3
    assert np.abs(n_text - egm96.undulation(lon, lat)).max() < 1e-3
    # and at the nodes themselves, the values the file holds
    assert np.abs(GeoidModel.from_spec(str(src)).undulation(np.array([126.5]), np.array([37.5]))
                  - nodes[LATS.tolist().index(37.5), LONS.tolist().index(126.5)]).max() < 1e-4


def test_model_is_named_with_its_accuracy(tmp_path, nodes):
    src = tmp_path / "KNGeoid24.dat"
    write_ngii(src, nodes)
    info = GeoidModel.from_spec(str(src)).info
    assert (info.name, info.version, info.source, info.format) == ("KNGeoid24", "2024", "KNGeoid24.dat", "ngii")
    assert info.accuracy_m == pytest.approx(0.023) and "Lee & Kwon" in info.accuracy_source
    assert info.label() == "KNGeoid24 (2024), 1 sigma 0.023 m"
    own = GeoidModel.from_spec(str(src), name="SeoulLocal", accuracy_m=0.05).info
    assert (own.name, own.accuracy_m, own.accuracy_source) == ("SeoulLocal", 0.05, "site.geoid_accuracy_m")
    assert identify(tmp_path / "mygrid.tif")[2] is None  # an unknown grid states no accuracy


def test_conversion_is_cached_by_content(tmp_path, nodes):
    src = tmp_path / "KNGeoid18.dat"
    write_ngii(src, nodes)
    first = resolve_geoid(str(src))
    stamp = first.stat().st_mtime_ns
    assert resolve_geoid(str(src)) == first and first.stat().st_mtime_ns == stamp
    write_ngii(src, nodes + 1.0)
    second = resolve_geoid(str(src))
    assert second != first
    lon, lat = probe()
    assert np.allclose(GeoidModel(second).undulation(lon, lat) - GeoidModel(first).undulation(lon, lat), 1.0,
                       atol=1e-4)


@pytest.mark.parametrize("case, match", [
    ("missing_node", "not complete"),
    ("lon_first", "out of range"),
    ("irregular", "regular"),
    ("text", "not a geoid grid"),
    ("gravsoft_short", "header promises"),
])
def test_broken_grid_names_the_file(tmp_path, nodes, case, match):
    src = tmp_path / "KNGeoid24.dat"
    write_ngii(src, nodes)
    lines = src.read_text().splitlines()
    if case == "missing_node":
        src.write_text("\n".join(lines[:-1]) + "\n")
    elif case == "lon_first":
        src.write_text("\n".join("\t".join(np.array(ln.split("\t"))[[1, 0, 2]]) for ln in lines))
    elif case == "irregular":
        a, b, n = lines[5].split("\t")
        lines[5] = f"{float(a) + 0.1:.6f}\t{b}\t{n}"
        src.write_text("\n".join(lines))
    elif case == "text":
        src.write_text("latitude longitude N\nnot a grid\n")
    else:
        src = tmp_path / "g.gri"
        write_gravsoft(src, nodes)
        src.write_text(src.read_text().rsplit("\n", 2)[0] + "\n")
    with pytest.raises(GeoidError, match=match) as e:
        GeoidModel.from_spec(str(src))
    assert str(src.name) in str(e.value)
