"""Point cloud -> 3D Tiles: dmc-twin against py3dtiles, side by side in one run.

For each size (millions of points) and format (LAS, LAZ) a synthetic city cloud is written by the
sample generator, then both tools convert it while the whole process tree's RSS is sampled every
50 ms. py3dtiles runs in its own venv (created on first use); for LAZ it is forced onto laspy's
single-threaded lazrs backend, because its forked workers hang on the default parallel backend.

    python benchmarks/pointcloud_vs_py3dtiles.py --sizes 5 20 --formats las laz

Writes benchmarks/results/pointcloud_vs_py3dtiles.json and the table in docs/benchmarks.md.
dmc-twin runs twice: the full path (with the clean stage: duplicates, outliers, ground / building /
vegetation classes, DTM and DSM, which py3dtiles does not do) and the conversion only
(``stages.clean.enabled: false``: the same output kind as py3dtiles').
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / "out" / "bench"
P3D_VENV = REPO / ".bench" / "py3dtiles-venv"
P3D_VERSION = "12.1.1"
SINGLE_THREAD_LAZRS = REPO / "benchmarks" / "py3dtiles_single_thread_lazrs"
#: the script rewrites only this block of docs/benchmarks.md; analysis around it is kept
BEGIN, END = "<!-- pointcloud_vs_py3dtiles: begin -->", "<!-- pointcloud_vs_py3dtiles: end -->"


def ensure_py3dtiles() -> Path:
    exe = P3D_VENV / "bin" / "py3dtiles"
    if not exe.exists():
        subprocess.run([sys.executable, "-m", "venv", str(P3D_VENV)], check=True)
        subprocess.run([str(P3D_VENV / "bin" / "pip"), "install", "-q", f"py3dtiles[las]=={P3D_VERSION}",
                        "lazrs"], check=True)
    return exe


def measure(cmd: list[str], env: dict[str, str] | None = None, timeout: float = 3600) -> dict:
    """Wall time and peak RSS of the whole process tree of ``cmd``."""
    t0 = time.perf_counter()
    proc = psutil.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=REPO)
    peak = 0
    while proc.poll() is None:
        rss = 0
        try:
            for p in [proc, *proc.children(recursive=True)]:
                try:
                    rss += p.memory_info().rss
                except psutil.NoSuchProcess:
                    pass
        except psutil.NoSuchProcess:
            pass
        peak = max(peak, rss)
        if time.perf_counter() - t0 > timeout:
            for p in [*proc.children(recursive=True), proc]:
                p.kill()
            return {"wall_s": None, "peak_rss_mb": peak / 2**20, "error": f"timeout after {timeout} s"}
        time.sleep(0.05)
    wall = time.perf_counter() - t0
    err = proc.stderr.read().decode(errors="replace")[-500:] if proc.returncode else None
    return {"wall_s": wall, "peak_rss_mb": peak / 2**20, "error": err}


def folder_bytes(path: Path, suffixes: tuple[str, ...]) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and p.suffix in suffixes)


def run_ours(src: Path, n: int, tag: str, clean: bool = True, meshopt: bool = False) -> dict:
    cfg = WORK / f"{tag}{'' if clean else '_convert'}{'_meshopt' if meshopt else ''}.yaml"
    cfg.write_text(f"site: {{origin: {{lat: 37.5770, lon: 126.8898}}}}\n"
                   f"inputs: {{pointclouds: [{{path: {src}}}]}}\n"
                   f"stages: {{clean: {{enabled: {str(clean).lower()}}}, "
                   f"tile: {{pointcloud_meshopt: {str(meshopt).lower()}}}}}\n")
    workdir = WORK / f"ours_{tag}"
    shutil.rmtree(workdir, ignore_errors=True)
    r = measure([sys.executable, "-m", "pipeline", "run", str(cfg), "--workdir", str(workdir),
                 "--stages", "ingest..tile", "--quiet"])
    if r["error"] is None:
        stages = json.loads((workdir / "manifest.json").read_text())["stages"]
        r["stage_s"] = {k: v["seconds"] for k, v in stages.items()}
        r["conversion_s"] = sum(stages[k]["seconds"] for k in ("ingest", "georef", "tile"))
        out = folder_bytes(workdir / "artifacts" / "tile" / "pointcloud", (".glb", ".json"))
        r["output_mb"] = out / 2**20
        r["bytes_per_point"] = out / n
    shutil.rmtree(workdir, ignore_errors=True)
    return r


def run_py3dtiles(exe: Path, src: Path, n: int, tag: str, laz: bool) -> dict:
    out = WORK / f"p3d_{tag}"
    shutil.rmtree(out, ignore_errors=True)
    env = dict(os.environ)
    if laz:
        env["PYTHONPATH"] = str(SINGLE_THREAD_LAZRS)
    r = measure([str(exe), "convert", str(src), "--out", str(out), "--jobs", "2", "--overwrite"], env)
    if r["error"] is None:
        size = folder_bytes(out, (".pnts", ".json"))
        r["output_mb"] = size / 2**20
        r["bytes_per_point"] = size / n
    shutil.rmtree(out, ignore_errors=True)
    return r


def update_doc(doc: Path, block: str, begin: str = BEGIN, end: str = END) -> None:
    """Replace the ``begin``..``end`` block of ``doc`` with ``block`` (which carries the markers)."""
    text = doc.read_text() if doc.exists() else "# Benchmarks\n\n" + begin + end + "\n"
    if begin not in text:
        text += "\n" + begin + end + "\n"
    head, rest = text.split(begin, 1)
    doc.write_text(head + block + rest.split(end, 1)[1])


def table(results: list[dict]) -> str:
    lines = ["| points | format | tool | wall s | Mpts/s | peak RSS (tree) MB | output B/pt "
             "| ours ÷ py3dtiles throughput |",
             "|---:|---|---|---:|---:|---:|---:|---:|"]
    for r in results:
        for tool in ("py3dtiles", "dmc-twin", "dmc-twin convert", "dmc-twin convert meshopt"):
            m = r[tool]
            ok = m["wall_s"] is not None and not m.get("error")
            rate = r["points"] / m["wall_s"] / 1e6 if ok else None
            ratio = ""
            if tool != "py3dtiles" and ok and r["py3dtiles"]["wall_s"] and not r["py3dtiles"].get("error"):
                ratio = f"{r['py3dtiles']['wall_s'] / m['wall_s']:.2f}×"
            lines.append(f"| {r['points'] / 1e6:.1f} M | {r['format'].upper()} | {tool} | "
                         f"{m['wall_s']:.1f} | {rate:.2f} | {m['peak_rss_mb']:.0f} | "
                         f"{m.get('bytes_per_point', float('nan')):.1f} | {ratio} |" if ok else
                         f"| {r['points'] / 1e6:.1f} M | {r['format'].upper()} | {tool} | failed: "
                         f"{(m.get('error') or '')[:60]!r} | | {m['peak_rss_mb']:.0f} | | |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=float, nargs="+", default=[5, 20], help="millions of points")
    ap.add_argument("--formats", nargs="+", default=["las", "laz"], choices=["las", "laz"])
    args = ap.parse_args()
    from pipeline.samples.generator import city_cloud
    WORK.mkdir(parents=True, exist_ok=True)
    exe = ensure_py3dtiles()
    results = []
    for size in args.sizes:
        for fmt in args.formats:
            src = WORK / f"city_{size:g}M.{fmt}"
            n = city_cloud(src, int(size * 1e6)) if not src.exists() else None
            if n is None:
                import laspy
                with laspy.open(src) as f:
                    n = int(f.header.point_count)
            tag = f"{size:g}M_{fmt}"
            print(f"{tag}: {n:,} points", flush=True)
            row = {"points": n, "format": fmt,
                   "py3dtiles": run_py3dtiles(exe, src, n, tag, fmt == "laz"),
                   "dmc-twin": run_ours(src, n, tag),
                   "dmc-twin convert": run_ours(src, n, tag, clean=False),
                   "dmc-twin convert meshopt": run_ours(src, n, tag, clean=False, meshopt=True)}
            print(json.dumps(row, indent=1), flush=True)
            results.append(row)
    out = REPO / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "pointcloud_vs_py3dtiles.json").write_text(json.dumps(results, indent=1))
    machine = f"{os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB"
    doc = REPO / "docs" / "benchmarks.md"
    doc.parent.mkdir(exist_ok=True)
    command = (f"python benchmarks/pointcloud_vs_py3dtiles.py --sizes {' '.join(f'{s:g}' for s in args.sizes)} "
               f"--formats {' '.join(args.formats)}")
    block = f"""{BEGIN}
## Point cloud → 3D Tiles: dmc-twin vs py3dtiles {P3D_VERSION}

Command: `.venv/bin/{command}` (or `make bench`)
Machine: {machine}. Input: synthetic city clouds from the sample generator (LAS 1.4 point format
7, ~10 pts/m²). py3dtiles runs `convert --jobs 2` (for LAZ on laspy's single-threaded lazrs
backend: its forked workers hang on the parallel one). "dmc-twin" runs `dmctwin run --stages
ingest..tile`, which also cleans and classifies the cloud and writes a DTM and DSM (py3dtiles does
none of that); "dmc-twin convert" is the same run with `stages.clean.enabled: false`, the same
output kind as py3dtiles (every input point tiled, RGB, intensity, classes); "convert meshopt"
adds `stages.tile.pointcloud_meshopt: true` (EXT_meshopt_compression). Peak RSS is
the sum over the whole process tree, sampled every 50 ms. Both tools run in the same invocation,
one after the other, so the ratio compares like with like.

{table(results)}

Per-stage seconds of our runs and raw numbers: `benchmarks/results/pointcloud_vs_py3dtiles.json`.
{END}"""
    update_doc(doc, block)
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
