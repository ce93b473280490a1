"""Sunlight analysis on the sample: the stage's ray throughput beside the ray caster's own.

There is no open tool that computes per-window sun hours from a city model to run side by side,
so the reference is the hardware's ceiling: open3d's ``RaycastingScene.test_occlusions`` (Embree)
alone, on the same scene and the very rays the stage casts, prepared in memory beforehand. The
stage's number includes everything around the casting (receivers, sun table, ray assembly,
verdicts, GIS files, report); its shading part is the block loop alone.

    python benchmarks/sunlight.py --repeat 3

Runs the sample up to mesh once into out/bench/sunlight, then, interleaved and ``--repeat``
times each, the analysis stage (forced) in a fresh process with its process-tree peak RSS, and
the bare ray caster. Writes benchmarks/results/sunlight.json and its block of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.pointcloud_vs_py3dtiles import measure, update_doc  # noqa: E402

WORK = REPO / "out" / "bench" / "sunlight"
BEGIN, END = "<!-- sunlight: begin -->", "<!-- sunlight: end -->"
VARIANTS = {"facades": "analysis: {ground: false}", "facades + ground": "analysis: {}"}


def config(variant: str) -> Path:
    text = (REPO / "configs" / "sample.yaml").read_text()
    text = text.replace("../assets/sample/", str(REPO / "assets" / "sample") + "/")
    text = text.replace("stages:\n", f"stages:\n  {VARIANTS[variant]}\n", 1)
    path = WORK / f"{variant.replace(' + ', '_')}.yaml"
    path.write_text(text)
    return path


def dmctwin(*args: str) -> list[str]:
    return [sys.executable, "-m", "pipeline", *args]


def raw_caster(workdir: Path, repeat: int = 1) -> dict:
    """Seconds of test_occlusions alone for the rays the stage cast through its common scene."""
    from pipeline.artifacts.buildings import BuildingMeshes, read_buildings
    from pipeline.artifacts.sunlight import read_receivers, read_sunlight
    from pipeline.artifacts.terrain import load_level, read_terrain
    from pipeline.core.shading import Scene, blocks

    mesh, folder = workdir / "artifacts" / "mesh", workdir / "artifacts" / "analysis"
    record, res = read_sunlight(folder), read_receivers(folder)
    layer, pieces = read_buildings(mesh).buildings, BuildingMeshes(mesh)
    replaced = set(record.replaced)
    terrain = load_level(mesh, read_terrain(mesh).levels[0])
    scene = Scene([pieces.get(r.feature_id, 0) for r in layer if not r.proposed and r.id not in replaced] + [terrain])
    d = record.sun_table().shading_directions().astype(np.float32)
    batches = []
    for block in blocks(len(res.receivers), len(d), 4_000_000):
        facing = res.receivers.normal[block] @ d.T > 0
        r, t = np.nonzero(facing)
        batches.append(np.hstack([res.receivers.position[block][r].astype(np.float32), d[t]]))
    rays = sum(len(b) for b in batches)
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for b in batches:
            scene.occluded(b)
        best = min(best, time.perf_counter() - t0)
    return {"rays": rays, "seconds": best, "rays_per_s": rays / best, "triangles": scene.triangles}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--doc", type=Path, default=REPO / "docs" / "benchmarks.md")
    args = ap.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    prep = measure(dmctwin("run", str(config("facades + ground")), "--workdir", str(WORK), "--stages",
                           "ingest..mesh", "--quiet"))
    if prep["error"]:
        print(prep["error"], file=sys.stderr)
        return 1
    results = []
    for variant in VARIANTS:
        cfg = config(variant)
        runs, raws = [], []
        for _ in range(args.repeat):  # interleaved: stage, caster, stage, caster, ...
            m = measure(dmctwin("run", str(cfg), "--workdir", str(WORK), "--stages", "analysis", "--force", "--quiet"))
            if m["error"]:
                print(m["error"], file=sys.stderr)
                return 1
            report = json.loads((WORK / "reports" / "analysis.json").read_text())
            runs.append(m | {"stage_s": report["performance"]["total_s"],
                             "shading_s": report["performance"]["shading_s"]})
            raws.append(raw_caster(WORK))
        counts = report["counts"]
        best = min(runs, key=lambda r: r["shading_s"])
        raw = min(raws, key=lambda r: r["seconds"])
        results.append({"variant": variant, "receivers": counts["receivers"],
                        "facade_receivers": counts["facade_receivers"], "ground_receivers": counts["ground_receivers"],
                        "time_steps": counts["time_steps"], "rays": counts["rays"],
                        "process_wall_s": min(r["wall_s"] for r in runs), "stage_s": min(r["stage_s"] for r in runs),
                        "shading_s": best["shading_s"], "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
                        "stage_rays_per_s": counts["rays"] / best["shading_s"],
                        "caster_rays_per_s": raw["rays_per_s"], "caster_rays": raw["rays"],
                        "triangles": raw["triangles"], "runs": runs, "caster_runs": raws})
    out = REPO / "benchmarks" / "results" / "sunlight.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    machine = f"{os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB, {platform.machine()}"
    out.write_text(json.dumps({"machine": machine, "results": results}, indent=1))
    rows = ["| receivers | rays | analysis stage s (process) | shading s | stage rays/s | Embree alone rays/s "
            "| shading ÷ Embree | whole stage ÷ Embree | peak RSS MB |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        rows.append(f"| {r['variant']}: {r['facade_receivers']:,} + {r['ground_receivers']:,} "
                    f"| {r['rays'] / 1e6:.1f} M "
                    f"| {r['stage_s']:.1f} ({r['process_wall_s']:.1f}) | {r['shading_s']:.1f} "
                    f"| {r['stage_rays_per_s'] / 1e6:.2f} M | {r['caster_rays_per_s'] / 1e6:.2f} M "
                    f"| {r['stage_rays_per_s'] / r['caster_rays_per_s']:.0%} "
                    f"| {r['rays'] / r['stage_s'] / r['caster_rays_per_s']:.0%} | {r['peak_rss_mb']:.0f} |")
    block = f"""{BEGIN}
## Sunlight analysis (일조): the stage against the bare ray caster

Command: `.venv/bin/python benchmarks/sunlight.py --repeat {args.repeat}` (or `make bench-sunlight`)
Machine: {machine}. Scene: the sample's {results[0]['triangles']:,} triangles (every building at
full detail and the terrain TIN). The analysis as the sample configures it: the winter solstice
on true solar time, 1-minute steps from 08:00 to 16:00 ({results[0]['time_steps']} steps), windows every
2 m of wall on every storey, with and without the proposed tower; "facades + ground" adds the
2 m ground grid within 50 m of the buildings. Rays are counted once (the common scene); the
with/without-proposal pass adds rays through the tower alone. "Embree alone" fires the same rays,
prepared in memory beforehand, through `RaycastingScene.test_occlusions`: the ceiling. Minimum of
{args.repeat} runs, interleaved; the stage in a fresh process each time (`dmctwin run --stages analysis
--force`), peak RSS over its process tree.

{chr(10).join(rows)}

Raw numbers: `benchmarks/results/sunlight.json`.
{END}"""
    update_doc(args.doc, block, BEGIN, END)
    print(block)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
