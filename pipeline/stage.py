"""The stage contract.

A stage is a module under ``pipeline/stages/`` with:

- ``NAME``: its name in configs, manifests and ``--stages``;
- ``REQUIRES``: the stages whose artifacts it reads (and nothing else of theirs);
- ``run(ctx, config) -> StageResult``.

Rules for implementers: read inputs only through ``ctx.input_dir(stage)`` for a stage in
``REQUIRES`` and through the config's declared input files (their sha256 through
``ctx.input_hash``, which the runner computed once for the run); write only below ``ctx.out_dir``
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

from pipeline.core.atomic import sha256_file
from pipeline.core.progress import Reporter


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
    #: sha256 of the config's input files (absolute path -> hex), hashed once per run by the runner
    input_hashes: dict[str, str] = field(default_factory=dict)
    _executor: Executor | None = field(default=None, repr=False)

    def input_dir(self, stage: str) -> Path:
        """Artifact folder of an upstream stage named in ``REQUIRES``."""
        try:
            return self.inputs[stage]
        except KeyError:
            raise RuntimeError(f"stage did not declare {stage!r} in REQUIRES") from None

    def input_hash(self, path: Path) -> str:
        """sha256 of a declared input file: the runner's, or computed when it has none."""
        return self.input_hashes.get(str(path)) or sha256_file(path)

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
