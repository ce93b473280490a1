"""Building footprints: repairing delivered ones and deriving them from building points.

Attributes: floors and height are checked to be numbers in a plausible range (text such as
"12" is read; "지상 12층", negative, huge or non-finite values are refused with the reason).

Repair (any planar CRS): z dropped, invalid rings made valid with shapely's ``make_valid``
(self-intersections split into parts), what is not a polygon discarded; what cannot be repaired
is reported with a reason, never silently lost.

From points (plan metres, e.g. ENU E/N): building-class points are clustered on an occupancy
grid (connected cells), each cluster is outlined on a finer grid turned to the cluster's
dominant direction, and the outline is regularized: edges within ``angle_tolerance`` of the
dominant direction or its normal are snapped to it and meet at right angles; other edges (a
curved stadium, a diagonal wing) keep their own direction. Only outlines whose edges mostly run
along the two directions are squared, so the data decides where right angles belong.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely
from rasterio.transform import Affine
from shapely import affinity
from shapely.geometry import Polygon
from shapely.geometry.base import BaseGeometry
from shapely.ops import polylabel

# scipy.ndimage is imported in the functions that use it: it costs about 0.2 s in every process that
# imports a stage module (the run's and each worker's), and a point-cloud conversion never calls it


#: storeys above ground and height (m) no building reaches: the tallest have about 160 and 830 m
MAX_FLOORS, MAX_HEIGHT_M = 300, 1500.0


def attribute_number(value: Any, *, integer: bool, upper: float, zero_known: bool = False
                     ) -> tuple[float | None, str | None]:
    """(number, None) for a usable attribute value, (None, why not) for an unusable one, and
    (None, None) for an empty one (None, "", and 0 unless ``zero_known``: footprint layers write 0
    for "not known" heights and floors, while 0 floors below ground is a count).

    Numbers given as text are read ("12", "12.0"); ``integer`` asks for a whole number in
    1..``upper`` (0..``upper`` when ``zero_known``), otherwise the value must be in (0, ``upper``].
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return None, None
    if isinstance(value, bool):
        return None, f"{value!r} is not a number"
    try:
        x = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        return None, f"{value!r} is not a number"
    if x == 0:
        return (0.0, None) if zero_known else (None, None)
    if not math.isfinite(x) or x < 0 or x > upper:
        return None, f"{value!r} is outside 0..{upper:g}"
    if integer:
        if x != round(x):
            return None, f"{value!r} is not a whole number"
    return x, None


@dataclass
class Repaired:
    """The polygons of a footprint after repair, or why there are none."""

    polygons: list[Polygon]
    note: str | None = None     # what was repaired (None: nothing)
    reason: str | None = None   # why nothing is left (polygons empty)


#: a footprint with more vertices than this is over-digitised (traced from a raster, densified
#: by a CAD export): it is simplified within :data:`SIMPLIFY_M`, so meshing stays fast
MAX_FOOTPRINT_VERTICES = 5000
SIMPLIFY_M = 0.01


def repair(geom: BaseGeometry | None, unit_m: float = 1.0) -> Repaired:
    """Valid polygon parts of a footprint (2-D, any CRS whose x and y are ``unit_m`` metres per
    unit; for degrees pass about 111,000)."""
    if geom is None or shapely.is_empty(geom):
        return Repaired([], reason="empty geometry")
    if geom.geom_type not in ("Polygon", "MultiPolygon"):
        return Repaired([], reason=f"{geom.geom_type} is not a polygon")
    # only x, y matter: a NaN z (3-D footprints from CAD exports) is dropped with the z
    if not np.all(np.isfinite(shapely.get_coordinates(geom))):
        return Repaired([], reason="non-finite x/y coordinates")
    geom = shapely.force_2d(geom)
    note = None
    vertices = shapely.get_num_coordinates(geom)
    if vertices > MAX_FOOTPRINT_VERTICES:
        geom = shapely.simplify(geom, SIMPLIFY_M / unit_m, preserve_topology=True)
        note = (f"simplified from {vertices:,} to {shapely.get_num_coordinates(geom):,} vertices within "
                f"{SIMPLIFY_M * 100:g} cm")
    if not geom.is_valid:
        note = ", ".join(filter(None, [note, f"made valid ({shapely.is_valid_reason(geom)})"]))
        geom = shapely.make_valid(geom)
    polys = [p for p in shapely.get_parts(geom) if p.geom_type == "Polygon" and p.area > 0]
    polys += [q for p in shapely.get_parts(geom) if p.geom_type == "MultiPolygon"
              for q in p.geoms if q.area > 0]
    if not polys:
        return Repaired([], note=note, reason="zero area")
    return Repaired(polys, note=note)


def dominant_direction(poly: Polygon) -> float:
    """Direction (degrees in [0, 90)) that most of the outline's length runs along or across.

    Length-weighted histogram of edge directions modulo 90 degrees (1-degree bins, circular),
    refined by the weighted mean within 5 degrees of its peak.
    """
    rings = [np.asarray(poly.exterior.coords)] + [np.asarray(r.coords) for r in poly.interiors]
    d = np.concatenate([np.diff(r, axis=0) for r in rings])
    length = np.hypot(d[:, 0], d[:, 1])
    ang = np.degrees(np.arctan2(d[:, 1], d[:, 0])) % 90.0
    hist = np.bincount(np.floor(ang).astype(int) % 90, weights=length, minlength=90)
    smooth = sum(np.roll(hist, k) for k in (-2, -1, 0, 1, 2))
    peak = float(np.argmax(smooth)) + 0.5
    off = (ang - peak + 45.0) % 90.0 - 45.0
    near = np.abs(off) <= 5.0
    if not near.any():
        return peak % 90.0
    return float((peak + np.average(off[near], weights=length[near])) % 90.0)


def _raster_outline(u: np.ndarray, v: np.ndarray, cell: float, min_hole: float) -> Polygon | None:
    """Outline of points u, v (m) on a ``cell`` grid: occupied cells, gaps between points closed,
    holes smaller than ``min_hole`` m^2 filled; the largest polygon (with its courtyards)."""
    from scipy import ndimage
    u0, v0 = u.min() - 2 * cell, v.min() - 2 * cell
    cols = int(np.ceil((u.max() - u0) / cell)) + 3
    rows = int(np.ceil((v.max() - v0) / cell)) + 3
    occ = np.zeros((rows, cols), bool)
    occ[((v - v0) / cell).astype(int), ((u - u0) / cell).astype(int)] = True
    occ = ndimage.binary_closing(occ, structure=np.ones((3, 3)), iterations=1)
    filled = ndimage.binary_fill_holes(occ)
    holes, n = ndimage.label(filled & ~occ)
    if n:
        sizes = ndimage.sum(np.ones_like(holes), holes, index=np.arange(1, n + 1)) * cell * cell
        small = np.flatnonzero(sizes < min_hole) + 1
        occ |= np.isin(holes, small)
    occ = ndimage.binary_opening(occ, structure=np.ones((2, 2)))
    # imported here: rasterio.features is needed only when outlines are traced from points
    from rasterio import features

    transform = Affine(cell, 0, u0, 0, cell, v0)
    polys = [shapely.geometry.shape(g) for g, val in features.shapes(occ.astype(np.uint8), mask=occ,
                                                                     transform=transform) if val]
    if not polys:
        return None
    return max(polys, key=lambda p: p.area)


def _snap_ring(coords: np.ndarray, angle_tolerance: float) -> np.ndarray | None:
    """Regularize one closed ring (k+1, 2) in a frame whose axes are the dominant directions:
    axis-near edges become exactly axis-parallel lines at their length-weighted mean offset,
    consecutive parallel lines merge, corners are the intersections of consecutive lines."""
    p = coords[:-1]
    q = np.roll(p, -1, axis=0)
    d = q - p
    length = np.hypot(d[:, 0], d[:, 1])
    ang = np.degrees(np.arctan2(d[:, 1], d[:, 0])) % 180.0
    kind = np.full(len(p), "f")
    kind[(ang < angle_tolerance) | (ang > 180 - angle_tolerance)] = "h"
    kind[np.abs(ang - 90.0) < angle_tolerance] = "v"
    lines: list[tuple[str, float, np.ndarray, np.ndarray, float]] = []
    for i in range(len(p)):
        off = (p[i, 1] + q[i, 1]) / 2 if kind[i] == "h" else (p[i, 0] + q[i, 0]) / 2
        if lines and kind[i] != "f" and lines[-1][0] == kind[i]:
            k, o, a, _, w = lines[-1]
            lines[-1] = (k, (o * w + off * length[i]) / (w + length[i]), a, q[i], w + length[i])
        else:
            lines.append((str(kind[i]), float(off), p[i], q[i], float(length[i])))
    if len(lines) > 1 and lines[0][0] == lines[-1][0] and lines[0][0] != "f":
        k, o0, a0, b0, w0 = lines[0]
        _, o1, a1, _, w1 = lines.pop()
        lines[0] = (k, (o0 * w0 + o1 * w1) / (w0 + w1), a1, b0, w0 + w1)
    if len(lines) < 3:
        return None

    def as_line(line: tuple[str, float, np.ndarray, np.ndarray, float]) -> tuple[np.ndarray, np.ndarray]:
        k, off, a, b, _ = line
        if k == "h":
            return np.array([0.0, off]), np.array([1.0, 0.0])
        if k == "v":
            return np.array([off, 0.0]), np.array([0.0, 1.0])
        return a, (b - a) / max(float(np.hypot(*(b - a))), 1e-12)

    out = []
    for i in range(len(lines)):
        (p1, d1), (p2, d2) = as_line(lines[i - 1]), as_line(lines[i])
        det = d1[0] * (-d2[1]) - d1[1] * (-d2[0])
        if abs(det) < 1e-6:  # two almost collinear free edges: keep the vertex between them
            out.append(lines[i][2])
            continue
        t = ((p2[0] - p1[0]) * (-d2[1]) - (p2[1] - p1[1]) * (-d2[0])) / det
        out.append(p1 + t * d1)
    ring = np.asarray(out)
    return np.vstack([ring, ring[:1]])


def regularize(poly: Polygon, direction: float, *, tolerance: float, angle_tolerance: float = 15.0,
               min_share: float = 0.7) -> tuple[Polygon, bool]:
    """(regularized outline, whether it was squared) of a plan outline (metres).

    The outline is simplified (Douglas-Peucker, ``tolerance`` m) in a frame turned by
    ``direction``; when at least ``min_share`` of its length runs within ``angle_tolerance``
    degrees of the frame's axes its edges are snapped (see :func:`_snap_ring`), otherwise the
    simplified outline is returned as it is.
    """
    turned = affinity.rotate(poly, -direction, origin=(0, 0))
    simple = shapely.simplify(turned, tolerance, preserve_topology=True)
    if simple.geom_type != "Polygon" or simple.is_empty:
        return poly, False
    rings = [np.asarray(simple.exterior.coords)] + [np.asarray(r.coords) for r in simple.interiors]
    d = np.concatenate([np.diff(r, axis=0) for r in rings])
    length = np.hypot(d[:, 0], d[:, 1])
    ang = np.degrees(np.arctan2(d[:, 1], d[:, 0])) % 90.0
    along = np.minimum(ang, 90.0 - ang) < angle_tolerance
    if length[along].sum() < min_share * length.sum():
        return affinity.rotate(simple, direction, origin=(0, 0)), False
    snapped = [_snap_ring(r, angle_tolerance) for r in rings]
    if snapped[0] is None:
        return affinity.rotate(simple, direction, origin=(0, 0)), False
    square = Polygon(snapped[0], [h for h in snapped[1:] if h is not None])
    # snapping must not change the outline's meaning: anything odd keeps the simplified outline
    if (not square.is_valid or abs(square.area - simple.area) > 0.1 * simple.area
            or square.symmetric_difference(simple).area > 0.2 * simple.area):
        return affinity.rotate(simple, direction, origin=(0, 0)), False
    return affinity.rotate(square, direction, origin=(0, 0)), True


@dataclass
class DerivedFootprint:
    """A footprint outlined from building points (plan metres)."""

    polygon: Polygon
    points: int          # building points in its cluster
    squared: bool        # whether right angles were imposed


def footprints_from_points(e: np.ndarray, n: np.ndarray, *, cluster_cell: float = 1.0,
                           outline_cell: float = 0.5, min_area: float = 20.0, tolerance: float = 0.75,
                           angle_tolerance: float = 15.0) -> tuple[list[DerivedFootprint], int]:
    """Footprints of building-class points at plan ``e, n`` (m); returns them (largest first) and
    the number of clusters dropped as smaller than ``min_area`` m^2.

    Clusters: 8-connected cells of a ``cluster_cell`` occupancy grid after closing one-cell gaps,
    so roofs separated by a street are separate buildings and touching ones are one. The outline
    comes from an ``outline_cell`` grid turned to the cluster's dominant direction; it is moved
    in by half the difference between that cell and the mean point spacing, the bias of taking
    occupied cells for the roof's extent.
    """
    from scipy import ndimage
    if len(e) == 0:
        return [], 0
    e0, n0 = e.min() - cluster_cell, n.min() - cluster_cell
    cols = int(np.ceil((e.max() - e0) / cluster_cell)) + 2
    rows = int(np.ceil((n.max() - n0) / cluster_cell)) + 2
    ci = ((e - e0) / cluster_cell).astype(np.int64)
    ri = ((n - n0) / cluster_cell).astype(np.int64)
    occ = np.zeros((rows, cols), bool)
    occ[ri, ci] = True
    occ = ndimage.binary_closing(occ, structure=np.ones((3, 3)))
    labels, count = ndimage.label(occ, structure=np.ones((3, 3)))
    point_label = labels[ri, ci]
    order = np.argsort(point_label, kind="stable")
    bounds = np.searchsorted(point_label[order], np.arange(count + 2))
    out, dropped = [], 0
    for lab in range(1, count + 1):
        idx = order[bounds[lab]:bounds[lab + 1]]
        if len(idx) < 3:
            dropped += 1
            continue
        pe, pn = e[idx], n[idx]
        ce, cn = float(pe.mean()), float(pn.mean())
        first = _raster_outline(pe - ce, pn - cn, outline_cell, min_hole=min_area)
        if first is None or first.area < min_area:
            dropped += 1
            continue
        direction = dominant_direction(shapely.simplify(first, tolerance))
        r = np.radians(direction)
        u = (pe - ce) * np.cos(r) + (pn - cn) * np.sin(r)
        v = -(pe - ce) * np.sin(r) + (pn - cn) * np.cos(r)
        turned = _raster_outline(u, v, outline_cell, min_hole=min_area)
        if turned is None:
            dropped += 1
            continue
        spacing = float(np.sqrt(turned.area / len(idx)))
        turned = turned.buffer(-max(outline_cell - spacing, 0.0) / 2, join_style="mitre")
        if turned.is_empty or turned.area < min_area:
            dropped += 1
            continue
        if turned.geom_type == "MultiPolygon":
            turned = max(turned.geoms, key=lambda g: g.area)
        poly, squared = regularize(turned, 0.0, tolerance=tolerance, angle_tolerance=angle_tolerance)
        poly = affinity.translate(affinity.rotate(poly, direction, origin=(0, 0)), ce, cn)
        out.append(DerivedFootprint(shapely.normalize(poly), int(len(idx)), squared))
    out.sort(key=lambda f: -f.polygon.area)
    return out, dropped



def visual_centre(poly: Polygon, *, tolerance: float = 0.05) -> tuple[float, float]:
    """Where a label or an anchor of a footprint belongs (plan metres): its centroid when that
    lies inside, at least half as far from the edges as the pole of inaccessibility (the point
    farthest from every edge, found by polylabel); otherwise the pole. An L-shaped or courtyard
    footprint's centroid can fall outside the building or on its narrow wing."""
    pole = polylabel(poly, tolerance=tolerance)
    c = poly.centroid
    edges = poly.boundary
    if poly.contains(c) and edges.distance(c) >= 0.5 * edges.distance(pole):
        return float(c.x), float(c.y)
    return float(pole.x), float(pole.y)


def position_id(prefix: str, x: float, y: float, step: float) -> str:
    """An id that follows a building's position rather than its row: ``prefix`` and 10 hex
    digits of the hash of (x, y) snapped to ``step`` (in x's and y's units). A layer without ids
    keeps the same id for the same building when other rows are added, removed or reordered."""
    key = f"{round(x / step)}:{round(y / step)}".encode()
    return prefix + hashlib.sha256(key).hexdigest()[:10]
