"""Second sample: the DMC core scanned in a local scanner frame, plus a mis-registered mobile strip.

Built from the main sample (``assets/sample``): a 220 x 220 m crop of the aerial scan is moved
into a scanner frame by a known 7-parameter similarity (the truth), and written without a CRS;
control and check points pair scanner-frame coordinates (target noise) with surveyed EPSG:5186
coordinates (survey noise), two control rows carry blunders. A street strip of the same crop is
shifted and turned slightly in EPSG:5186, as a mobile scan from a drifting trajectory would be.
The truth JSON holds both transforms, the noise and the residual RMSE a perfect fit would show.
"""

from __future__ import annotations

import json
from pathlib import Path

import laspy
import numpy as np
import pyproj
import shapely
from scipy.spatial.transform import Rotation

from pipeline.core.geodesy import GeoidModel, SiteFrame, ensure_proj_data, source_to_geodetic
from pipeline.samples.generator import (CRS_EPSG, ORIGIN_LAT, ORIGIN_LON, compound_crs, origin_xy,
                                        terrain_local)

SEED = 4
CROP_CENTRE = (20.0, 150.0)   # local EPSG:5186 offsets from the origin (m)
CROP_HALF = 110.0
SURVEY_SIGMA = (0.01, 0.015)  # horizontal, vertical (m)
TARGET_SIGMA = 0.01           # scanner-frame target measurement (m)
#: scanner frame -> ENU: scale, rotation (x, y, z Euler, degrees), translation (m)
TRUE_SCALE = 1.0004
TRUE_EULER_DEG = (0.3, -0.2, 37.0)
TRUE_TRANSLATION = (812.5, -640.25, 35.0)
MOBILE_SHIFT = (0.6, -0.4, 0.15)  # EPSG:5186 metres
MOBILE_YAW_DEG = 0.3


def _write(path: Path, las_src: laspy.LasData, keep: np.ndarray, xyz: np.ndarray, crs: pyproj.CRS | None,
           scale: float) -> None:
    header = laspy.LasHeader(point_format=7, version="1.4")
    header.scales = np.array([scale] * 3)
    header.offsets = np.floor(xyz.min(0))
    if crs is not None:
        header.add_crs(crs)
    out = laspy.LasData(header)
    out.x, out.y, out.z = xyz[:, 0], xyz[:, 1], xyz[:, 2]
    for dim in ("intensity", "return_number", "number_of_returns", "classification", "red", "green",
                "blue", "gps_time"):
        out[dim] = np.asarray(las_src[dim])[keep]
    out.write(path)


def generate_unreferenced(sample_dir: str | Path, out_dir: str | Path, seed: int = SEED) -> dict:
    """Write the scanner-frame scan, the mobile strip, the GCP CSV, a config and the truth."""
    ensure_proj_data()
    sample, out = Path(sample_dir), Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    las = laspy.read(sample / "dmc_aerial.laz")
    x0, y0 = origin_xy()
    src = np.column_stack([np.asarray(las.x), np.asarray(las.y), np.asarray(las.z)])
    cx, cy = x0 + CROP_CENTRE[0], y0 + CROP_CENTRE[1]
    keep = (np.abs(src[:, 0] - cx) < CROP_HALF) & (np.abs(src[:, 1] - cy) < CROP_HALF)
    frame = SiteFrame(ORIGIN_LAT, ORIGIN_LON, 0.0)
    geoid = GeoidModel.from_spec("egm96")
    crs = compound_crs()

    def to_enu(xyz: np.ndarray) -> np.ndarray:
        lon, lat, h = source_to_geodetic(crs, xyz[:, 0], xyz[:, 1], xyz[:, 2], heights="orthometric",
                                         geoid=geoid)
        return frame.geodetic_to_enu(lon, lat, h)

    rot = Rotation.from_euler("xyz", TRUE_EULER_DEG, degrees=True).as_matrix()
    t = np.asarray(TRUE_TRANSLATION)

    def to_scanner(enu: np.ndarray) -> np.ndarray:  # inverse of scale * R @ local + t
        return ((enu - t) @ rot) / TRUE_SCALE

    enu_true = to_enu(src[keep])
    _write(out / "scan_local.laz", las, keep, to_scanner(enu_true), None, 0.001)

    # mobile strip: a 30 m wide street band through the crop, shifted and turned in EPSG:5186
    strip = keep & (np.abs(src[:, 1] - cy) < 15.0)
    yaw = np.radians(MOBILE_YAW_DEG)
    c, s = np.cos(yaw), np.sin(yaw)
    d = src[strip] - [cx, cy, 0.0]
    moved = np.column_stack([c * d[:, 0] - s * d[:, 1], s * d[:, 0] + c * d[:, 1], d[:, 2]]) \
        + [cx, cy, 0.0] + np.asarray(MOBILE_SHIFT)
    _write(out / "mobile_strip.laz", las, strip, moved, crs, 0.001)

    # surveyed points on open ground (terrain, away from the footprints of the truth)
    truth = json.loads((sample / "truth" / "truth.json").read_text())
    blocked = shapely.union_all([shapely.from_wkt(b["footprint_wkt"]).buffer(8.0) for b in truth["buildings"]])
    classes = np.load(sample / "truth" / "point_classes.npz")["classes"]
    veg = src[classes == 5][:, :2]
    rows, k = [], 0
    true_surveyed, true_local, roles = [], [], []
    while k < 16:
        px, py = cx + rng.uniform(-95, 95), cy + rng.uniform(-95, 95)
        if blocked.contains(shapely.Point(px, py)) or np.min(np.hypot(*(veg - [px, py]).T)) < 6.0:
            continue
        k += 1
        pz = float(terrain_local(px - x0, py - y0))
        enu = to_enu(np.array([[px, py, pz]]))[0]
        local = to_scanner(enu[None])[0] + rng.normal(0, TARGET_SIGMA, 3)
        surveyed = np.array([px, py, pz]) + rng.normal(0, [SURVEY_SIGMA[0]] * 2 + [SURVEY_SIGMA[1]])
        role = "check" if k > 12 else "control"
        true_surveyed.append(surveyed)
        true_local.append(local)
        roles.append(role)
        rows.append([f"P{k:02d}", *surveyed, *local, role])
    blunders = ["P03", "P08"]
    for r in rows:
        if r[0] in blunders:
            r[1] += 0.8 if r[0] == "P03" else 0.0
            r[3] += -0.6 if r[0] == "P08" else 0.0
    lines = ["id,x,y,z,local_x,local_y,local_z,role"]
    lines += [f"{r[0]},{r[1]:.4f},{r[2]:.4f},{r[3]:.4f},{r[4]:.4f},{r[5]:.4f},{r[6]:.4f},{r[7]}" for r in rows]
    (out / "gcps.csv").write_text("\n".join(lines) + "\n")

    # what a perfect fit would report: residuals of the noisy pairs under the true transform
    sv = to_enu(np.array(true_surveyed))
    fitted = TRUE_SCALE * np.array(true_local) @ rot.T + t
    res = sv - fitted
    ctl = np.array([r == "control" and row[0] not in blunders for r, row in zip(roles, rows, strict=True)])
    rmse_h = float(np.sqrt(np.mean(res[ctl, 0] ** 2 + res[ctl, 1] ** 2)))
    rmse_v = float(np.sqrt(np.mean(res[ctl, 2] ** 2)))
    truth_out = {"seed": seed, "scale": TRUE_SCALE, "euler_xyz_deg": TRUE_EULER_DEG,
                 "translation_enu": TRUE_TRANSLATION, "blunders": blunders,
                 "true_rmse_horizontal_m": rmse_h, "true_rmse_vertical_m": rmse_v,
                 "mobile_shift_m": MOBILE_SHIFT, "mobile_yaw_deg": MOBILE_YAW_DEG,
                 "crop_points": int(keep.sum()), "strip_points": int(strip.sum())}
    (out / "truth.json").write_text(json.dumps(truth_out, indent=1))
    np.save(out / "crop_index.npy", np.flatnonzero(keep))
    np.save(out / "strip_index.npy", np.flatnonzero(strip))
    config = f"""# Generated by dmctwin sample generate --variant unreferenced (synthetic; see truth.json).
site:
  name: Sangam DMC (unreferenced scan sample)
  origin: {{lat: {ORIGIN_LAT}, lon: {ORIGIN_LON}, height: 0.0}}
inputs:
  pointclouds:
    - path: scan_local.laz
      georeference: gcps          # scanner frame: mapped by the control points
    - path: mobile_strip.laz      # EPSG:5186 but off by a drifting trajectory
      align: true
  footprints: {{path: {sample.resolve() / 'buildings.geojson'}}}
  dem: {{path: {sample.resolve() / 'dem.tif'}}}
  gcps:
    path: gcps.csv
    crs: EPSG:{CRS_EPSG}
  pois: {{path: {sample.resolve() / 'pois.geojson'}}}
stages:
  georef: {{registration: {{global_search: never}}}}
"""
    (out / "config.yaml").write_text(config)
    return truth_out
