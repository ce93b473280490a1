"""The stage contract.

A stage is a module under ``pipeline/stages/`` with:

- ``SPEC``: a :class:`StageSpec`: its name in configs, manifests and ``--stages``, the artifacts
  (:mod:`pipeline.artifacts`) it reads and writes, whether it reads the config's input files, and
  where its output folder lives. The runner learns everything it needs from this declaration;
- ``run(ctx, config) -> StageResult``.

Rules for implementers: read upstream artifacts only through their readers in
:mod:`pipeline.artifacts`, from ``ctx.input_dir(stage)`` of a stage whose artifact ``SPEC.reads``
names, and input files only when ``SPEC.reads_inputs`` (their XXH3-128 through
``ctx.input_digest``, which the runner computed once for the run, and their published sha256
through ``ctx.input_hash``, computed on first use); write every artifact of ``SPEC.writes``, also
when its layer is empty (the readers expect the file), and only below ``ctx.out_dir``
(a fresh temporary folder the runner swaps in atomically when ``run`` returns); never import
another stage (shared logic belongs in ``pipeline/core``); keep outputs deterministic (no
timestamps, stable ordering) so an unchanged input gives byte-identical output; put timings in
nothing but the ``StageResult``, which the runner records in the manifest; raise a
:class:`~pipeline.errors.TwinError` subclass for bad input, never leave partial files.
"""

from __future__ import annotations

from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.artifacts.base import Artifact
from pipeline.core.atomic import file_digest, sha256_file
from pipeline.core.progress import Reporter


@dataclass(frozen=True)
class StageSpec:
    """What a stage declares: its name, the artifacts it reads and writes, whether it reads the
    config's input files (their hashes then join its cache key), its output folder relative
    to the work directory (``artifacts/<name>`` unless given) and the report files it makes."""

    name: str
    reads: tuple[Artifact, ...] = ()
    writes: tuple[Artifact, ...] = ()
    reads_inputs: bool = False
    output: str | None = None
    #: files of its output (relative paths) also copied into ``<workdir>/reports/`` when it ran
    reports: tuple[str, ...] = ()
    #: a folder (relative to the work directory) keeping one output per version, named by the
    #: stage module's ``output_version(cfg)``; ``output`` then mirrors the newest (hard links),
    #: switched only once that is complete, and the earlier versions stay as they were
    versions: str | None = None

    @property
    def requires(self) -> tuple[str, ...]:
        """The upstream stages whose outputs it reads, in name order."""
        return tuple(sorted({a.stage for a in self.reads}))

    @property
    def output_path(self) -> str:
        return self.output or f"artifacts/{self.name}"


@dataclass
class StageContext:
    """What the runner hands a stage."""

    workdir: Path
    out_dir: Path
    inputs: dict[str, Path]
    reporter: Reporter
    executor_factory: Any = None
    #: False when the runner shares one executor across stages and shuts it down itself
    owns_executor: bool = True
    #: XXH3-128 of the config's input files (absolute path -> ``xxh3:`` hex), hashed once per run by
    #: the runner: what knows a file again
    input_digests: dict[str, str] = field(default_factory=dict)
    #: sha256 of input files (absolute path -> hex), computed when a stage first asks for one: the
    #: runner shares it between stages and keeps it in the manifest for the next run
    input_sha256: dict[str, str] = field(default_factory=dict)
    _executor: Executor | None = field(default=None, repr=False)

    def input_dir(self, stage: str) -> Path:
        """Output folder of an upstream stage one of whose artifacts ``SPEC.reads`` names."""
        try:
            return self.inputs[stage]
        except KeyError:
            raise RuntimeError(f"stage did not declare an artifact of {stage!r} in SPEC.reads") from None

    def locate(self, artifact: Artifact) -> Path:
        """Where a declared upstream artifact lies."""
        return artifact.locate(self.input_dir(artifact.stage))

    def input_digest(self, path: Path) -> str:
        """``xxh3:`` and the XXH3-128 of a declared input file: the runner's, or computed."""
        return self.input_digests.get(str(path)) or file_digest(path)

    def input_hash(self, path: Path) -> str:
        """sha256 of a declared input file, the checksum published with the bundle: computed on
        first use only (seconds per gigabyte; a conversion that publishes nothing never pays it)."""
        key = str(path)
        if key not in self.input_sha256:
            self.input_sha256[key] = sha256_file(path)
        return self.input_sha256[key]

    @property
    def executor(self) -> Executor:
        """The run's executor, started on first use."""
        if self._executor is None:
            self._executor = self.executor_factory()
        return self._executor

    def close(self) -> None:
        if self._executor is not None and self.owns_executor:
            self._executor.shutdown(wait=True)
        self._executor = None


@dataclass
class StageResult:
    """A stage's counts (recorded in the manifest) and report (written to reports/<stage>.json)."""

    counts: dict[str, int] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)
