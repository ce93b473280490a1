"""What Dask costs on one machine: the sample run with the local process pool and with a Dask
LocalCluster of as many single-threaded workers, interleaved, each from scratch (``--force``),
minimum of ``--repeat`` runs; wall time and process-tree peak RSS, and the ratio.

    python benchmarks/dask_overhead.py --repeat 3

Writes benchmarks/results/dask_overhead.json and the dask block of docs/benchmarks.md. The
bundles of the two are compared too: they must be the same files byte for byte.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.pointcloud_vs_py3dtiles import measure, update_doc  # noqa: E402

WORK = REPO / "out" / "bench" / "dask"
BEGIN, END = "<!-- dask: begin -->", "<!-- dask: end -->"


def config(kind: str, workers: int) -> Path:
    sample = REPO / "configs" / "sample.yaml"
    text = sample.read_text().replace("../assets/sample/", str(REPO / "assets" / "sample") + "/")
    lines = [line for line in text.splitlines() if not line.startswith("executor:")]
    path = WORK / f"{kind}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + f"\nexecutor: {{kind: {kind}, workers: {workers}}}\n")
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    args = ap.parse_args()
    runs: dict[str, list[dict]] = {"local": [], "dask": []}
    for _ in range(args.repeat):
        for kind in runs:
            cmd = [sys.executable, "-m", "pipeline", "run", str(config(kind, args.workers)), "--workdir",
                   str(WORK / kind), "--quiet", "--force"]
            r = measure(cmd)
            if r["error"]:
                raise SystemExit(f"{kind}: {r['error']}")
            runs[kind].append(r)
            print(kind, f"{r['wall_s']:.1f} s", f"{r['peak_rss_mb']:.0f} MB", flush=True)
    sums = {k: (WORK / k / "bundle" / "SHA256SUMS").read_bytes() for k in runs}
    best = {k: min(v, key=lambda r: r["wall_s"]) for k, v in runs.items()}
    ratio = best["dask"]["wall_s"] / best["local"]["wall_s"]
    result = {"workers": args.workers, "repeat": args.repeat, "runs": runs, "ratio": ratio,
              "identical_bundles": sums["local"] == sums["dask"]}
    out = REPO / "benchmarks" / "results" / "dask_overhead.json"
    out.write_text(json.dumps(result, indent=1))
    table = ("| executor | wall s (min of %d) | peak RSS (tree) MB |\n|---|---:|---:|\n" % args.repeat
             + "".join(f"| {k} | {best[k]['wall_s']:.1f} | {best[k]['peak_rss_mb']:.0f} |\n" for k in runs))
    block = (f"{BEGIN}\n## Dask on one machine\n\n`python benchmarks/dask_overhead.py --repeat {args.repeat}`: the "
             f"sample from scratch with the local pool and with a Dask LocalCluster of {args.workers} "
             f"single-threaded workers, interleaved, on {os.cpu_count()} cores. Dask takes "
             f"{(ratio - 1) * 100:+.0f} % of the local run's time; the bundles are "
             f"{'byte-identical' if result['identical_bundles'] else 'DIFFERENT'}.\n\n{table}{END}")
    update_doc(REPO / "docs" / "benchmarks.md", block, BEGIN, END)
    print(table, f"ratio {ratio:.2f}", "identical" if result["identical_bundles"] else "DIFFERENT")


if __name__ == "__main__":
    main()
