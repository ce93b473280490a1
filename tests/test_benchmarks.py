"""The benchmark rewrites only its own block of docs/benchmarks.md."""

from __future__ import annotations

from benchmarks.pointcloud_vs_py3dtiles import BEGIN, END, update_doc


def test_update_keeps_the_analysis(tmp_path):
    doc = tmp_path / "benchmarks.md"
    doc.write_text(f"# Benchmarks\n\n{BEGIN}\nold table\n{END}\n\n### Analysis\nkeep me\n")
    update_doc(doc, f"{BEGIN}\nnew table\n{END}")
    text = doc.read_text()
    assert "new table" in text and "old table" not in text and "keep me" in text
    fresh = tmp_path / "new.md"
    update_doc(fresh, f"{BEGIN}\nfirst\n{END}")
    assert "first" in fresh.read_text()


def test_scan_order_flies_strips_back_and_forth_with_zigzag_lines():
    """A 1,300 m x 4 m grid at 1 m: three 600 m strips; the first is flown north, the second
    south, the third north again; each scan line sweeps west-east then east-west."""
    import numpy as np

    from benchmarks.survey import STRIP_WIDTH_M, scan_order

    x, y = np.meshgrid(np.arange(1300.0), np.arange(4.0))
    x, y = x.ravel(), y.ravel()
    o = scan_order(x, y, "aerial", 1.0)
    xs, ys = x[o], y[o]
    strip = np.floor(xs / STRIP_WIDTH_M)
    assert (np.diff(strip) >= 0).all() and sorted(set(strip)) == [0, 1, 2]
    first, second = (strip == 0), (strip == 1)
    assert (np.diff(ys[first]) >= 0).all() and (np.diff(ys[second]) <= 0).all()
    line0 = xs[first & (ys == 0)]
    line1 = xs[first & (ys == 1)]
    assert (np.diff(line0) > 0).all() and (np.diff(line1) < 0).all()
    mobile = scan_order(x, y, "mobile", 1.0)
    assert (np.diff(y[mobile]) >= 0).all()


def test_measure_counts_the_process_trees_cpu_and_the_machines_other_load():
    """A run whose child burns about a second of CPU in a grandchild: its CPU seconds count; a
    busy process beside it is foreign load (at least the half second it surely overlaps)."""
    import subprocess
    import sys

    from benchmarks.pointcloud_vs_py3dtiles import measure

    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < 1.0: pass\n"
    child = [sys.executable, "-c", f"import subprocess, sys; subprocess.run([sys.executable, '-c', {burn!r}])"]
    quiet = measure(child)
    assert quiet["error"] is None and quiet["cpu_s"] >= 0.9
    other = subprocess.Popen([sys.executable, "-c", burn.replace("1.0", "3.0")])
    try:
        loaded = measure(child)
    finally:
        other.wait()
    assert loaded["cpu_s"] >= 0.9 and loaded["foreign_cpu_s"] >= 0.5
