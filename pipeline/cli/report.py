"""Readable tables of stage reports for the terminal."""

from __future__ import annotations

from typing import Any

from rich.table import Table


def _m(v: float | None, digits: int = 3) -> str:
    return "—" if v is None else f"{v:.{digits}f}"


def georef_tables(report: dict[str, Any]) -> list[Table]:
    """Inputs and where they land; geoid; control fit; LiDAR check; registrations."""
    tables = []
    t = Table(title="georef: inputs (WGS84 extent and ellipsoidal heights where they land)")
    for col in ("file", "CRS", "to WGS84 (PROJ; stated accuracy)", "lon", "lat", "h (m, ellipsoidal)", "z read in"):
        t.add_column(col)
    for e in report.get("inputs", []):
        w, s, east, n = e["wgs84_extent"]
        hr = e.get("ellipsoidal_height_range_m")
        op = e.get("transformation")
        via = "—" if not op else f"{op['name']}; " + (f"{op['accuracy_m']:g} m" if op["accuracy_m"] is not None
                                                      else "accuracy not stated")
        t.add_row(e["file"].rsplit("/", 1)[-1], e["crs"], via, f"{w:.4f}..{east:.4f}", f"{s:.4f}..{n:.4f}",
                  f"{hr[0]:.1f}..{hr[1]:.1f}" if hr else "—", e.get("z_unit") or "—")
    tables.append(t)
    g = report.get("geoid", {})
    lo, hi = g.get("undulation_range_m", [None, None])
    q = Table(title="georef: quality")
    q.add_column("item")
    q.add_column("value")
    q.add_row("geoid grid", f"{g.get('grid', '—')}  (N {_m(lo)}..{_m(hi)} m)")
    if g.get("label"):
        q.add_row("geoid model", g["label"])
    c = report.get("control") or {}
    if c.get("fit") is not None or "rmse_horizontal_m" in c:
        tr = c["transform"]
        q.add_row("control fit", f"{c['control']} control, {c['check']} check, rejected: "
                                 f"{', '.join(c['rejected']) or 'none'}")
        q.add_row("control RMSE h / v (m)", f"{_m(c['rmse_horizontal_m'])} / {_m(c['rmse_vertical_m'])}")
        q.add_row("check RMSE h / v (m)",
                  f"{_m(c['check_rmse_horizontal_m'])} / {_m(c['check_rmse_vertical_m'])}")
        q.add_row("transform", f"scale {tr['scale']:.6f}, rotation "
                               f"{', '.join(f'{a:.4f}' for a in tr['rotation_xyz_deg'])} deg")
    lc = report.get("lidar_check")
    if lc:
        q.add_row("LiDAR vs surveyed heights", f"RMSE {_m(lc['vertical_rmse_m'])} m over {lc['checked']} points")
    for r in report.get("registration", []):
        q.add_row(f"aligned {r['file'].rsplit('/', 1)[-1]}",
                  f"{r['method']}: fitness {r['fitness']:.3f}, inlier RMSE {_m(r['inlier_rmse_m'])} m")
    tables.append(q)
    return tables
