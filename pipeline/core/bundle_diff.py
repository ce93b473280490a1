"""What changed between two bundles, for a hub that applies updates instead of reloading.

Buildings are compared through each bundle's ``buildings/features.json``: by id, the digest of
the finest mesh (geometry) and the feature properties (attributes). Values an analysis derives
from the whole district (a building's share of windows failing the sunlight rule) change when a
neighbour moves: they are listed apart, so "changed buildings" means the buildings themselves.
Anchors are compared through ``anchors/anchors.json`` (format 1.0 or 2.0) by id: position (a
millimetre), orientation and their other fields. Where a building or anchor sits in the tiles
(tile and feature ID) is not a change: the hub takes the new tiles whole.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.artifacts.anchors import read_anchors
from pipeline.core.geodesy import geodetic_to_ecef

#: building properties an analysis derives from the district, not the building
DERIVED = ("sunlight_fail_share",)
#: anchor fields that say where a building sits in the tiles: not a change of the anchor
_PLACEMENT = ("feature",)


@dataclass(frozen=True)
class Change:
    """One changed item: its id, whether its geometry (or position) changed, and the fields
    whose values differ, each as [old, new]."""

    id: str
    geometry: bool
    fields: dict[str, list[Any]] = field(default_factory=dict)


@dataclass
class LayerDiff:
    """Ids added and removed, and the changed items, of one kind of thing."""

    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[Change] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed)


@dataclass
class BundleDiff:
    """Buildings, derived analysis values and anchors that differ from OLD to NEW."""

    old: str
    new: str
    buildings: LayerDiff
    analysis: LayerDiff
    anchors: LayerDiff

    @property
    def empty(self) -> bool:
        return self.buildings.empty and self.anchors.empty and self.analysis.empty

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def lines(self) -> list[str]:
        """The diff as text, one line per item."""
        out = []
        for name, layer in (("building", self.buildings), ("anchor", self.anchors), ("analysis", self.analysis)):
            out += [f"+ {name} {i}" for i in layer.added]
            out += [f"- {name} {i}" for i in layer.removed]
            for c in layer.changed:
                what = (["geometry"] if c.geometry else []) + sorted(c.fields)
                out.append(f"~ {name} {c.id}: {', '.join(what)}")
        return out


def _features(bundle: Path) -> dict[str, dict[str, Any]]:
    path = bundle / "buildings" / "features.json"
    if not path.is_file():
        return {}
    return json.loads(path.read_text(encoding="utf-8"))["buildings"]


def _fields(old: dict[str, Any], new: dict[str, Any], keys: set[str]) -> dict[str, list[Any]]:
    return {k: [old.get(k), new.get(k)] for k in sorted(keys) if old.get(k) != new.get(k)}


def diff_buildings(old: Path, new: Path) -> tuple[LayerDiff, LayerDiff]:
    """(the buildings' own changes, changes of values derived by analyses)."""
    a, b = _features(old), _features(new)
    own, derived = LayerDiff(sorted(set(b) - set(a)), sorted(set(a) - set(b))), LayerDiff()
    for bid in sorted(set(a) & set(b)):
        pa, pb = a[bid].get("properties", {}), b[bid].get("properties", {})
        keys = (set(pa) | set(pb)) - set(DERIVED)
        fields = _fields(pa, pb, keys)
        geometry = a[bid].get("geometry") != b[bid].get("geometry")
        if geometry or fields:
            own.changed.append(Change(bid, geometry, fields))
        values = _fields(pa, pb, set(DERIVED))
        if values:
            derived.changed.append(Change(bid, False, values))
    return own, derived


def _anchor_doc(bundle: Path) -> dict[str, dict[str, Any]]:
    path = bundle / "anchors" / "anchors.json"
    if not path.is_file():
        return {}
    return {a.id: asdict(a) for a in read_anchors(path).anchors}


def _moved(a: dict[str, Any], b: dict[str, Any], tol_m: float = 1e-3) -> bool:
    """Whether two anchor positions (WGS84 degrees, ellipsoidal m) lie more than ``tol_m`` apart
    (their straight-line distance in ECEF: right at any latitude)."""
    pa, pb = (geodetic_to_ecef(np.array([p["longitude"]]), np.array([p["latitude"]]),
                               np.array([p["ellipsoidal_height"]]))[0] for p in (a, b))
    return float(np.linalg.norm(pa - pb)) > tol_m


def diff_anchors(old: Path, new: Path) -> LayerDiff:
    a, b = _anchor_doc(old), _anchor_doc(new)
    out = LayerDiff(sorted(set(b) - set(a)), sorted(set(a) - set(b)))
    position = {"latitude", "longitude", "ellipsoidal_height", "orthometric_height", "arcore", "arkit", "cesium",
                "surfaces", "geoid_undulation"}
    for aid in sorted(set(a) & set(b)):
        moved = _moved(a[aid], b[aid])
        keys = (set(a[aid]) | set(b[aid])) - position - set(_PLACEMENT)
        fields = _fields(a[aid], b[aid], keys)
        if moved or fields:
            out.changed.append(Change(aid, moved, fields))
    return out


def diff_bundles(old: str | Path, new: str | Path) -> BundleDiff:
    """What changed from bundle ``old`` to bundle ``new`` (folders)."""
    old, new = Path(old), Path(new)
    buildings, analysis = diff_buildings(old, new)
    return BundleDiff(str(old), str(new), buildings, analysis, diff_anchors(old, new))
