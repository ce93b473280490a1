"""Runner: stage selection, skip-if-unchanged, reruns exactly what a config or input change
feeds, and stages that read only the artifacts they declare."""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from pipeline.config import STAGE_NAMES, load_config
from pipeline.errors import ConfigError
from pipeline.runner import Runner, output_dir, select_stages, stage_module, stage_spec
from pipeline.samples.generator import origin_xy
from tests.conftest import SAMPLE, SAMPLE_CONFIG, run_cli
from tests.fixtures_las import sample_points, write_las


def test_select_stages():
    assert select_stages(None)[0] == "ingest" and select_stages(None)[-1] == "publish"
    assert select_stages("georef..mesh") == ["georef", "clean", "mesh"]
    assert select_stages("..georef") == ["ingest", "georef"]
    assert select_stages("tile,ingest") == ["ingest", "tile"]
    with pytest.raises(ConfigError):
        select_stages("mesh..georef")
    with pytest.raises(ConfigError):
        select_stages("ingest..tiles")


@pytest.mark.slow
def test_unchanged_rerun_skips_and_config_change_reruns_downstream_only(sample_run, tmp_path):
    # a copy that shares the files (the runner replaces files, never writes into them): the shared
    # run stays as it is for the tests that read it meanwhile (the suite runs on several workers)
    workdir = tmp_path / "w"
    shutil.copytree(sample_run, workdir, copy_function=os.link)
    manifest = (workdir / "manifest.json").read_bytes()
    again = run_cli("run", str(SAMPLE_CONFIG), "--workdir", str(workdir))
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("unchanged, skipped") == len(STAGE_NAMES)
    assert (workdir / "manifest.json").read_bytes() == manifest  # a run that changed nothing writes nothing
    m = json.loads(manifest)
    # a copy of the config with the anchors section changed: only anchors and publish rerun
    text = SAMPLE_CONFIG.read_text().replace("../assets/sample/", str(SAMPLE) + "/")
    cfg = tmp_path / "sample.yaml"
    assert "  anchors:\n" in text
    cfg.write_text(text.replace("  anchors:\n", "  anchors:\n    include_pois: false\n", 1))
    before = {k: v["outputs"] for k, v in m["stages"].items()}
    changed = run_cli("run", str(cfg), "--workdir", str(workdir), "--quiet")
    assert changed.returncode == 0, changed.stderr
    m2 = json.loads((workdir / "manifest.json").read_text())
    ran = [k for k, e in m2["stages"].items() if not e["skipped"]]
    assert ran == ["anchors", "publish"]
    assert m2["stages"]["anchors"]["counts"]["terrain_anchors"] == 0
    # the config put back: the reruns give the outputs of before, byte for byte
    restore = run_cli("run", str(SAMPLE_CONFIG), "--workdir", str(workdir), "--quiet")
    assert restore.returncode == 0
    m3 = json.loads((workdir / "manifest.json").read_text())
    assert {k: v["outputs"] for k, v in m3["stages"].items()} == before
    assert (sample_run / "manifest.json").read_bytes() == manifest


def test_a_changed_input_reruns_exactly_the_stages_it_feeds(sample_run, tmp_path):
    """Another points-of-interest file: the stages that read POIs (georef, anchors) and those
    that record every input's checksum (tile, publish) rerun; cleaning and meshing do not."""
    workdir = tmp_path / "w"
    # a copy that shares the files (the runner replaces files, never writes into them)
    shutil.copytree(sample_run, workdir, copy_function=os.link)
    pois = json.loads((SAMPLE / "pois.geojson").read_text())
    pois["features"][0]["properties"]["name"] = "Renamed gate"
    (tmp_path / "pois.geojson").write_text(json.dumps(pois))
    text = SAMPLE_CONFIG.read_text().replace("../assets/sample/", str(SAMPLE) + "/")
    cfg = tmp_path / "sample.yaml"
    cfg.write_text(text.replace(str(SAMPLE / "pois.geojson"), str(tmp_path / "pois.geojson")))
    assert str(tmp_path / "pois.geojson") in cfg.read_text()
    before = json.loads((sample_run / "manifest.json").read_text())["stages"]
    changed = run_cli("run", str(cfg), "--workdir", str(workdir), "--quiet")
    assert changed.returncode == 0, changed.stderr
    m = json.loads((workdir / "manifest.json").read_text())["stages"]
    assert [k for k in STAGE_NAMES if not m[k]["skipped"]] == ["ingest", "georef", "tile", "anchors", "publish"]
    assert m["mesh"]["outputs"] == before["mesh"]["outputs"]
    anchors = json.loads((workdir / "bundle" / "anchors" / "anchors.json").read_text())["anchors"]
    assert any(a["name"] == "Renamed gate" for a in anchors)
    assert json.loads((sample_run / "manifest.json").read_text())["stages"] == before


#: the stage running now, for the audit hook (hooks cannot be removed, so it is a switch)
_RUNNING: list[str] = []
_OPENED: dict[str, set[str]] = defaultdict(set)


def _audit(event: str, args: tuple) -> None:
    if _RUNNING and event in ("open", "os.scandir", "os.listdir") and args and args[0] is not None:
        try:
            _OPENED[_RUNNING[-1]].add(os.path.abspath(os.fsdecode(args[0])))
        except TypeError:
            pass  # a file descriptor


def test_stages_read_only_the_artifacts_they_declare(tmp_path, monkeypatch):
    """Every file a stage opens under another stage's output belongs to an artifact it declares in
    SPEC.reads, so the runner's reruns (which follow those declarations) can never miss a change.
    Python-level opens are seen (json, numpy, laspy); GDAL opens files in C, unseen here."""
    x0, y0 = origin_xy()
    cloud = write_las(tmp_path / "cloud.las", sample_points(30_000), crs="EPSG:5186+5773")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"site: {{origin: {{lat: 37.5770, lon: 126.8898}}}}\nexecutor: {{kind: inline}}\n"
                   f"inputs: {{pointclouds: [{{path: {cloud}}}], footprints: {{path: {SAMPLE / 'buildings.geojson'}}},"
                   f" dem: {{path: {SAMPLE / 'dem.tif'}}}, pois: {{path: {SAMPLE / 'pois.geojson'}}},"
                   f" meshes: [{{path: {SAMPLE / 'landmark_tower.glb'}, crs: 'EPSG:5186', "
                   f"origin: [{x0 + 100}, {y0 + 100}, 15.0]}}]}}\n"
                   # sunlight at 30-minute steps: the stage reads the same files as at one minute; the
                   # bundle's validation reads only the bundle (in Node, unseen here anyway)
                   "stages: {mesh: {terrain_lods: 2}, analysis: {step_minutes: 30}, "
                   "publish: {validate_bundle: false}}\n")
    sys.addaudithook(_audit)
    for name in STAGE_NAMES:
        module = stage_module(name)

        def traced(ctx, config, _run=module.run, _name=name):
            _RUNNING.append(_name)
            try:
                return _run(ctx, config)
            finally:
                _RUNNING.pop()

        monkeypatch.setattr(module, "run", traced)
    workdir = tmp_path / "w"
    Runner(load_config(cfg), workdir, quiet=True).run()
    outputs = {name: output_dir(workdir, name).resolve() for name in STAGE_NAMES}
    undeclared = []
    for name in STAGE_NAMES:
        spec = stage_spec(name)
        for opened in sorted(_OPENED[name]):
            path = Path(opened).resolve()
            for up, folder in outputs.items():
                if up != name and path.is_relative_to(folder) and path != folder:
                    rel = path.relative_to(folder).as_posix()
                    if not any(a.stage == up and a.covers(rel) for a in spec.reads):
                        undeclared.append(f"{name} read {up}/{rel}")
    assert not undeclared, undeclared
    assert _OPENED["mesh"] and _OPENED["tile"]  # the hook saw the stages read


def _versioned(sample_run: Path, work: Path, version: str) -> Path:
    """A config of the sample whose bundle is ``version``, over a hard-linked copy of its artifacts;
    the bundle is not validated on publishing (the sample's is, and ``verify`` checks these)."""
    if not (work / "artifacts").exists():
        shutil.copytree(sample_run / "artifacts", work / "artifacts", copy_function=os.link)
        shutil.copy(sample_run / "manifest.json", work / "manifest.json")
    text = SAMPLE_CONFIG.read_text().replace("../assets/sample/", str(SAMPLE) + "/")
    assert "  publish:\n" in text
    cfg = work / f"v{version}.yaml"
    cfg.write_text(text.replace("  publish:\n", f"  publish:\n    bundle_version: '{version}'\n"
                                "    validate_bundle: false\n", 1))
    return cfg


def _same_files(a: Path, b: Path) -> bool:
    """Whether folder ``b`` holds exactly ``a``'s files as hard links (the same inodes)."""
    fa = {p.relative_to(a): p.stat().st_ino for p in a.rglob("*") if p.is_file()}
    fb = {p.relative_to(b): p.stat().st_ino for p in b.rglob("*") if p.is_file()}
    return bool(fa) and fa == fb


@pytest.mark.slow
def test_each_version_keeps_its_folder_and_the_bundle_moves_only_when_one_is_complete(sample_run, tmp_path,
                                                                                      monkeypatch):
    work = tmp_path / "w"
    work.mkdir()
    # a work directory from before versions: its bundle is a plain folder
    shutil.copytree(sample_run / "bundle", work / "bundle")
    proc = run_cli("run", str(_versioned(sample_run, work, "1.0.0")), "--workdir", str(work), "--stages", "publish",
                   "--quiet")
    assert proc.returncode == 0, proc.stderr
    current, versions = work / "bundle", work / "bundles"
    assert not current.is_symlink() and _same_files(versions / "1.0.0", current)
    assert sorted(p.name for p in versions.iterdir()) == ["0.1.0", "1.0.0"]  # the old one kept
    assert json.loads((versions / "0.1.0" / "catalog.json").read_text())["version"] == "0.1.0"
    v1 = {p.relative_to(versions / "1.0.0"): p.read_bytes() for p in (versions / "1.0.0").rglob("*") if p.is_file()}

    # a publish that fails half-way leaves the published versions and the bundle as they were
    import pipeline.stages.publish as publish

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(publish, "write_catalog", broken)
    runner = Runner(load_config(_versioned(sample_run, work, "2.0.0")), work, quiet=True)
    with pytest.raises(Exception, match="space"):
        runner.run(["publish"])
    monkeypatch.undo()
    assert _same_files(versions / "1.0.0", current)
    assert sorted(p.name for p in versions.iterdir()) == ["0.1.0", "1.0.0"]

    proc = run_cli("run", str(_versioned(sample_run, work, "2.0.0")), "--workdir", str(work), "--stages", "publish",
                   "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert _same_files(versions / "2.0.0", current)
    assert json.loads((current / "catalog.json").read_text())["version"] == "2.0.0"
    assert {p.relative_to(versions / "1.0.0"): p.read_bytes()
            for p in (versions / "1.0.0").rglob("*") if p.is_file()} == v1
    for version in ("1.0.0", "2.0.0"):
        assert run_cli("verify", str(versions / version), "--no-gltf").returncode == 0
    assert run_cli("verify", str(current), "--no-gltf").returncode == 0
    diff = run_cli("diff", str(versions / "1.0.0"), str(versions / "2.0.0"), "--json")
    assert diff.returncode == 0, diff.stderr
    doc = json.loads(diff.stdout)
    assert not any(doc[layer][k] for layer in ("buildings", "anchors") for k in ("added", "removed", "changed"))
    assert not list(work.rglob(".tmp-*"))


def test_a_worker_death_seen_as_a_closed_pipe_is_the_worker_message():
    """A worker killed while the runner submits work surfaces as OSError("handle is closed") from
    the pool's closed pipes; with the pool marked broken it is the one-line worker message."""
    from pipeline.runner import _fault

    fault = _fault(OSError("handle is closed"), Path("."), pool_broken=True)
    assert fault is not None and "a worker process died" in str(fault)
    assert _fault(OSError("handle is closed"), Path("."), pool_broken=False) is None


def test_workers_start_without_the_heavy_libraries():
    """Every pool worker preloads the selected stages' modules: the libraries only a few code paths
    use (GDAL's vector bindings, pandas, pvlib, scipy's interpolation and image filters, open3d)
    stay out of them, so a point-cloud run's three processes do not each carry ~200 MB and a
    second of imports."""
    import subprocess
    import sys

    heavy = ["pyogrio", "pandas", "pvlib", "scipy.interpolate", "scipy.ndimage", "scipy.fft", "open3d", "trimesh.ray"]
    code = ("import sys\nfrom pipeline.config import STAGE_NAMES\nfrom pipeline.runner import stage_module\n"
            "for n in STAGE_NAMES: stage_module(n)\n"
            f"print([m for m in {heavy!r} if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_first_run_starts_workers_early_and_an_unchanged_rerun_starts_none(tmp_path, monkeypatch):
    import pipeline.runner as runner_module

    cloud = write_las(tmp_path / "cloud.las", sample_points(5_000), crs="EPSG:5186+5773")
    cfg = tmp_path / "c.yaml"
    cfg.write_text("site: {origin: {lat: 37.5770, lon: 126.8898}}\nexecutor: {kind: local, workers: 1}\n"
                   f"inputs: {{pointclouds: [{{path: {cloud}}}]}}\n")
    started = []
    real = runner_module.make_executor

    def counting(*args, **kw):
        started.append(args[0])
        return real(*args, **kw)

    monkeypatch.setattr(runner_module, "make_executor", counting)
    Runner(load_config(cfg), tmp_path / "w", quiet=True).run(["ingest", "georef"])
    assert started == ["local"]
    Runner(load_config(cfg), tmp_path / "w", quiet=True).run(["ingest", "georef"])
    assert started == ["local"]  # nothing to do: no pool


def test_a_run_with_points_enough_for_every_worker_starts_them_all_with_the_pool(tmp_path, monkeypatch):
    """A pool for point-cloud input of EAGER_POOL_BYTES or more starts every worker at once; a
    smaller run's grows only as its tasks wait (core.executor.GrowingPool)."""
    import pipeline.runner as runner_module

    cloud = write_las(tmp_path / "cloud.las", sample_points(5_000), crs="EPSG:5186+5773")
    cfg = tmp_path / "c.yaml"
    cfg.write_text("site: {origin: {lat: 37.5770, lon: 126.8898}}\nexecutor: {kind: local, workers: 2}\n"
                   f"inputs: {{pointclouds: [{{path: {cloud}}}]}}\n")
    whole: list[int] = []
    real = runner_module.make_executor

    def recording(*args, **kw):
        pool = real(*args, **kw)
        start_all = pool.start_all

        def spy() -> None:
            start_all()
            whole.append(len(pool._processes))

        pool.start_all = spy
        return pool

    monkeypatch.setattr(runner_module, "make_executor", recording)
    monkeypatch.setattr(runner_module, "EAGER_POOL_BYTES", cloud.stat().st_size + 1)
    Runner(load_config(cfg), tmp_path / "small", quiet=True).run(["ingest"])
    assert whole == []
    monkeypatch.setattr(runner_module, "EAGER_POOL_BYTES", cloud.stat().st_size)
    Runner(load_config(cfg), tmp_path / "large", quiet=True).run(["ingest"])
    assert whole == [2]


def test_stopping_a_pool_interrupted_while_it_started_does_not_raise():
    """A stop request can land in the pool's first submit, after its workers were spawned and
    before its manager thread reported started: stopping it must still kill the workers and
    return, so that the run ends as interrupted (exit 130), not with a traceback."""
    import multiprocessing
    import threading
    from concurrent.futures import ProcessPoolExecutor

    from pipeline.runner import _shutdown

    pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
    pool._executor_manager_thread = threading.Thread(target=lambda: None)  # the state a stop leaves
    _shutdown(pool, finished=False)


def test_stopping_a_pool_raises_any_other_error_of_its_shutdown():
    """Only the start-up race above is forgiven: another failure to stop the pool is reported."""
    from concurrent.futures import ProcessPoolExecutor

    from pipeline.runner import _shutdown

    class Failing(ProcessPoolExecutor):
        def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
            super().shutdown(wait=wait, cancel_futures=cancel_futures)
            raise RuntimeError("the pool's queue is gone")

    with pytest.raises(RuntimeError, match="queue is gone"):
        _shutdown(Failing(max_workers=1), finished=False)


def test_inputs_are_known_by_xxh3_and_their_sha256_is_computed_once_where_published(tmp_path, monkeypatch):
    """Stage keys know an input by its XXH3-128 (what tile's provenance names too); its sha256,
    for the bundle's provenance.json, is read only when publish asks, once, and a later run
    takes it from the manifest while the file's stat is unchanged."""
    import hashlib

    import xxhash

    import pipeline.stage as stage_mod

    las = write_las(tmp_path / "a.las", sample_points(5000), crs="EPSG:5186+5773")
    cfg = tmp_path / "c.yaml"
    cfg.write_text("site: {origin: {lat: 37.5770, lon: 126.8898}}\nexecutor: {kind: inline}\n"
                   f"inputs: {{pointclouds: [{{path: {las}}}]}}\n"
                   "stages: {analysis: {enabled: false}, publish: {validate_bundle: false}}\n")
    calls: list[str] = []
    real = stage_mod.sha256_file
    monkeypatch.setattr(stage_mod, "sha256_file", lambda p: calls.append(str(p)) or real(p))
    work = tmp_path / "w"
    xxh3 = "xxh3:" + xxhash.xxh3_128_hexdigest(las.read_bytes())
    sha = hashlib.sha256(las.read_bytes()).hexdigest()

    Runner(load_config(cfg), work, quiet=True).run(list(STAGE_NAMES[:STAGE_NAMES.index("tile") + 1]))
    assert calls == []
    assert json.loads((work / "manifest.json").read_text())["input_files"][str(las)]["xxh3"] == xxh3
    root = json.loads((work / "artifacts" / "tile" / "tileset.json").read_text())
    assert root["metadata"]["properties"]["source_files"] == [f"a.las {xxh3[:21]}"]

    Runner(load_config(cfg), work, quiet=True).run()
    assert calls == [str(las)]
    assert json.loads((work / "bundle" / "provenance.json").read_text())["inputs"] == [{"file": "a.las", "sha256": sha}]
    assert json.loads((work / "manifest.json").read_text())["input_files"][str(las)]["sha256"] == sha
    Runner(load_config(cfg), work, quiet=True).run(["publish"], force=True)
    assert calls == [str(las)]
