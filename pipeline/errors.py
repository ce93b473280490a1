"""Exceptions and warnings of dmc-twin.

Every error derives from :class:`TwinError`. Errors about bad input carry the file (and where
useful the record and what was expected) as attributes; the CLI prints ``str(error)`` as one
line and exits with code 2. Anything else is a bug and stays a traceback.
"""

from __future__ import annotations

from pathlib import Path


class TwinError(Exception):
    """Base of all dmc-twin errors."""

    def __init__(self, message: str, *, path: str | Path | None = None,
                 stage: str | None = None) -> None:
        self.message = message
        self.path = str(path) if path is not None else None
        self.stage = stage
        super().__init__(message)

    def __reduce__(self) -> tuple:
        # errors raised in executor workers are pickled back to the runner: keep path and stage
        return (_rebuild, (type(self), self.message, self.path, self.stage))

    def __str__(self) -> str:
        parts = []
        if self.stage:
            parts.append(f"{self.stage}:")
        if self.path:
            parts.append(f"{self.path}:")
        parts.append(self.message)
        # one line, whatever a library put in the message (YAML marks, GDAL's multi-line errors)
        return " ".join(" ".join(parts).split())


def _rebuild(cls: type[TwinError], message: str, path: str | None, stage: str | None) -> TwinError:
    return cls(message, path=path, stage=stage)


class ConfigError(TwinError, ValueError):
    """Raised when a config file is unreadable, has unknown keys or values of the wrong type."""


class InputError(TwinError, ValueError):
    """Raised when an input file is missing, unreadable or its content is not what was expected."""


class CRSError(InputError):
    """Raised when an input has no usable CRS, or its coordinates contradict the declared CRS."""


class UnreadableCRSError(CRSError):
    """Raised when an input's CRS record is present but cannot be parsed (an explicit ``crs:``
    in the config overrides it)."""


class GeoidError(InputError):
    """Raised when the geoid grid is missing or a point lies outside its coverage."""


class PointCloudError(InputError):
    """Raised when a LAS/LAZ file is truncated, lies in its header or holds invalid points."""


class StageError(TwinError):
    """Raised when a stage cannot produce a trustworthy result (e.g. a check failed)."""


class TwinWarning(UserWarning):
    """Base of dmc-twin warnings."""


class FeatureSkippedWarning(TwinWarning):
    """A feature (building, POI) was skipped; the stage report counts it."""


class FeatureRepairedWarning(TwinWarning):
    """A feature's geometry was repaired (e.g. a self-intersecting footprint made valid); the
    stage report lists it."""


class GroundAssumedWarning(TwinWarning):
    """Buildings were stood on an assumed ground height (the site's reference height) because
    there is no terrain; the mesh report counts them and each record names its ground source."""


class ValidationWarning(TwinWarning):
    """A check on what is published could not run in full (e.g. the glTF validator is missing)."""


class HeightDisagreementWarning(TwinWarning):
    """Two inputs on the same ground disagree in height by more than
    ``stages.mesh.height_disagreement``: usually one is orthometric where the other is
    ellipsoidal, or a vertical unit or origin is wrong. The mesh report gives the numbers."""


class CRSOverrideWarning(TwinWarning):
    """An input's own CRS record was unreadable and the config's ``crs:`` was used instead."""


class MisalignmentWarning(TwinWarning):
    """One input lies shifted against another it should overlay (footprints against the LiDAR's
    buildings), usually a CRS that differs from the one the file was made in by a small offset
    (the Korean "modified" belts' 10.405 arc seconds, about 255 m). The mesh report gives the shift."""
