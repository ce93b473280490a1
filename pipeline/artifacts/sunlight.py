"""analysis's sunlight result: ``sunlight/sunlight.json`` (settings, sun table, per-building
summaries, changed verdicts) and ``sunlight/receivers.npz`` (every receiver and its sun hours).

Both are written on every run. A disabled analysis, or a site without buildings and terrain,
has ``enabled`` False or no receivers. Receiver positions and normals are ENU metres at the site
origin; hours are minutes on the result's clock (``settings.time_basis``). Scenario 0 is the
district as it stands (proposals left out); scenario 1, when there are proposals, has them built
and the buildings they replace removed. A receiver absent from a scenario (on a proposal, inside
one's footprint, on a replaced building) has NaN minutes there.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.artifacts import SUNLIGHT
from pipeline.artifacts.base import dump_json, load_json
from pipeline.core.receivers import Receivers

if TYPE_CHECKING:
    from pipeline.core.sun import SunTable

FILE = SUNLIGHT.path
FOLDER = "sunlight"
RECEIVERS = f"{FOLDER}/receivers.npz"
SCENARIOS = ("existing", "with_proposals")


@dataclass
class SunlightRecord:
    """The analysis as the report and the tiles need it. ``settings`` (day, time basis, step,
    rule, spacings), ``sun`` (clock minutes, UTC, azimuth, apparent elevation per step),
    ``scenarios`` (names, in the receivers' column order), ``proposals`` / ``replaced`` (building
    ids), ``buildings`` (per building and scenario: receivers, failing share, worst storey),
    ``changes`` (receivers whose verdict the proposals change, grouped by building), ``ground``
    (the ground grid's GeoTIFF: file, CRS, transform, shape) and ``counts``."""

    enabled: bool
    settings: dict[str, Any] = field(default_factory=dict)
    sun: dict[str, list[Any]] = field(default_factory=dict)
    scenarios: list[str] = field(default_factory=list)
    proposals: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    buildings: list[dict[str, Any]] = field(default_factory=list)
    changes: list[dict[str, Any]] = field(default_factory=list)
    ground: dict[str, Any] | None = None
    files: dict[str, str] = field(default_factory=dict)
    counts: dict[str, Any] = field(default_factory=dict)

    def sun_table(self) -> SunTable:
        """The sun at the analysis's steps, recomputed from its settings (day, site, clock, window)."""
        # pvlib (and pandas) load only here: tile and publish read this record without the sun
        from pipeline.core.sun import sun_table

        s = self.settings
        return sun_table(date.fromisoformat(s["date"]), s["site"]["lat"], s["site"]["lon"], basis=s["time_basis"],
                         start_h=s["window_h"][0], end_h=s["window_h"][1], step_min=s["step_min"])

    def fail_share(self, scenario: int = 0) -> dict[str, float]:
        """Building id -> share of its receivers failing the rule in ``scenario`` (0..1)."""
        name = self.scenarios[scenario] if scenario < len(self.scenarios) else None
        return {b["id"]: b[name]["fail_share"] for b in self.buildings
                if name is not None and b.get(name) is not None}


@dataclass
class ReceiverResults:
    """Every receiver and, per scenario (columns), whether it exists there, its longest
    continuous and total sunlit minutes within the rule's windows (NaN where absent) and whether
    it passes the rule (False where absent)."""

    receivers: Receivers
    present: np.ndarray
    continuous_min: np.ndarray
    total_min: np.ndarray
    passes: np.ndarray

    @classmethod
    def empty(cls, scenarios: int = 1) -> ReceiverResults:
        return cls(Receivers.empty(), np.zeros((0, scenarios), bool), np.zeros((0, scenarios), np.float32),
                   np.zeros((0, scenarios), np.float32), np.zeros((0, scenarios), bool))


def write_sunlight(folder: Path, record: SunlightRecord, results: ReceiverResults) -> None:
    """Write the record and the receivers into ``folder`` (the analysis stage's output)."""
    (folder / FOLDER).mkdir(parents=True, exist_ok=True)
    r = results.receivers
    np.savez(folder / RECEIVERS, position=r.position, normal=r.normal, building=r.building, storey=r.storey,
             azimuth_deg=r.azimuth_deg, present=results.present,
             continuous_min=results.continuous_min.astype(np.float32), total_min=results.total_min.astype(np.float32),
             passes=results.passes)
    dump_json(folder / FILE, asdict(record))


def read_sunlight(folder: Path) -> SunlightRecord:
    return SunlightRecord(**load_json(folder / FILE))


def read_receivers(folder: Path) -> ReceiverResults:
    d = np.load(folder / RECEIVERS)
    return ReceiverResults(Receivers(d["position"], d["normal"], d["building"], d["storey"], d["azimuth_deg"]),
                           d["present"], d["continuous_min"], d["total_min"], d["passes"])
