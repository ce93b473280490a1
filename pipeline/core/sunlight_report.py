"""The planners' sunlight report: one self-contained HTML file (maps embedded as PNG) that can be
attached to a review: the rule and settings, the time basis, a map of the district coloured by
sun hours, per-building tables, and what the proposals change."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.core.atomic import replacing

if TYPE_CHECKING:
    import shapely

    from pipeline.artifacts.sunlight import ReceiverResults, SunlightRecord

STYLE = """body{font-family:system-ui,'Noto Sans KR','NanumGothic',sans-serif;margin:2em auto;max-width:1100px;
color:#222;line-height:1.45}table{border-collapse:collapse;margin:.6em 0 1.4em}td,th{border:1px solid #ccc;
padding:.25em .5em;text-align:right}th{background:#f3f3f3}td.l,th.l{text-align:left}.fail{color:#b00020;
font-weight:600}.pass{color:#1b5e20}.box{background:#f7f7f2;border-left:4px solid #c90;padding:.6em 1em}
img{max-width:100%}h2{margin-top:1.6em;border-bottom:1px solid #ddd}"""


def _h(text: Any) -> str:
    return html.escape("" if text is None else str(text))


def _hm(minutes: float | None) -> str:
    if minutes is None or not np.isfinite(minutes):
        return "–"
    m = int(round(minutes))
    return f"{m // 60} h {m % 60:02d} min"


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _maps(record: SunlightRecord, results: ReceiverResults, polygons: dict[str, shapely.Geometry]) -> list[str]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pos, total = results.receivers.position, results.total_min
    facade = results.receivers.building >= 0
    proposals = set(record.proposals)
    out = []
    cmap = plt.get_cmap("inferno")
    for k, name in enumerate(record.scenarios):
        fig, ax = plt.subplots(figsize=(10, 8.5))
        here = results.present[:, k]
        g, f = here & ~facade, here & facade
        lo, hi = record.settings["rule"]["total_window_h"]
        sc = ax.scatter(pos[g, 0], pos[g, 1], c=total[g, k] / 60.0, s=1.2, marker="s", cmap=cmap, vmin=0, vmax=hi - lo,
                        linewidths=0, rasterized=True)
        ax.scatter(pos[f, 0], pos[f, 1], c=total[f, k] / 60.0, s=3, cmap=cmap, vmin=0, vmax=hi - lo,
                   linewidths=0, rasterized=True)
        fails = here & ~results.passes[:, k] & facade
        ax.scatter(pos[fails, 0], pos[fails, 1], s=1.5, c="#00b4ff", linewidths=0, rasterized=True,
                   label="facade receiver failing the rule")
        for bid, poly in polygons.items():
            if k == 0 and bid in proposals:
                continue
            for part in getattr(poly, "geoms", [poly]):
                x, y = part.exterior.xy
                ax.plot(x, y, color="#ff9f1c" if bid in proposals else "#555", lw=1.4 if bid in proposals else 0.6)
        fig.colorbar(sc, ax=ax, shrink=0.7, label=f"sun hours in {_window(record, 'total')} "
                     f"({'true solar time' if record.settings['time_basis'] == 'true_solar' else 'KST'})")
        ax.set_aspect("equal")
        ax.set_xlabel("east of the site origin (m)")
        ax.set_ylabel("north of the site origin (m)")
        ax.set_title(f"Sun hours on {record.settings['date']}: {name.replace('_', ' ')}")
        ax.legend(loc="lower right", fontsize=8)
        out.append(_png(fig))
        plt.close(fig)
    if len(record.scenarios) > 1:
        both = results.present[:, 0] & results.present[:, 1]
        lost = both & results.passes[:, 0] & ~results.passes[:, 1]
        gained = both & ~results.passes[:, 0] & results.passes[:, 1]
        fig, ax = plt.subplots(figsize=(10, 8.5))
        ax.scatter(pos[both, 0], pos[both, 1], s=0.5, c="#ddd", linewidths=0, rasterized=True)
        ax.scatter(pos[lost, 0], pos[lost, 1], s=4, c="#d00000", linewidths=0, label=f"loses compliance ({lost.sum()})")
        ax.scatter(pos[gained, 0], pos[gained, 1], s=4, c="#2a9d8f", linewidths=0,
                   label=f"gains compliance ({gained.sum()})")
        for bid, poly in polygons.items():
            for part in getattr(poly, "geoms", [poly]):
                x, y = part.exterior.xy
                ax.fill(x, y, color="#ff9f1c" if bid in proposals else "#bbb", alpha=0.9 if bid in proposals else 0.5)
        sel = lost | gained
        if sel.any():
            lo, hi = pos[sel, :2].min(0), pos[sel, :2].max(0)
            for p in proposals:
                if p in polygons:
                    b = polygons[p].bounds
                    lo, hi = np.minimum(lo, b[:2]), np.maximum(hi, b[2:])
            pad = 0.1 * float(np.max(hi - lo)) + 20
            ax.set_xlim(lo[0] - pad, hi[0] + pad)
            ax.set_ylim(lo[1] - pad, hi[1] + pad)
        ax.set_aspect("equal")
        ax.legend(loc="lower right")
        ax.set_title("What the proposals change (orange: proposals)")
        ax.set_xlabel("east of the site origin (m)")
        ax.set_ylabel("north of the site origin (m)")
        out.append(_png(fig))
        plt.close(fig)
    return out


def _basis(record: SunlightRecord) -> str:
    return record.settings.get("time_basis_name", record.settings.get("time_basis", ""))


def _window(record: SunlightRecord, which: str) -> str:
    lo, hi = record.settings["rule"][f"{which}_window_h"]
    return f"{int(lo):02d}:{int(round(lo % 1 * 60)):02d}–{int(hi):02d}:{int(round(hi % 1 * 60)):02d}"


def render(record: SunlightRecord, results: ReceiverResults | None,
           polygons: dict[str, shapely.Geometry] | None) -> str:
    """The report as HTML text."""
    parts = [f"<!doctype html><html lang='ko'><head><meta charset='utf-8'><title>Sunlight analysis (일조 분석)"
             f"</title><style>{STYLE}</style></head><body><h1>Sunlight analysis (일조 분석)</h1>"]
    if not record.enabled:
        parts.append(f"<p class='box'>No analysis: {_h(record.settings.get('note'))}.</p></body></html>")
        return "".join(parts)
    s, rule = record.settings, record.settings["rule"]
    parts.append(
        f"<div class='box'><p><b>Rule.</b> A window complies when it receives at least "
        f"<b>{_hm(rule['continuous_min'])} of continuous sun between {_window(record, 'continuous')}</b> or at least "
        f"<b>{_hm(rule['total_min'])} of sun in total between {_window(record, 'total')}</b>.</p>"
        f"<p><b>Day:</b> {_h(s['date'])} ({_h(s['date_rule'])}). <b>Clock:</b> {_h(_basis(record))}; all times "
        f"in this report are on this clock. <b>Time step:</b> {s['step_min']:g} min (each step is counted whole, "
        f"so hours are exact to one step).</p></div>")
    parts.append("<h2>Settings</h2><table>")
    rows = [("site (WGS84)", f"{s['site']['lat']:.6f} N, {s['site']['lon']:.6f} E"), ("sun model", s["sun_model"]),
            ("lit when", s["lit_when"]), ("facade receivers", f"every {s['facade_spacing_m']:g} m along each wall, "
             f"per storey at {s['window_height_m']:g} m above its floor ({s['storey_height_m']:g} m storeys where "
             f"floors are unknown), {s['offset_m'] * 100:g} cm out from the wall"),
            ("ground receivers", f"grid of {s['ground_spacing_m']:g} m over open ground within "
             f"{s['ground_margin_m']:g} m of a building" if s["ground"] else "none"),
            ("scene", f"{s['scene']['buildings']} buildings and models, {s['scene']['triangles']:,} triangles "
             f"(terrain {s['scene']['terrain_triangles']:,})"),
            ("receivers", f"{record.counts['facade_receivers']:,} on facades, {record.counts['ground_receivers']:,} "
             f"on the ground; {record.counts['rays']:,} rays")]
    if record.proposals:
        rows.append(("proposals", ", ".join(record.proposals) + (f" (replacing {', '.join(record.replaced)})"
                                                                 if record.replaced else "")))
    parts += [f"<tr><th class='l'>{_h(k)}</th><td class='l'>{_h(v)}</td></tr>" for k, v in rows]
    parts.append("</table>")
    sun = record.sun
    hourly = [i for i, m in enumerate(sun["clock_min"]) if (m - s["step_min"] / 2) % 60 == 0]
    parts.append("<h2>Sun</h2><table><tr><th>clock</th><th>UTC</th><th>azimuth (°)</th><th>elevation (°)</th></tr>")
    for i in hourly:
        m = sun["clock_min"][i] - s["step_min"] / 2
        parts.append(f"<tr><td>{int(m // 60):02d}:{int(m % 60):02d}</td><td>{_h(sun['utc'][i][11:19])}</td>"
                     f"<td>{sun['azimuth_deg'][i]:.2f}</td><td>{sun['elevation_deg'][i]:.2f}</td></tr>")
    parts.append("</table><p>Full table at every step: <code>sunlight.json</code> (<code>sun</code>).</p>")
    if results is not None and polygons is not None and len(results.receivers):
        parts.append("<h2>Maps</h2>")
        parts += [f"<p><img alt='sun hours map' src='{src}'></p>" for src in _maps(record, results, polygons)]
    if record.proposals:
        parts.append("<h2>What the proposals change</h2>")
        lost = record.counts.get("changed_lost", 0)
        parts.append(f"<p><b>{lost}</b> receivers lose compliance and <b>{record.counts.get('changed_gained', 0)}"
                     f"</b> gain it when {', '.join(map(_h, record.proposals))} is built.</p>")
        if record.changes:
            parts.append("<table><tr><th class='l'>building</th><th class='l'>name</th><th>lose</th><th>gain</th>"
                         "<th class='l'>storeys</th></tr>")
            for g in record.changes:
                parts.append(f"<tr><td class='l'>{_h(g['building'])}</td><td class='l'>{_h(g['name'])}</td>"
                             f"<td class='fail'>{g['lost']}</td><td class='pass'>{g['gained']}</td>"
                             f"<td class='l'>{_h(_ranges(g['storeys']))}</td></tr>")
            parts.append("</table>")
            for g in record.changes:
                parts.append(f"<h3>{_h(g['building'])} {_h(g['name'])}</h3><table><tr><th>storey</th>"
                             "<th>facing (°)</th><th>continuous before</th><th>total before</th>"
                             "<th>continuous after</th><th>total after</th><th class='l'>verdict</th></tr>")
                for r in sorted(g["receivers"], key=lambda r: (r["storey"], r["index"])):
                    cls = "fail" if r["verdict"].startswith("loses") else "pass"
                    az = "–" if r["facade_azimuth_deg"] is None else f"{r['facade_azimuth_deg']:.0f}"
                    parts.append(f"<tr><td>{r['storey'] or 'ground'}</td><td>{az}</td>"
                                 f"<td>{_hm(r['before']['continuous_min'])}</td><td>{_hm(r['before']['total_min'])}</td>"
                                 f"<td>{_hm(r['after']['continuous_min'])}</td><td>{_hm(r['after']['total_min'])}</td>"
                                 f"<td class='l {cls}'>{_h(r['verdict'])}</td></tr>")
                parts.append("</table>")
    parts.append("<h2>Buildings</h2><table><tr><th class='l'>building</th><th class='l'>name</th>")
    for name in record.scenarios:
        label = name.replace("_", " ")
        parts.append(f"<th>receivers ({label})</th><th>failing ({label})</th><th>worst storey ({label})</th>")
    parts.append("</tr>")
    for b in record.buildings:
        parts.append(f"<tr><td class='l'>{_h(b['id'])}</td><td class='l'>{_h(b['name'])}</td>")
        for name in record.scenarios:
            e = b.get(name)
            if e is None:
                parts.append("<td>–</td><td>–</td><td>–</td>")
                continue
            share = f"{100 * e['fail_share']:.1f} %"
            parts.append(f"<td>{e['receivers']}</td><td class='{'fail' if e['failing'] else 'pass'}'>{share}</td>"
                         f"<td>{e['worst_storey'] if e['worst_storey'] is not None else '–'}</td>")
        parts.append("</tr>")
    parts.append("</table><p>Made by dmc-twin. Receivers, hours and verdicts: <code>receivers.gpkg</code>, "
                 "<code>ground.tif</code>, <code>sunlight.json</code>.</p></body></html>")
    return "".join(parts)


def _ranges(values: list[int]) -> str:
    """1, 2, 3, 7 -> '1–3, 7' (0 is the ground)."""
    out: list[str] = []
    run: list[int] = []
    for v in sorted(values):
        if run and v == run[-1] + 1:
            run.append(v)
            continue
        if run:
            out.append(str(run[0]) if len(run) == 1 else f"{run[0]}–{run[-1]}")
        run = [v]
    if run:
        out.append(str(run[0]) if len(run) == 1 else f"{run[0]}–{run[-1]}")
    return ", ".join("ground" if o == "0" else o for o in out)


def write_report(path: Path, record: SunlightRecord, results: ReceiverResults | None,
                 polygons: dict[str, shapely.Geometry] | None) -> None:
    """Write the report to ``path`` (UTF-8 HTML); an executor task, so written whole or not at all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with replacing(path) as f:
        f.write(render(record, results, polygons).encode("utf-8"))
