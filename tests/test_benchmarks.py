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
