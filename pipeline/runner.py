"""Orchestration: stage order, skip-if-unchanged, atomic outputs, the run manifest, progress.

A stage is skipped when its key (sha256 of the package version, its config section, the site,
the hashes of its input files and of its upstream stages' outputs) equals the key recorded in the
manifest and its output folder still has the recorded hashes. Each stage writes into a temporary
folder that is swapped in only when it finished; the manifest is rewritten atomically after every
stage, so a run killed at any moment leaves every earlier output intact and a rerun completes.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import json
import shutil
import time
from pathlib import Path
from types import ModuleType
from typing import Any

from pipeline import __version__
from pipeline.config import STAGE_NAMES, TwinConfig
from pipeline.core.atomic import digest_of, replace_dir, sha256_file, tree_hashes, write_json_atomic
from pipeline.core.executor import make_executor, return_freed_memory
from pipeline.core.progress import Reporter
from pipeline.preflight import check_runnable
from pipeline.errors import ConfigError, InputError, StageError, TwinError
from pipeline.stage import StageContext, StageResult, StageSpec

MANIFEST = "manifest.json"


def stage_module(name: str) -> ModuleType:
    """The module implementing stage ``name``."""
    return importlib.import_module(f"pipeline.stages.{name}")


def stage_spec(name: str) -> StageSpec:
    """The declaration of stage ``name``."""
    spec: StageSpec = stage_module(name).SPEC
    return spec


def output_dir(workdir: Path, name: str) -> Path:
    """Where stage ``name`` keeps its outputs (its declaration says)."""
    return workdir / stage_spec(name).output_path


def select_stages(spec: str | None) -> list[str]:
    """Stage names from ``a..b``, ``a,b,c`` or a single name (all stages when ``spec`` is None)."""
    if not spec:
        return list(STAGE_NAMES)
    if ".." in spec:
        first, _, last = spec.partition("..")
        first, last = first or STAGE_NAMES[0], last or STAGE_NAMES[-1]
        for n in (first, last):
            if n not in STAGE_NAMES:
                raise ConfigError(f"unknown stage {n!r} in --stages (stages: {', '.join(STAGE_NAMES)})")
        i, j = STAGE_NAMES.index(first), STAGE_NAMES.index(last)
        if i > j:
            raise ConfigError(f"--stages {spec}: {first} comes after {last}")
        return list(STAGE_NAMES[i:j + 1])
    names = [n.strip() for n in spec.split(",") if n.strip()]
    for n in names:
        if n not in STAGE_NAMES:
            raise ConfigError(f"unknown stage {n!r} in --stages (stages: {', '.join(STAGE_NAMES)})")
    return [n for n in STAGE_NAMES if n in names]


@functools.cache
def code_digest() -> str:
    """sha256 of the package's Python sources and schemas: any code change invalidates outputs
    (the version number alone does not change between a developer's edits)."""
    root = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.suffix in (".py", ".json") and "__pycache__" not in p.parts:
            h.update(p.relative_to(root).as_posix().encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def load_manifest(workdir: Path) -> dict[str, Any]:
    """The manifest of ``workdir`` (an empty one if none was written yet)."""
    path = workdir / MANIFEST
    if path.is_file():
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError:
            pass  # written atomically, so only a hand-edited manifest lands here: start afresh
    return {"version": __version__, "stages": {}}


class Runner:
    """Runs the stages of one config in one work directory."""

    def __init__(self, cfg: TwinConfig, workdir: Path, *, quiet: bool = False) -> None:
        self.cfg = cfg
        self.workdir = Path(workdir)
        self.quiet = quiet
        self.manifest = load_manifest(self.workdir)

    def _file_hashes(self) -> dict[str, str]:
        hashes = {}
        for p in self.cfg.input_paths():
            if not p.is_file():
                raise InputError("input file not found", path=p)
            hashes[str(p)] = sha256_file(p)
        return hashes

    def _key(self, spec: StageSpec, files: dict[str, str]) -> str:
        name = spec.name
        parts: dict[str, Any] = {"stage": name, "version": __version__, "code": code_digest(),
                                 "config": self.cfg.stage_hash(name, with_inputs=spec.reads_inputs)}
        if spec.reads_inputs:
            parts["files"] = files
        for up in spec.requires:
            entry = self.manifest["stages"].get(up)
            if entry is None:
                raise StageError(f"stage {name} needs the outputs of {up}: run it first "
                                 f"(e.g. --stages {up}..{name})")
            parts[up] = entry["digest"]
        return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()

    def _up_to_date(self, name: str, key: str) -> bool:
        entry = self.manifest["stages"].get(name)
        out = output_dir(self.workdir, name)
        return (entry is not None and entry.get("key") == key and out.is_dir()
                and tree_hashes(out) == entry.get("outputs"))

    def run(self, stages: list[str] | None = None, *, force: bool = False,
            on_stage: Any = None) -> dict[str, Any]:
        """Run ``stages`` (default all) in order; returns the manifest."""
        names = stages or list(STAGE_NAMES)
        check_runnable(self.cfg, self.cfg.source or Path("config"))
        if self.workdir.exists() and not self.workdir.is_dir():
            raise ConfigError("the work directory is a file, not a folder", path=self.workdir)
        try:
            (self.workdir / "artifacts").mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot create the work directory: {exc.strerror}", path=self.workdir) from None
        files = self._file_hashes()
        return_freed_memory()
        ex = self.cfg.executor
        # one pool for the whole run: workers start (and import numpy, pyproj, ...) once, not per stage
        shared: list[Any] = []

        def executor() -> Any:
            if not shared:
                shared.append(make_executor(ex.kind, ex.workers, ex.scheduler))
            return shared[0]

        try:
            self._run_stages(names, files, force, on_stage, executor)
        finally:
            if shared:
                shared[0].shutdown(wait=True)
        write_json_atomic(self.workdir / MANIFEST, self.manifest)
        return self.manifest

    def _run_stages(self, names: list[str], files: dict[str, str], force: bool, on_stage: Any,
                    executor: Any) -> None:
        with Reporter(self.quiet) as reporter:
            for name in names:
                module = stage_module(name)
                spec: StageSpec = module.SPEC
                key = self._key(spec, files)
                if not force and self._up_to_date(name, key):
                    self.manifest["stages"][name]["skipped"] = True
                    if on_stage:
                        on_stage(name, "skipped", self.manifest["stages"][name])
                    continue
                final = output_dir(self.workdir, name)
                tmp = final.with_name(f".tmp-{final.name}")
                if tmp.exists():
                    shutil.rmtree(tmp)
                tmp.mkdir(parents=True)
                ctx = StageContext(self.workdir, tmp,
                                   {up: output_dir(self.workdir, up) for up in spec.requires},
                                   reporter, executor, owns_executor=False, input_hashes=files)
                t0 = time.perf_counter()
                try:
                    result: StageResult = module.run(ctx, self.cfg)
                except BaseException as exc:
                    if isinstance(exc, TwinError):
                        exc.stage = exc.stage or name
                    shutil.rmtree(tmp, ignore_errors=True)
                    raise
                finally:
                    ctx.close()
                seconds = time.perf_counter() - t0
                outputs = tree_hashes(tmp)
                # intermediate artifacts skip the fsync (seconds per gigabyte): a torn file after a
                # power cut fails the output-hash check on resume and the stage reruns; the
                # published bundle is what users take away, so it is made durable
                replace_dir(tmp, final, durable=not spec.output_path.startswith("artifacts/"))
                if result.report:
                    write_json_atomic(self.workdir / "reports" / f"{name}.json", result.report)
                entry = {"key": key, "config_hash": self.cfg.stage_hash(name, with_inputs=spec.reads_inputs),
                         "inputs": files if spec.reads_inputs else
                         {up: self.manifest["stages"][up]["digest"] for up in spec.requires},
                         "version": __version__, "code": code_digest(), "outputs": outputs,
                         "digest": digest_of(outputs),
                         "counts": result.counts, "seconds": round(seconds, 3), "skipped": False}
                self.manifest["stages"][name] = entry
                self.manifest["version"] = __version__
                write_json_atomic(self.workdir / MANIFEST, self.manifest)
                if on_stage:
                    on_stage(name, "done", entry)
