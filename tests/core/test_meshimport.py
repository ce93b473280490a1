"""Imported models: read in every format, repaired with counts, placed where PROJ puts them."""

from __future__ import annotations

import numpy as np
import pyproj
import pytest
import trimesh

from pipeline.core.geodesy import SiteFrame
from pipeline.core.meshimport import local_to_site, model_to_local, read_mesh, repair_mesh
from pipeline.errors import InputError


@pytest.mark.parametrize("suffix", ["obj", "ply", "glb", "stl"])
def test_every_format_reads_the_same_mesh(tmp_path, suffix):
    box = trimesh.creation.box((4, 6, 8))
    path = tmp_path / f"m.{suffix}"
    box.export(path)
    v, f = read_mesh(path)
    v, f, fixed = repair_mesh(v, f)
    assert len(f) == 12 and fixed.watertight
    assert trimesh.Trimesh(v, f).volume == pytest.approx(4 * 6 * 8, rel=1e-6)


def test_meshes_without_faces_or_files_are_clear_errors(tmp_path):
    cloud = tmp_path / "points.ply"
    trimesh.PointCloud(np.random.default_rng(0).normal(size=(20, 3))).export(cloud)
    with pytest.raises(InputError, match="no faces"):
        read_mesh(cloud)
    with pytest.raises(InputError, match="not found"):
        read_mesh(tmp_path / "nowhere.obj")
    bad = tmp_path / "bad.glb"
    bad.write_bytes(b"glTF not really")
    with pytest.raises(InputError, match="not a readable mesh"):
        read_mesh(bad)
    fbx = tmp_path / "m.fbx"
    fbx.write_text("x")
    with pytest.raises(InputError, match="unsupported"):
        read_mesh(fbx)


def test_repair_counts_what_it_fixes():
    box = trimesh.creation.box((2, 2, 2))
    v = np.vstack([box.vertices, box.vertices[:1], [[np.nan, 0, 0]]])  # a duplicate and a NaN vertex
    f = np.vstack([box.faces, box.faces[:1],                             # a duplicate face
                   [[0, 0, 1]],                                          # a degenerate face
                   [[8, 9, 1]]])                                         # a face on the NaN vertex
    f[0] = f[0][::-1]                                                    # one face wound backwards
    v2, f2, r = repair_mesh(v, f)
    assert (r.nonfinite_faces, r.duplicate_faces, r.degenerate_faces) == (1, 1, 1)
    assert r.merged_vertices >= 1 and r.winding_fixed and r.watertight
    assert len(f2) == 12 and trimesh.Trimesh(v2, f2).volume == pytest.approx(8.0)


def test_placement_matches_proj_topocentric():
    site = SiteFrame(37.5770, 126.8898)
    lon, lat, h = 126.8921, 37.5796, 38.0
    model = np.array([[0, 0, 0], [10, 0, 0], [0, 10, 0], [0, 0, 300], [3, -7, 12]], float)
    local = model_to_local(model, up_axis="z", scale=1.0, heading_deg=30.0)
    # the model's +y (north) points 30 degrees east of north
    assert local[2] == pytest.approx([10 * np.sin(np.radians(30)), 10 * np.cos(np.radians(30)), 0])
    enu = local_to_site(local, lon, lat, h, site)
    # independent: PROJ's topocentric conversion at the model origin, then ECEF -> site ENU
    topo = pyproj.Transformer.from_pipeline(
        f"+proj=pipeline +step +inv +proj=topocentric +ellps=WGS84 +lon_0={lon} +lat_0={lat} +h_0={h}")
    x, y, z = topo.transform(local[:, 0], local[:, 1], local[:, 2], errcheck=True)
    expect = site.ecef_to_enu(np.column_stack([x, y, z]))
    assert np.abs(enu - expect).max() < 1e-6
    # y-up models (glTF) are turned to z-up; scale turns units into metres
    yup = model_to_local(np.array([[1.0, 2.0, 3.0]]), up_axis="y", scale=0.01, heading_deg=0.0)
    assert yup[0] == pytest.approx([0.01, -0.03, 0.02])
