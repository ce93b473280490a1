"""anchors' output: ``anchors.json`` (format 2.0, validated against the shipped schema),
``anchors.geojson`` (RFC 7946 points), ``anchors.csv``, a copy of the schema and ``summary.json``
(the count of each kind and the extent). The files are written a batch of anchors at a time
(:class:`AnchorWriter`): a city's anchors do not fit in memory as objects.

Every anchor is one place on WGS84 (degrees; heights in metres, ellipsoidal unless named
orthometric) with what each AR platform asks for:

- ARCore Geospatial: the WGS84 altitude and the East-Up-South quaternion (``Earth.createAnchor``),
  and the height above the terrain and above the rooftop as our meshes have them
  (``resolveAnchorOnTerrainAsync`` / ``resolveAnchorOnRooftopAsync``);
- ARKit ``ARGeoAnchor``: altitude above mean sea level through the named geoid model;
- CesiumJS / Cesium for Unity: the ECEF position (EPSG:4978), the ENU-to-ECEF matrix at the
  anchor (column-major, as ``Cesium.Matrix4.fromArray`` takes it) and the orientation in ECEF.

Format 1.0 files (kinds ``building`` and ``poi``) are read too: :func:`read_anchors` upgrades
them (``poi`` becomes ``terrain``; platform fields and accuracy absent).
"""

from __future__ import annotations

import csv
from contextlib import ExitStack
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from pipeline.artifacts import ANCHORS
from pipeline.artifacts.base import dump_json, load_json
from pipeline.core.accuracy import Accuracy, ErrorPart
from pipeline.core.geoid_grids import GeoidInfo

FORMAT_VERSION = "2.0"
KINDS = ("building", "rooftop", "terrain", "gcp", "model")
CSV_COLUMNS = ("id", "kind", "name", "category", "latitude", "longitude", "ellipsoidal_height",
               "orthometric_height", "geoid_undulation", "heading_deg", "altitude_above_terrain",
               "altitude_above_rooftop", "ecef_x", "ecef_y", "ecef_z", "horizontal_accuracy_m",
               "vertical_accuracy_m", "vertical_orthometric_accuracy_m", "building_id")
SUMMARY = "summary.json"


def schema_path() -> Any:
    """The anchors JSON Schema (format 2.0) shipped in the package."""
    return resources.files("pipeline") / "schemas" / "anchors.schema.json"


@dataclass(frozen=True)
class Orientation:
    """One rotation, as unit quaternions [x, y, z, w] in three frames: the anchor's local ENU
    (identity: x east, y north, z up), East-Up-South (ARCore, ARKit geo anchors: x east, y up,
    z south) and ECEF (EPSG:4978 axes)."""

    enu_xyzw: list[float]
    eus_xyzw: list[float]
    ecef_xyzw: list[float] | None = None


@dataclass(frozen=True)
class ArcorePose:
    """What ARCore's Geospatial API takes: WGS84 degrees, altitude above the ellipsoid (m), the
    EUS quaternion, and heights above the terrain / rooftop it resolves itself (m; None when our
    meshes have no such surface there)."""

    latitude: float
    longitude: float
    altitude: float
    eus_xyzw: list[float]
    altitude_above_terrain: float | None
    altitude_above_rooftop: float | None
    recommended: str


@dataclass(frozen=True)
class ArkitPose:
    """What ``ARGeoAnchor(coordinate:altitude:)`` takes: degrees and metres above mean sea
    level through ``geoid`` (the model named); content turns by the EUS quaternion."""

    latitude: float
    longitude: float
    altitude: float
    geoid: str
    eus_xyzw: list[float]


@dataclass(frozen=True)
class CesiumPose:
    """ECEF position (m), the 4x4 ENU-to-ECEF matrix at the anchor (16 numbers, column-major:
    ``Transforms.eastNorthUpToFixedFrame``) and the orientation in ECEF."""

    ecef: list[float]
    enu_to_ecef: list[float]
    ecef_xyzw: list[float]


@dataclass(frozen=True)
class Surfaces:
    """Ellipsoidal heights (m) of our terrain and of the anchor's roof on its plumb line."""

    terrain_ellipsoidal_height: float | None = None
    rooftop_ellipsoidal_height: float | None = None


@dataclass(frozen=True)
class Anchor:
    """One AR anchor (see the module docstring for frames and units)."""

    id: str
    kind: str
    name: str
    category: str | None
    latitude: float
    longitude: float
    ellipsoidal_height: float
    orthometric_height: float
    geoid_undulation: float
    heading_deg: float
    orientation: Orientation
    surfaces: Surfaces = field(default_factory=Surfaces)
    arcore: ArcorePose | None = None
    arkit: ArkitPose | None = None
    cesium: CesiumPose | None = None
    accuracy: Accuracy | None = None
    feature: dict[str, Any] | None = None
    properties: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Anchor:
        d = dict(doc)
        d["orientation"] = Orientation(**d["orientation"])
        d["surfaces"] = Surfaces(**d.get("surfaces", {}))
        for key, kind in (("arcore", ArcorePose), ("arkit", ArkitPose), ("cesium", CesiumPose)):
            d[key] = kind(**d[key]) if d.get(key) else None
        if d.get("accuracy"):
            acc = dict(d["accuracy"])
            acc["parts"] = [ErrorPart(**p) for p in acc["parts"]]
            d["accuracy"] = Accuracy(**acc)
        return cls(**d)


@dataclass
class AnchorSet:
    """Every anchor of a site, with the site's origin, the geoid model the heights went through,
    the georeferencing accuracy and what was skipped (anchor id or place, and why)."""

    site: dict[str, Any]
    geoid: GeoidInfo | None
    geoid_grid: str
    input_heights: str
    accuracy: dict[str, Any]
    anchors: list[Anchor] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    format_version: str = FORMAT_VERSION

    def by_id(self) -> dict[str, Anchor]:
        return {a.id: a for a in self.anchors}

    def header(self) -> dict[str, Any]:
        """anchors.json's members before its anchors."""
        return {"schema_version": self.format_version, "site": self.site, "geoid": self.geoid,
                "geoid_grid": self.geoid_grid, "input_heights": self.input_heights, "accuracy": self.accuracy}


@dataclass(frozen=True)
class AnchorSummary:
    """What publish and the hub need without reading every anchor (``summary.json``): how many
    anchors of each kind, and their extent ``[west, south, lowest, east, north, highest]`` (WGS84
    degrees, metres above the ellipsoid; None without anchors)."""

    count: int
    kinds: dict[str, int]
    bbox: list[float] | None


def _open_object(doc: dict[str, Any], member: str) -> bytes:
    """The JSON text of ``doc`` (non-empty) up to where the array ``member`` opens after its members."""
    return orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)[:-1] + b',"' + member.encode() + b'":['


def _geojson_features(batch: list[Anchor]) -> list[dict[str, Any]]:
    features = []
    for a in batch:
        props = {k: getattr(a, k) for k in ("kind", "name", "category", "orthometric_height", "geoid_undulation",
                                             "heading_deg")}
        props["ellipsoidal_height"] = a.ellipsoidal_height
        props["building_id"] = (a.feature or {}).get("building_id")
        if a.accuracy is not None:
            props["horizontal_accuracy_m"] = a.accuracy.horizontal_m
            props["vertical_accuracy_m"] = a.accuracy.vertical_m
        features.append({"type": "Feature", "id": a.id, "properties": props,
                         "geometry": {"type": "Point",
                                      "coordinates": [a.longitude, a.latitude, a.ellipsoidal_height]}})
    return features


def _csv_row(a: Anchor) -> list[Any]:
    ecef = a.cesium.ecef if a.cesium else [None, None, None]
    acc = a.accuracy
    return [a.id, a.kind, a.name, a.category or "", a.latitude, a.longitude, a.ellipsoidal_height,
            a.orthometric_height, a.geoid_undulation, a.heading_deg,
            *(("" if v is None else v) for v in (
                a.arcore.altitude_above_terrain if a.arcore else None,
                a.arcore.altitude_above_rooftop if a.arcore else None, *ecef,
                acc.horizontal_m if acc else None, acc.vertical_m if acc else None,
                acc.vertical_orthometric_m if acc else None)),
            (a.feature or {}).get("building_id", "")]


class AnchorWriter:
    """Writes anchors.json, anchors.geojson and anchors.csv a batch of anchors at a time, so a
    city's anchors never stand in memory together; :meth:`close` ends them with ``skipped`` and
    writes ``summary.json`` and the schema. Use as a context manager (the files close on error;
    the stage's output folder is discarded then)."""

    def __init__(self, folder: Path, head: AnchorSet) -> None:
        self.folder = Path(folder)
        with ExitStack() as opened:  # a file that fails to open closes those opened before it
            self._json = opened.enter_context((self.folder / ANCHORS.path).open("wb"))
            self._geojson = opened.enter_context((self.folder / "anchors.geojson").open("wb"))
            self._csv = opened.enter_context((self.folder / "anchors.csv").open("w", encoding="utf-8", newline=""))
            self._files = opened.pop_all()
        self._json.write(_open_object(head.header(), "anchors"))
        self._geojson.write(_open_object(
            {"type": "FeatureCollection",
             # a foreign member (RFC 7946 section 6.1): what the third coordinate is
             "dmctwin:height": "third coordinate: metres above the WGS84 ellipsoid (RFC 7946 section 3.1.1); "
                               "properties.orthometric_height is above mean sea level through the geoid "
                               f"{head.geoid.label() if head.geoid else head.geoid_grid}"}, "features"))
        self._rows = csv.writer(self._csv, lineterminator="\n")
        self._rows.writerow(CSV_COLUMNS)
        self.count = 0
        self.kinds: dict[str, int] = {}
        self._lo = np.full(3, np.inf)
        self._hi = np.full(3, -np.inf)

    def add(self, batch: list[Anchor]) -> None:
        """Append ``batch`` to the three files."""
        if not batch:
            return
        sep = b"," if self.count else b""
        self._json.write(sep + orjson.dumps(batch, option=orjson.OPT_SERIALIZE_NUMPY)[1:-1])
        self._geojson.write(sep + orjson.dumps(_geojson_features(batch), option=orjson.OPT_SERIALIZE_NUMPY)[1:-1])
        self._rows.writerows(_csv_row(a) for a in batch)
        self.count += len(batch)
        for a in batch:
            self.kinds[a.kind] = self.kinds.get(a.kind, 0) + 1
        xyz = np.array([(a.longitude, a.latitude, a.ellipsoidal_height) for a in batch])
        self._lo = np.minimum(self._lo, xyz.min(axis=0))
        self._hi = np.maximum(self._hi, xyz.max(axis=0))

    def summary(self) -> AnchorSummary:
        bbox = [*self._lo.tolist(), *self._hi.tolist()] if self.count else None
        return AnchorSummary(self.count, {k: self.kinds.get(k, 0) for k in KINDS}, bbox)

    def close(self, skipped: list[dict[str, str]]) -> AnchorSummary:
        """End the files with ``skipped`` (anchor or place, and why); write the summary and the schema."""
        self._json.write(b'],"skipped":' + orjson.dumps(skipped) + b"}")
        self._geojson.write(b"]}")
        self._abandon()
        summary = self.summary()
        dump_json(self.folder / SUMMARY, summary)
        (self.folder / "anchors.schema.json").write_bytes(schema_path().read_bytes())
        return summary

    def _abandon(self) -> None:
        self._files.close()

    def __enter__(self) -> AnchorWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self._abandon()


def read_summary(folder: Path) -> AnchorSummary:
    """The anchors stage's (or a bundle's ``anchors/``) ``summary.json``."""
    return AnchorSummary(**load_json(Path(folder) / SUMMARY))


def read_anchors(path: Path) -> AnchorSet:
    """An anchors.json of format 2.0, or of format 1.0 upgraded (kind ``poi`` becomes ``terrain``)."""
    doc = load_json(Path(path))
    version = doc.get("schema_version")
    if version == "1.0":
        anchors = []
        for a in doc["anchors"]:
            a = dict(a, kind="terrain" if a["kind"] == "poi" else a["kind"])
            anchors.append(Anchor.from_json(a))
        return AnchorSet(doc["site"], None, doc["geoid_grid"], "orthometric", doc.get("accuracy", {}), anchors,
                         format_version="1.0")
    if version != FORMAT_VERSION:
        raise ValueError(f"{path}: anchors format {version!r} is not 1.0 or {FORMAT_VERSION}")
    return AnchorSet(doc["site"], GeoidInfo(**doc["geoid"]) if doc.get("geoid") else None, doc["geoid_grid"],
                     doc["input_heights"], doc["accuracy"], [Anchor.from_json(a) for a in doc["anchors"]],
                     doc.get("skipped", []))
