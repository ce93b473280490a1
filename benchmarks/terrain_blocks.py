"""The procedural city's terrain alone (its DEM, 605 km² at 5 m for 600,000 buildings): in
``stages.mesh.terrain_block_size`` blocks (the default, 2 km) and as one TIN, interleaved, each
from scratch (``--force``), minimum of ``--repeat`` runs; wall time, process-tree peak RSS, the
mesh stage's seconds and each level's faces and measured vertical error.

    python benchmarks/terrain_blocks.py --size 600000 --repeat 2

Writes benchmarks/results/terrain_blocks.json and the terrain block of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.city import WORK, config  # noqa: E402
from benchmarks.pointcloud_vs_py3dtiles import measure, update_doc  # noqa: E402
from pipeline.samples.city import generate_city  # noqa: E402

BEGIN, END = "<!-- terrain: begin -->", "<!-- terrain: end -->"
#: a block edge (m) larger than any site: one TIN
ONE_TIN = 100_000


def variants(folder: Path) -> dict[str, Path]:
    """The terrain-only config with the default blocks and with one block."""
    blocks = config(folder, None, folder / "dem.tif")
    one = folder / "terrain_one_tin.yaml"
    one.write_text(blocks.read_text().replace("stages: {", f"stages: {{mesh: {{terrain_block_size: {ONE_TIN}}}, ", 1))
    return {"blocks": blocks, "one TIN": one}


def run_once(cfg: Path, work: Path) -> dict:
    r = measure([sys.executable, "-m", "pipeline", "run", str(cfg), "--workdir", str(work), "--quiet", "--force"])
    if r["error"]:
        raise SystemExit(f"{cfg.name}: {r['error']}")
    terrain = json.loads((work / "reports" / "mesh.json").read_text())["terrain"]
    stages = json.loads((work / "manifest.json").read_text())["stages"]
    return {**r, "mesh_s": round(stages["mesh"]["seconds"], 1), "blocks": terrain["blocks"],
            "posts": terrain["heightfield"]["shape"],
            "levels": [{k: lv[k] for k in ("max_error_bound_m", "max_vertical_error_m", "coverage", "faces")}
                       for lv in terrain["levels"]]}


def table(best: dict[str, dict], repeat: int) -> str:
    lines = [f"| terrain | blocks | wall s (min of {repeat}) | mesh s | peak RSS (tree) MB | faces per level "
             "| measured error per level (m) |", "|---|---:|---:|---:|---:|---|---|"]
    for name, r in best.items():
        faces = " / ".join(f"{lv['faces']:,}" for lv in r["levels"])
        errors = " / ".join(f"{lv['max_vertical_error_m']:.3f}" for lv in r["levels"])
        lines.append(f"| {name} | {r['blocks']} | {r['wall_s']:.1f} | {r['mesh_s']:.1f} | {r['peak_rss_mb']:.0f} "
                     f"| {faces} | {errors} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=600_000, help="the city whose DEM is used (buildings)")
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    folder = WORK / str(args.size)
    if not (folder / "dem.tif").is_file() or not (folder / "footprints.gpkg").is_file():
        generate_city(args.size, folder)
    runs: dict[str, list[dict]] = {name: [] for name in variants(folder)}
    for _ in range(args.repeat):
        for name, cfg in variants(folder).items():
            r = run_once(cfg, folder / f"w_terrain_{name.replace(' ', '_')}")
            runs[name].append(r)
            print(name, f"{r['wall_s']:.1f} s", f"{r['peak_rss_mb']:.0f} MB", flush=True)
    best = {k: min(v, key=lambda r: r["wall_s"]) for k, v in runs.items()}
    out = REPO / "benchmarks" / "results" / "terrain_blocks.json"
    out.write_text(json.dumps({"size": args.size, "repeat": args.repeat, "cpus": os.cpu_count(), "runs": runs},
                              indent=1))
    posts = best["blocks"]["posts"]
    block = (f"{BEGIN}\n## Terrain alone at city scale\n\n`python benchmarks/terrain_blocks.py --size {args.size} "
             f"--repeat {args.repeat}` on {os.cpu_count()} cores: the DEM of the {args.size:,}-building city, "
             f"{posts[0]:,} x {posts[1]:,} posts at 5 m, through ingest → georef → mesh → tile → publish, "
             "interleaved.\n\n" + table(best, args.repeat) + f"\n{END}")
    update_doc(REPO / "docs" / "benchmarks.md", block, BEGIN, END)
    print(table(best, args.repeat))


if __name__ == "__main__":
    main()
