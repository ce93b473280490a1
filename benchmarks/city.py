"""City scale: ingest → mesh (LoD1) → tile → publish of a procedural Seoul-like city
(pipeline/samples/city.py) at several sizes, and its terrain alone.

    python benchmarks/city.py --sizes 10000 100000 600000

For each size: the city is generated once into out/bench/city/<n>/ (kept for reruns), then
``dmctwin run`` runs in a fresh process with its process-tree peak RSS; the table gives wall
time, buildings per second, peak memory, each stage's seconds and the bundle's size. Writes
benchmarks/results/city.json, docs/bench_city.png (growth curves) and the city block of
docs/benchmarks.md. The sunlight analysis, the DTM/DSM export and the viewer are off: they
have their own benchmarks and are not what scales with the building count here.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.pointcloud_vs_py3dtiles import measure, update_doc  # noqa: E402
from pipeline.samples.city import generate_city  # noqa: E402

WORK = REPO / "out" / "bench" / "city"
BEGIN, END = "<!-- city: begin -->", "<!-- city: end -->"
STAGES = ("ingest", "georef", "clean", "mesh", "tile", "anchors", "publish")


def config(folder: Path, footprints: Path | None, dem: Path) -> Path:
    inputs = f"  dem: {{path: {dem}}}\n"
    if footprints is not None:
        inputs += f"  footprints: {{path: {footprints}, fields: {{id: id, floors: floors, height: height}}}}\n"
    path = folder / ("city.yaml" if footprints is not None else "terrain.yaml")
    path.write_text("site: {name: procedural Seoul, origin: {lat: 37.5770, lon: 126.8898}}\n"
                    f"inputs:\n{inputs}"
                    "stages: {analysis: {enabled: false}, publish: {viewer: {enabled: false}, "
                    "elevation: {enabled: false}}}\n")
    return path


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else 0


def run(n: int, terrain_only: bool = False, timeout: float = 3 * 3600) -> dict:
    folder = WORK / str(n)
    if not (folder / "footprints.gpkg").is_file() or not (folder / "dem.tif").is_file():
        generate_city(n, folder)
    cfg = config(folder, None if terrain_only else folder / "footprints.gpkg", folder / "dem.tif")
    work = folder / ("w_terrain" if terrain_only else "w")
    result = measure([sys.executable, "-m", "pipeline", "run", str(cfg), "--workdir", str(work), "--quiet",
                      "--force"], timeout=timeout)
    stages = {}
    for stage in STAGES:
        report = work / "reports" / f"{stage}.json"
        if report.is_file():
            stages[stage] = json.loads(report.read_text()).get("seconds")
    manifest = work / "manifest.json"
    if manifest.is_file():
        done = json.loads(manifest.read_text()).get("stages", {})
        stages = {k: round(v.get("seconds", 0.0), 1) for k, v in done.items() if isinstance(v, dict)}
    return {"buildings": 0 if terrain_only else n, "terrain_only": terrain_only, **result, "stages": stages,
            "bundle_bytes": _size(work / "bundle")}


def table(results: list[dict]) -> str:
    shown = ("ingest", "georef", "mesh", "tile", "anchors", "publish")
    lines = ["| buildings | wall s | buildings/s | peak RSS (tree) MB | " + " | ".join(f"{s} s" for s in shown)
             + " | bundle MB |", "|---:" * (5 + len(shown)) + "|"]
    for r in results:
        if r.get("error") or r["wall_s"] is None:
            lines.append(f"| {r['buildings']:,} | failed: {(r.get('error') or '')[-80:]!r} | | "
                         f"{r['peak_rss_mb']:.0f} |" + " |" * (len(shown) + 1))
            continue
        rate = f"{r['buildings'] / r['wall_s']:.0f}" if r["buildings"] else "terrain only"
        s = r["stages"]
        lines.append(f"| {r['buildings']:,} | {r['wall_s']:.1f} | {rate} | {r['peak_rss_mb']:.0f} | "
                     + " | ".join(f"{s.get(k, float('nan'))}" for k in shown)
                     + f" | {r['bundle_bytes'] / 2**20:.1f} |")
    return "\n".join(lines)


def plot(results: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = [r for r in results if r["buildings"] and r["wall_s"] and not r.get("error")]
    if not done:
        return
    n = [r["buildings"] for r in done]
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.5))
    a.loglog(n, [r["wall_s"] for r in done], "o-")
    a.set(xlabel="buildings", ylabel="wall time (s)", title="time")
    b.semilogx(n, [r["peak_rss_mb"] / 1024 for r in done], "o-")
    b.set(xlabel="buildings", ylabel="peak RSS (GB)", title="memory")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 600_000])
    ap.add_argument("--terrain", type=int, default=None,
                    help="also run the terrain alone of the city of this size (600000: 605 km² at 5 m)")
    args = ap.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    results = [run(n) for n in args.sizes]
    if args.terrain:
        results.append(run(args.terrain, terrain_only=True))
    out = REPO / "benchmarks" / "results" / "city.json"
    out.write_text(json.dumps({"machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                               "results": results}, indent=1))
    plot(results, REPO / "docs" / "bench_city.png")
    command = "python benchmarks/city.py --sizes " + " ".join(map(str, args.sizes))
    if args.terrain:
        command += f" --terrain {args.terrain}"
    block = (f"{BEGIN}\n## City scale (procedural Seoul)\n\n`{command}` on {os.cpu_count()} cores:\n\n"
             f"{table(results)}\n\n![growth](bench_city.png)\n{END}")
    update_doc(REPO / "docs" / "benchmarks.md", block, BEGIN, END)
    print(table(results))


if __name__ == "__main__":
    main()
