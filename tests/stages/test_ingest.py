"""ingest: memory follows the chunk size, not the file; formats are told apart."""

from __future__ import annotations

import tracemalloc

import laspy
import numpy as np
import pytest

from pipeline.config import load_config
from pipeline.core.executor import InlineExecutor
from pipeline.core.pointio import ChunkStore
from pipeline.core.progress import Reporter
from pipeline.stage import StageContext
from pipeline.stages import ingest


def _write_big_las(path, n: int, block: int = 2_000_000) -> None:
    header = laspy.LasHeader(point_format=0, version="1.2")
    header.scales = np.array([0.01, 0.01, 0.01])
    header.offsets = np.array([190000.0, 553000.0, 0.0])
    with laspy.open(path, mode="w", header=header) as w:
        for s in range(0, n, block):
            m = min(block, n - s)
            rec = laspy.ScaleAwarePointRecord.zeros(m, header=header)
            k = np.arange(s, s + m)
            rec.X, rec.Y, rec.Z = k % 100_000, k // 100_000, k % 5000
            w.write_points(rec)


@pytest.mark.slow
def test_ingest_memory_follows_the_chunk_size_not_the_file(tmp_path):
    n, chunk = 20_000_000, 250_000
    src = tmp_path / "big.las"
    _write_big_las(src, n)
    cfg_path = tmp_path / "c.yaml"
    cfg_path.write_text(f"inputs: {{pointclouds: [{{path: {src}, crs: 'EPSG:5186+5773'}}]}}\n"
                        f"stages: {{ingest: {{chunk_size: {chunk}}}}}\n")
    cfg = load_config(cfg_path)
    out = tmp_path / "out"
    out.mkdir()
    # inline: every chunk is read in this process, where tracemalloc sees it
    ctx = StageContext(tmp_path, out, {}, Reporter(quiet=True), executor_factory=InlineExecutor)
    tracemalloc.start()
    try:
        result = ingest.run(ctx, cfg)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert result.counts["points"] == n
    store = ChunkStore(out / "points" / "00_big")
    assert len(store.paths()) == n // chunk
    # the stored cloud is 35 B x 20 M = 700 MB; a chunk's records and laspy's buffers are ~30 MB
    assert peak < 400 * chunk, f"peak {peak / 2**20:.0f} MiB"


def test_gcp_survey_accuracy_from_columns_or_defaults(tmp_path):
    from pipeline.errors import InputError

    path = tmp_path / "gcps.csv"
    path.write_text("id,x,y,z,sigma_h,sigma_v\nA,1,2,3,0.01,0.02\nB,4,5,6,,\n")
    a, b = ingest.read_gcp_csv(path, sigma_h=0.05, sigma_v=0.07)
    assert (a.sigma_h, a.sigma_v, b.sigma_h, b.sigma_v) == (0.01, 0.02, 0.05, 0.07)
    assert ingest.read_gcp_csv(path)[1].sigma_v is None  # not stated anywhere: unknown, not zero
    path.write_text("id,x,y,z,sigma_v\nA,1,2,3,-0.1\n")
    with pytest.raises(InputError, match="line 2: sigma_v must be a positive number") as e:
        ingest.read_gcp_csv(path)
    assert "gcps.csv" in str(e.value)


def _footprint_ids(tmp_path, features: list[dict], fields: str = "") -> list[str]:
    import json

    from pipeline.artifacts.footprints import read_source_footprints
    from pipeline.runner import Runner

    tmp_path.mkdir(parents=True, exist_ok=True)
    layer = tmp_path / "f.geojson"
    layer.write_text(json.dumps({"type": "FeatureCollection", "features": features,
                                 "crs": {"type": "name", "properties": {"name": "EPSG:5186"}}}))
    cfg = tmp_path / "c.yaml"
    cfg.write_text("site: {origin: {lat: 37.5770, lon: 126.8898}}\n"
                   f"inputs: {{footprints: {{path: {layer}{fields}}}}}\n")
    work = tmp_path / "w"
    Runner(load_config(cfg), work, quiet=True).run(["ingest"])
    return [f.id for f in read_source_footprints(work / "artifacts" / "ingest").features]


def _square(x: float, y: float, props: dict) -> dict:
    ring = [[x, y], [x + 20, y], [x + 20, y + 20], [x, y + 20], [x, y]]
    return {"type": "Feature", "properties": props, "geometry": {"type": "Polygon", "coordinates": [ring]}}


def test_footprint_ids_follow_the_national_id_or_the_building_not_the_row(tmp_path):
    at = [(190100.0, 553100.0), (190200.0, 553100.0), (190300.0, 553200.0)]
    bd = [{"BD_MGT_SN": f"11440101001234500000{k}"} for k in range(3)]
    # a national building management number, named in the field mapping, is the id
    ids = _footprint_ids(tmp_path / "a", [_square(*xy, p) for xy, p in zip(at, bd, strict=True)],
                         ", fields: {id: BD_MGT_SN}")
    assert ids == [p["BD_MGT_SN"] for p in bd]
    # without ids: the same building keeps its id when another row goes and the rest are reordered
    first = _footprint_ids(tmp_path / "b", [_square(*xy, {}) for xy in at])
    again = _footprint_ids(tmp_path / "c", [_square(*xy, {}) for xy in reversed(at[1:])])
    assert len(set(first)) == 3 and all(i.startswith("B-") for i in first)
    assert again == list(reversed(first[1:]))
