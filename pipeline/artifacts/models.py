"""Imported models: ingest's repaired meshes in their own frame and georef's meshes placed in the
site frame, one ``<n>_<stem>.npz`` (vertices, faces) and ``<n>_<stem>.json`` (the record) each.

Both folders are written on every run; without imported models they are empty.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.artifacts import ENU_MODELS, SOURCE_MODELS
from pipeline.artifacts.base import dump_json, load_json


@dataclass(frozen=True)
class SourceModel:
    """One imported model as the config places it: the origin in ``crs_wkt`` (its z orthometric
    unless the CRS says otherwise), heading (degrees clockwise from grid north), scale (metres
    per model unit), up axis ('y' or 'z'), the building it replaces, the repair counts, and whether
    it is a design proposal. Its vertices (model units, model axes) are in ``file``."""

    source: str
    file: str
    id: str
    name: str | None
    use: str | None
    crs_wkt: str
    accept_crs: bool
    origin: list[float]
    heading_deg: float
    scale: float
    up_axis: str
    replaces: str | None
    repair: dict[str, Any]
    proposed: bool


@dataclass(frozen=True)
class PlacedModel(SourceModel):
    """A model in the site frame: its vertices are ENU metres; its origin lies at WGS84
    ``origin_lonlat`` (degrees) and ``origin_ellipsoidal_height`` (m), where the geoid
    undulation is ``undulation`` (m)."""

    origin_lonlat: list[float]
    origin_ellipsoidal_height: float
    undulation: float
    frame: str = "ENU"


def write_model(folder: Path, model: SourceModel, vertices: np.ndarray, faces: np.ndarray) -> None:
    """Write one model's record and mesh into ``folder`` (the stage's ``meshes/``)."""
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / model.file, vertices=vertices, faces=faces)
    dump_json(folder / f"{Path(model.file).stem}.json", asdict(model))


def _records(folder: Path) -> list[dict[str, Any]]:
    return [load_json(p) for p in sorted(folder.glob("*.json"))] if folder.is_dir() else []


def read_source_models(ingest: Path) -> list[SourceModel]:
    """ingest's models, in input order."""
    return [SourceModel(**d) for d in _records(SOURCE_MODELS.locate(ingest))]


def read_models(georef: Path) -> list[PlacedModel]:
    """georef's placed models, in input order."""
    return [PlacedModel(**d) for d in _records(ENU_MODELS.locate(georef))]


def load_mesh(folder: Path, model: SourceModel) -> tuple[np.ndarray, np.ndarray]:
    """(vertices (V, 3), faces (F, 3)) of a model in ``folder`` (a stage's ``meshes/``)."""
    d = np.load(folder / model.file)
    return d["vertices"], d["faces"]
