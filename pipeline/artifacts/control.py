"""georef's ``gcps.json``: surveyed points in the site frame and the accuracy the twin can claim.

Written on every run; without a GCP file it holds no points and no RMSE (None), which is how the
anchors and the tiles' provenance learn that nothing was measured.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from pipeline.artifacts import CONTROL
from pipeline.artifacts.base import dump_json, load_json

FILE = CONTROL.path


@dataclass(frozen=True)
class SurveyedPoint:
    """One surveyed point: its source coordinates (the GCP file's CRS, orthometric z), WGS84
    degrees, ellipsoidal height and geoid undulation (m), ENU (m), and the LiDAR's median height
    minus the survey's (m; None where the cloud has too few points around it)."""

    id: str
    role: str
    source: list[float]
    lon: float
    lat: float
    h_ellipsoidal: float
    undulation: float
    enu: list[float]
    dz_lidar_minus_survey: float | None


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
