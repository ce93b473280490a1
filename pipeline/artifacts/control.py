"""Surveyed points: ingest's rows of the GCP file in its CRS, and georef's ``gcps.json``, the
points in the site frame and the accuracy the twin can claim.

Both are written on every run; without a GCP file ingest's has ``source`` None and georef's holds
no points and no RMSE (None), which is how the anchors and the tiles' provenance learn that
nothing was measured.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from pipeline.artifacts import CONTROL, SOURCE_GCPS
from pipeline.artifacts.base import dump_json, load_json

FILE = CONTROL.path


@dataclass(frozen=True)
class GcpRow:
    """One row of a GCP file: id, coordinates in the file's CRS (z orthometric unless the CRS
    says otherwise), the scan's local coordinates for a locally referenced scan (else None), and
    its role: 'control' (used in fits) or 'check' (held out)."""

    id: str
    x: float
    y: float
    z: float
    role: str = "control"
    local_x: float | None = None
    local_y: float | None = None
    local_z: float | None = None
    sigma_h: float | None = None
    sigma_v: float | None = None

    @property
    def has_local(self) -> bool:
        return self.local_x is not None


@dataclass(frozen=True)
class SourceGcps:
    """ingest's GCP layer: the file (None: no GCP input), its CRS as WKT, whether the landing
    checks are waived, and its rows in file order."""

    source: str | None = None
    crs_wkt: str | None = None
    accept_crs: bool = False
    points: list[GcpRow] = field(default_factory=list)


def write_source_gcps(folder: Path, gcps: SourceGcps) -> None:
    dump_json(SOURCE_GCPS.locate(folder), asdict(gcps))


def read_source_gcps(folder: Path) -> SourceGcps:
    doc = load_json(SOURCE_GCPS.locate(folder))
    return SourceGcps(doc["source"], doc["crs_wkt"], doc["accept_crs"], [GcpRow(**p) for p in doc["points"]])


@dataclass(frozen=True)
class SurveyedPoint:
    """One surveyed point: its source coordinates (the GCP file's CRS, orthometric z), WGS84
    degrees, ellipsoidal height and geoid undulation (m), ENU (m), the LiDAR's median height
    minus the survey's (m; None where the cloud has too few points around it) and the survey's
    stated 1-sigma accuracy (m; None when not stated)."""

    id: str
    role: str
    source: list[float]
    lon: float
    lat: float
    h_ellipsoidal: float
    undulation: float
    enu: list[float]
    dz_lidar_minus_survey: float | None
    sigma_h: float | None = None
    sigma_v: float | None = None


@dataclass(frozen=True)
class ControlRecord:
    """The surveyed points and the georeferencing accuracy (metres, 1 sigma as RMSE): vertical is
    LiDAR against the surveyed heights, horizontal the control fit of a locally referenced scan."""

    points: list[SurveyedPoint] = field(default_factory=list)
    vertical_rmse: float | None = None
    horizontal_rmse: float | None = None


def write_control(folder: Path, control: ControlRecord) -> None:
    dump_json(folder / FILE, asdict(control))


def read_control(folder: Path) -> ControlRecord:
    doc = load_json(folder / FILE)
    return ControlRecord([SurveyedPoint(**p) for p in doc["points"]], doc["vertical_rmse"], doc["horizontal_rmse"])
