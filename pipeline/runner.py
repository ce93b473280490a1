"""Orchestration: stage order, skip-if-unchanged, atomic outputs, the run manifest, progress.

A stage is skipped when its key (sha256 of the package version, its config section, the site,
the XXH3-128 digests of its input files and the hashes of its upstream stages' outputs) equals
the key recorded in the manifest and its output folder still has the recorded hashes. Each
stage writes into a temporary folder that is swapped in only when it finished; the manifest is
rewritten atomically after every stage, so a run killed at any moment leaves every earlier output
intact and a rerun completes.

One run at a time holds a work directory (an exclusive lock on ``.lock``). A stage reads only
upstream outputs whose files still have the hashes recorded when they were made. A worker that
dies, a full disk or a read-only directory end the run with one line, never a half-written output;
a run where nothing changed writes nothing.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import hashlib
import importlib
import json
import os
import re
import shutil
import threading
import time
from collections.abc import Iterator
from concurrent.futures import BrokenExecutor, ProcessPoolExecutor
from pathlib import Path
from types import ModuleType
from typing import Any

from pipeline import __version__
from pipeline.config import STAGE_NAMES, TwinConfig
from pipeline.core.atomic import (digest_of, file_digest, file_stamp, mirror_dir, replace_dir, sweep_attempts,
                                  tree_hashes, write_bytes_atomic, write_json_atomic)
from pipeline.core.executor import GrowingPool, make_executor, return_freed_memory
from pipeline.core.progress import Reporter
from pipeline.preflight import check_runnable
from pipeline.errors import ConfigError, InputError, StageError, TwinError
from pipeline.stage import StageContext, StageResult, StageSpec

MANIFEST = "manifest.json"
LOCK = ".lock"
#: point-cloud input (bytes) from which a run starts every pool worker with the pool: about
#: 250,000 points of LAS or a million of LAZ, enough work for each; a smaller run's pool starts
#: its second worker only if tasks wait for one (the sample's LiDAR is 17 MB)
EAGER_POOL_BYTES = 8 << 20


def stage_module(name: str) -> ModuleType:
    """The module implementing stage ``name``."""
    return importlib.import_module(f"pipeline.stages.{name}")


def _import_stages(names: list[str]) -> None:
    """Import the modules of stages ``names``; a failed import is left for its stage to raise."""
    for name in names:
        with contextlib.suppress(Exception):
            stage_module(name)


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
    """sha256 of the package's Python sources, schemas, the viewer's web files and the Node tools:
    any code change invalidates outputs (the version number alone does not change between a
    developer's edits; an edited viewer must reach the bundle)."""
    root = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.suffix in (".py", ".json", ".js", ".cjs", ".html", ".css") and "__pycache__" not in p.parts:
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
        # absolute: executor tasks get paths under it, and a cluster's workers run in folders of their own
        self.workdir = Path(workdir).absolute()
        self.quiet = quiet
        self.manifest = load_manifest(self.workdir)
        #: sha256 of input files, as the stages compute them (see StageContext.input_hash)
        self.sha256: dict[str, str] = {}

    def _file_hashes(self) -> dict[str, str]:
        """XXH3-128 of every input file (``xxh3:`` hex), what the stage keys know it by; its
        sha256, published with the bundle, waits until a stage asks for it
        (:meth:`~pipeline.stage.StageContext.input_hash`). A file whose size, modification and
        change times and inode are those recorded when it was last hashed keeps its recorded
        digests: a resumed run over gigabytes of LiDAR does not read them all again to learn
        nothing."""
        hashes, seen = {}, {}
        known = self.manifest.get("input_files", {})
        self.sha256.clear()
        for p in self.cfg.input_paths():
            if not p.is_file():
                raise InputError("input file not found", path=p)
            stamp = file_stamp(p)
            entry = known.get(str(p))
            same = bool(entry) and entry.get("stat") == stamp and "xxh3" in entry
            hashes[str(p)] = entry["xxh3"] if same else file_digest(p)
            seen[str(p)] = {"stat": stamp, "xxh3": hashes[str(p)]}
            if same and "sha256" in entry:
                self.sha256[str(p)] = entry["sha256"]
        self.manifest["input_files"] = seen
        return hashes

    def _note_sha256(self) -> None:
        """Keep in the manifest the sha256 sums the stages computed, for the next run."""
        for path, digest in self.sha256.items():
            if path in self.manifest["input_files"]:
                self.manifest["input_files"][path]["sha256"] = digest

    def _key(self, spec: StageSpec, files: dict[str, str]) -> str:
        name = spec.name
        parts: dict[str, Any] = {"stage": name, "version": __version__, "code": code_digest(),
                                 "config": self.cfg.stage_hash(name, with_inputs=spec.reads_inputs)}
        if spec.reads_inputs:
            parts["files"] = files
        # the artifacts it reads, not their stages' whole outputs: a changed POI layer reruns the
        # stages that read points of interest, not the meshing
        for artifact in spec.reads:
            entry = self.manifest["stages"].get(artifact.stage)
            if entry is None:
                raise StageError(f"stage {name} needs the outputs of {artifact.stage}: run it first "
                                 f"(e.g. --stages {artifact.stage}..{name})")
            parts[f"{artifact.stage}/{artifact.path}"] = digest_of(
                {p: h for p, h in entry["outputs"].items() if artifact.covers(p)})
        return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()

    def _up_to_date(self, name: str, key: str) -> bool:
        entry = self.manifest["stages"].get(name)
        out = output_dir(self.workdir, name)
        return (entry is not None and entry.get("key") == key and out.is_dir()
                and tree_hashes(out, file_digest) == entry.get("outputs"))

    def run(self, stages: list[str] | None = None, *, force: bool = False,
            on_stage: Any = None) -> dict[str, Any]:
        """Run ``stages`` (default all) in order; returns the manifest."""
        names = stages or list(STAGE_NAMES)
        check_runnable(self.cfg, self.cfg.source or Path("config"))
        if self.workdir.exists() and not self.workdir.is_dir():
            raise ConfigError("the work directory is a file, not a folder", path=self.workdir)
        try:
            if not (self.workdir / "artifacts").is_dir():
                (self.workdir / "artifacts").mkdir(parents=True)
        except OSError as exc:
            raise ConfigError(f"cannot create the work directory: {exc.strerror}", path=self.workdir) from None
        with self._lock():
            ex = self.cfg.executor
            # one pool for the whole run: workers start (and import numpy, pyproj, ...) once, not per stage
            shared: list[Any] = []

            def executor() -> Any:
                if not shared:
                    pool = make_executor(ex.kind, ex.workers, ex.scheduler,
                                         preload=tuple(f"pipeline.stages.{n}" for n in names))
                    if isinstance(pool, GrowingPool) and self._point_bytes() >= EAGER_POOL_BYTES:
                        pool.start_all()
                    shared.append(pool)
                return shared[0]

            finished = False
            try:
                if ex.kind == "local" and (force or not self.manifest["stages"]):
                    # spawned workers take a second or two to start and import the stages: on a
                    # first run they do it while this process hashes the inputs; a rerun, where
                    # most stages are usually up to date, starts them when a stage needs them
                    executor().submit(int)
                # the stage modules load while the inputs are hashed (xxhash releases the GIL), not
                # each when its stage begins; joined before any stage runs, so that no lazy import
                # inside a stage ever races this thread for a module lock
                imports = threading.Thread(target=_import_stages, args=(names,), daemon=True)
                imports.start()
                files = self._file_hashes()
                imports.join()
                return_freed_memory()
                self._run_stages(names, files, force, on_stage, executor)
                finished = True
            finally:
                if shared:
                    _shutdown(shared[0], finished)
        return self.manifest

    def _point_bytes(self) -> int:
        """The size of the run's point-cloud inputs (bytes): what says whether every worker will
        have work from the start."""
        return sum(p.stat().st_size for p in (self.cfg.resolve(pc.path) for pc in self.cfg.inputs.pointclouds)
                   if p.is_file())

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        """Hold the work directory for this run; ConfigError when another run holds it. A
        read-only directory takes no lock: no run can write to it."""
        try:
            fd = os.open(self.workdir / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
                yield
                return
            raise
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another process"
                raise ConfigError(f"another dmctwin run (pid {holder}) is using this work directory; wait for it "
                                  "to finish or use another --workdir", path=self.workdir) from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
            yield
        finally:
            os.close(fd)  # closing releases the lock; a killed run's lock goes with its process

    def _check_upstream(self, spec: StageSpec, fresh: set[str]) -> None:
        """StageError when an upstream output changed since its stage made it (an edited or
        corrupted artifact): outputs this run made are fresh; the others are hashed again."""
        for up in spec.requires:
            if up in fresh:
                continue
            entry = self.manifest["stages"][up]
            folder = output_dir(self.workdir, up)
            if not folder.is_dir() or tree_hashes(folder, file_digest) != entry.get("outputs"):
                raise StageError(f"the outputs of {up} changed since it ran (edited, corrupted or removed): "
                                 f"rerun from it (--stages {up}..{spec.name})", path=folder)
            fresh.add(up)

    def _run_stages(self, names: list[str], files: dict[str, str], force: bool, on_stage: Any,
                    executor: Any) -> None:
        fresh: set[str] = set()
        with Reporter(self.quiet) as reporter:
            for name in names:
                module = stage_module(name)
                spec: StageSpec = module.SPEC
                key = self._key(spec, files)
                if not force and self._up_to_date(name, key):
                    fresh.add(name)
                    self.manifest["stages"][name]["skipped"] = True
                    if on_stage:
                        on_stage(name, "skipped", self.manifest["stages"][name])
                    continue
                self._check_upstream(spec, fresh)
                current = final = output_dir(self.workdir, name)
                if spec.versions:
                    final = self.workdir / spec.versions / module.output_version(self.cfg)
                    _adopt_unversioned(current, final.parent)
                tmp = final.with_name(f".tmp-{final.name}")
                try:
                    if tmp.exists():
                        shutil.rmtree(tmp)
                    tmp.mkdir(parents=True)
                except OSError as exc:
                    raise StageError(f"cannot write the work directory: {exc.strerror}", path=final) from None
                ctx = StageContext(self.workdir, tmp,
                                   {up: output_dir(self.workdir, up) for up in spec.requires},
                                   reporter, executor, owns_executor=False, input_digests=files,
                                   input_sha256=self.sha256)
                t0 = time.perf_counter()
                try:
                    result: StageResult = module.run(ctx, self.cfg)
                    seconds = time.perf_counter() - t0
                    # a task whose worker died mid-write (a cluster retried it elsewhere) left its file
                    sweep_attempts(tmp)
                    outputs = tree_hashes(tmp, file_digest)
                    # intermediate artifacts skip the fsync (seconds per gigabyte): a torn file after a
                    # power cut fails the output-hash check on resume and the stage reruns; the
                    # published bundle is what users take away, so it is made durable
                    replace_dir(tmp, final, durable=not spec.output_path.startswith("artifacts/"))
                    if spec.versions:
                        mirror_dir(final, current)
                    if result.report:
                        write_json_atomic(self.workdir / "reports" / f"{name}.json", result.report)
                    for rel in spec.reports:
                        write_bytes_atomic(self.workdir / "reports" / Path(rel).name, (final / rel).read_bytes())
                except BaseException as exc:
                    shutil.rmtree(tmp, ignore_errors=True)
                    fault = _fault(exc, self.workdir, pool_broken=bool(getattr(executor, "_broken", False)))
                    if fault is not None:
                        fault.stage = name
                        raise fault from None
                    if isinstance(exc, TwinError):
                        exc.stage = exc.stage or name
                    raise
                finally:
                    ctx.close()
                entry = {"key": key, "config_hash": self.cfg.stage_hash(name, with_inputs=spec.reads_inputs),
                         "inputs": files if spec.reads_inputs else
                         {up: self.manifest["stages"][up]["digest"] for up in spec.requires},
                         "version": __version__, "code": code_digest(), "outputs": outputs,
                         "digest": digest_of(outputs),
                         "counts": result.counts, "seconds": round(seconds, 3), "skipped": False}
                self.manifest["stages"][name] = entry
                self.manifest["version"] = __version__
                self._note_sha256()
                fresh.add(name)
                try:
                    write_json_atomic(self.workdir / MANIFEST, self.manifest)
                except OSError as exc:
                    raise StageError(f"cannot write the manifest: {exc.strerror}", path=self.workdir) from None
                if on_stage:
                    on_stage(name, "done", entry)


def _adopt_unversioned(current: Path, versions: Path) -> None:
    """Keep an output made before versioning: when ``current`` (a plain folder) holds a version
    (the ``version`` its ``catalog.json`` names) that ``versions`` lacks, hard-link it there, so
    it stays beside the new one once ``current`` moves on."""
    if current.is_symlink() or not current.is_dir():
        return
    try:
        version = str(json.loads((current / "catalog.json").read_text(encoding="utf-8"))["version"])
    except (OSError, ValueError, KeyError, TypeError):
        version = "unversioned"
    if not re.fullmatch(r"[0-9A-Za-z][0-9A-Za-z._+-]{0,63}", version):
        version = "unversioned"
    dest = versions / version
    if not dest.exists():
        versions.mkdir(parents=True, exist_ok=True)
        tmp = versions / f".tmp-{version}"
        if tmp.exists():
            shutil.rmtree(tmp)
        shutil.copytree(current, tmp, copy_function=os.link)
        replace_dir(tmp, dest)


#: write errors a run reports in one line (the input errors have their own messages)
_DISK_ERRORS = {errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EDQUOT, errno.EIO, errno.EPERM, errno.EFBIG}
#: free space (bytes) below which a short write is taken for a full disk
_NEARLY_FULL = 4 << 20


def _fault(exc: BaseException, workdir: Path, *, pool_broken: bool = False) -> TwinError | None:
    """The one-line error for a fault of the machine rather than of the input (a dead worker, a
    full or read-only disk), or None for any other exception. ``pool_broken``: the process pool
    knows a worker died (a death during ``submit`` surfaces as an OSError, "handle is closed",
    from the pipes the pool closed under it, before any BrokenProcessPool)."""
    if isinstance(exc, BrokenExecutor) or (pool_broken and isinstance(exc, OSError)):
        return StageError("a worker process died (killed by the system, most often for lack of memory); finished "
                          "stages are kept: rerun to resume, with fewer executor.workers if memory is short")
    if not isinstance(exc, OSError):
        return None
    if exc.errno in _DISK_ERRORS:
        return StageError(exc.strerror or str(exc), path=exc.filename)
    # numpy reports a short write without an errno
    if exc.errno is None and shutil.disk_usage(workdir).free < _NEARLY_FULL:
        return StageError(f"{os.strerror(errno.ENOSPC)} ({exc})", path=workdir)
    return None


def _shutdown(executor: Any, finished: bool) -> None:
    """Stop the run's pool. After an interruption or an error the workers are killed, not waited
    for: a task can run for minutes, and the user asked to stop."""
    if finished or not isinstance(executor, ProcessPoolExecutor):
        executor.shutdown(wait=True)
        return
    # the standard library offers no way to stop running tasks before Python 3.14's
    # terminate_workers(); the pool's process table is the documented-in-source way
    for proc in list(getattr(executor, "_processes", {}).values()):
        proc.kill()
    # a stop request during the pool's first submit can land before its manager thread reports
    # started: joining it then raises "cannot join thread before it is started". The workers are
    # killed; the thread, once up, finds them gone and ends, and the run ends as interrupted.
    # Any other error is a real one and is raised.
    try:
        executor.shutdown(wait=True, cancel_futures=True)
    except RuntimeError as exc:
        if "before it is started" not in str(exc):
            raise
