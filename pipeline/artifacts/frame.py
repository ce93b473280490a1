"""georef's ``frame.json``: the site's ENU frame and the geoid every height went through."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from pipeline.artifacts import FRAME
from pipeline.artifacts.base import dump_json, load_json
from pipeline.core.geodesy import SiteFrame
from pipeline.core.geoid_grids import GeoidInfo

FILE = FRAME.path


@dataclass(frozen=True)
class FrameRecord:
    """The ENU frame (origin: WGS84 degrees, metres above the ellipsoid), the geoid grid's file
    name, how input heights were read ('orthometric' or 'ellipsoidal' when a CRS did not say) and
    the geoid model (name, version, stated accuracy)."""

    site: SiteFrame
    geoid_grid: str
    heights: str
    geoid: GeoidInfo

    def enu_to_ecef(self) -> np.ndarray:
        """4x4 ENU -> ECEF (EPSG:4978) transform, metres."""
        return self.site.enu_to_ecef_matrix()

    def origin_lon_lat_h(self) -> list[float]:
        return [self.site.lon, self.site.lat, self.site.height]


def write_frame(folder: Path, frame: FrameRecord) -> None:
    dump_json(folder / FILE, {"origin": {"lat": frame.site.lat, "lon": frame.site.lon, "height": frame.site.height},
                              "enu_to_ecef": frame.enu_to_ecef().tolist(), "geoid_grid": frame.geoid_grid,
                              "heights": frame.heights, "geoid": asdict(frame.geoid)})


def read_frame(folder: Path) -> FrameRecord:
    doc = load_json(folder / FILE)
    return FrameRecord(SiteFrame.from_origin(doc["origin"]), doc["geoid_grid"], doc["heights"],
                       GeoidInfo(**doc["geoid"]))
