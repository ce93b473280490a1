"""City model fixtures the tests write themselves: a few buildings (a flat roof around an inner
courtyard, a gable, an LoD1 block) as polygons with their semantic surface types, written as
CityJSON 2.0 and CityGML 2.0 in a projected CRS (orthometric z)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np

#: (semantic type or None, rings: exterior then holes, each (n, 3) without the closing point)
Polygon3 = tuple[str | None, list[np.ndarray]]


@dataclass
class Building3:
    id: str
    attributes: dict[str, object]
    polygons: list[Polygon3]
    lod: int = 2


def _walls(ring: np.ndarray, z0: float, top: np.ndarray) -> list[Polygon3]:
    """Quads (or pentagons where ``top`` holds a ridge point between two corners) along a ring
    that runs with the solid on its left: their normals point away from the solid."""
    out = []
    n = len(ring)
    for k in range(n):
        a, b = ring[k], ring[(k + 1) % n]
        out.append(("WallSurface", [np.array([[*a, z0], [*b, z0], [*b, top[(k + 1) % n]], [*a, top[k]]])]))
    return out


def _ccw(ring: np.ndarray) -> np.ndarray:
    x, y = ring[:, 0], ring[:, 1]
    area = 0.5 * np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y)
    return ring if area > 0 else ring[::-1]


def courtyard(ident: str, x0: float, y0: float, z0: float, *, size: float = 24.0, hole: float = 8.0,
              height: float = 12.0, attributes: dict[str, object] | None = None) -> Building3:
    """A flat-roofed square block around a square inner courtyard (LoD2 with semantics)."""
    outer = _ccw(np.array([[x0, y0], [x0 + size, y0], [x0 + size, y0 + size], [x0, y0 + size]]))
    c = size / 2 - hole / 2
    inner = _ccw(np.array([[x0 + c, y0 + c], [x0 + c + hole, y0 + c], [x0 + c + hole, y0 + c + hole],
                           [x0 + c, y0 + c + hole]]))[::-1]  # clockwise: the solid on its left
    top = z0 + height
    polys: list[Polygon3] = [
        ("RoofSurface", [np.column_stack([outer, np.full(4, top)]), np.column_stack([inner, np.full(4, top)])]),
        ("GroundSurface", [np.column_stack([outer, np.full(4, z0)])[::-1],
                           np.column_stack([inner, np.full(4, z0)])[::-1]]),
    ]
    polys += _walls(outer, z0, np.full(4, top)) + _walls(inner, z0, np.full(4, top))
    return Building3(ident, attributes or {}, polys)


def gable(ident: str, x0: float, y0: float, z0: float, *, width: float = 10.0, length: float = 20.0,
          eave: float = 8.0, ridge: float = 12.0, attributes: dict[str, object] | None = None) -> Building3:
    """A gabled house, ridge along y (LoD2 with semantics)."""
    xm, x1, y1 = x0 + width / 2, x0 + width, y0 + length
    e, r = z0 + eave, z0 + ridge
    ground = np.array([[x0, y0, z0], [x0, y1, z0], [x1, y1, z0], [x1, y0, z0]])  # clockwise from above
    polys: list[Polygon3] = [
        ("GroundSurface", [ground]),
        ("RoofSurface", [np.array([[x0, y0, e], [xm, y0, r], [xm, y1, r], [x0, y1, e]])[::-1]]),
        ("RoofSurface", [np.array([[x1, y0, e], [x1, y1, e], [xm, y1, r], [xm, y0, r]])[::-1]]),
        ("WallSurface", [np.array([[x0, y0, z0], [x1, y0, z0], [x1, y0, e], [xm, y0, r], [x0, y0, e]])]),
        ("WallSurface", [np.array([[x1, y0, z0], [x1, y1, z0], [x1, y1, e], [x1, y0, e]])]),
        ("WallSurface", [np.array([[x1, y1, z0], [x0, y1, z0], [x0, y1, e], [xm, y1, r], [x1, y1, e]])]),
        ("WallSurface", [np.array([[x0, y1, z0], [x0, y0, z0], [x0, y0, e], [x0, y1, e]])]),
    ]
    return Building3(ident, attributes or {}, _outward(polys, np.array([xm, y0 + length / 2, z0 + eave / 2])))


def block(ident: str, x0: float, y0: float, z0: float, *, size: float = 15.0, height: float = 20.0,
          attributes: dict[str, object] | None = None) -> Building3:
    """An LoD1 block without semantic surfaces."""
    ring = _ccw(np.array([[x0, y0], [x0 + size, y0], [x0 + size, y0 + size], [x0, y0 + size]]))
    polys: list[Polygon3] = [(None, [np.column_stack([ring, np.full(4, z0 + height)])]),
                             (None, [np.column_stack([ring, np.full(4, z0)])[::-1]])]
    polys += [(None, rings) for _, rings in _walls(ring, z0, np.full(4, z0 + height))]
    return Building3(ident, attributes or {}, polys, lod=1)


def _normal(ring: np.ndarray) -> np.ndarray:
    q = np.roll(ring, -1, axis=0)
    return np.array([np.sum((ring[:, 1] - q[:, 1]) * (ring[:, 2] + q[:, 2])),
                     np.sum((ring[:, 2] - q[:, 2]) * (ring[:, 0] + q[:, 0])),
                     np.sum((ring[:, 0] - q[:, 0]) * (ring[:, 1] + q[:, 1]))])


def _outward(polys: list[Polygon3], centre: np.ndarray) -> list[Polygon3]:
    """Convex solids: each polygon turned to face away from ``centre``."""
    out = []
    for kind, rings in polys:
        if _normal(rings[0]) @ (rings[0].mean(axis=0) - centre) < 0:
            rings = [r[::-1] for r in rings]
        out.append((kind, rings))
    return out


def write_cityjson(path: Path, buildings: list[Building3], crs: str = "https://www.opengis.net/def/crs/EPSG/0/5186",
                   *, scale: float = 0.001) -> Path:
    """CityJSON 2.0 with integer vertices (``scale``) and one Solid per building."""
    pts = np.concatenate([r for b in buildings for _, rings in b.polygons for r in rings])
    translate = np.floor(pts.min(axis=0))
    vertices: dict[tuple[int, int, int], int] = {}

    def index(p: np.ndarray) -> int:
        key = tuple(int(v) for v in np.round((p - translate) / scale))
        return vertices.setdefault(key, len(vertices))

    objects = {}
    for b in buildings:
        kinds = sorted({k for k, _ in b.polygons if k})
        shell = [[[index(p) for p in r] for r in rings] for _, rings in b.polygons]
        geom: dict[str, object] = {"type": "Solid", "lod": str(b.lod), "boundaries": [shell]}
        if kinds:
            geom["semantics"] = {"surfaces": [{"type": k} for k in kinds],
                                 "values": [[kinds.index(k) if k else None for k, _ in b.polygons]]}
        objects[b.id] = {"type": "Building", "attributes": b.attributes, "geometry": [geom]}
    doc = {"type": "CityJSON", "version": "2.0",
           "transform": {"scale": [scale] * 3, "translate": translate.tolist()},
           "metadata": {"referenceSystem": crs}, "CityObjects": objects, "vertices": [list(k) for k in vertices]}
    path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    return path


def _pos_list(ring: np.ndarray) -> str:
    closed = np.vstack([ring, ring[:1]])
    return " ".join(f"{v:.3f}" for v in closed.ravel())


def _gml_polygon(pid: str, rings: list[np.ndarray]) -> str:
    inner = "".join(f"<gml:interior><gml:LinearRing><gml:posList srsDimension=\"3\">{_pos_list(r)}</gml:posList>"
                    "</gml:LinearRing></gml:interior>" for r in rings[1:])
    return (f"<gml:Polygon gml:id=\"{pid}\"><gml:exterior><gml:LinearRing><gml:posList srsDimension=\"3\">"
            f"{_pos_list(rings[0])}</gml:posList></gml:LinearRing></gml:exterior>{inner}</gml:Polygon>")


def write_citygml(path: Path, buildings: list[Building3], srs: str = "EPSG:5186", version: str = "2.0") -> Path:
    """CityGML 2.0 (or 3.0): LoD2 buildings as thematic surfaces with an lod2Solid referring to
    them (xlink), LoD1 buildings as an lod1Solid; attributes as gml:name, bldg properties and
    generic string attributes, each in that version's encoding."""
    v3 = version == "3.0"
    pts = np.concatenate([r for b in buildings for _, rings in b.polygons for r in rings])
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    members = []
    for b in buildings:
        attrs = []
        for key, value in b.attributes.items():
            if key == "name":
                attrs.append(f"<gml:name>{escape(str(value))}</gml:name>")
            elif key in ("function", "storeysAboveGround", "storeysBelowGround", "measuredHeight"):
                attrs.append(f"<bldg:{key}>{escape(str(value))}</bldg:{key}>")
            elif v3:
                attrs.append(f"<gen:genericAttribute><gen:StringAttribute><gen:name>{escape(key)}</gen:name>"
                             f"<gen:value>{escape(str(value))}</gen:value></gen:StringAttribute></gen:genericAttribute>")
            else:
                attrs.append(f"<gen:stringAttribute name=\"{escape(key)}\"><gen:value>{escape(str(value))}"
                             "</gen:value></gen:stringAttribute>")
        attrs.sort(key=lambda a: not a.startswith("<gml:name"))
        polys = [(f"{b.id}-p{k}", kind, rings) for k, (kind, rings) in enumerate(b.polygons)]
        # 3.0 moved the LoD properties to core and the thematic surfaces to construction (con)
        lod_ns, bounded, surface_ns = ("core", "core:boundary", "con") if v3 else ("bldg", "bldg:boundedBy", "bldg")
        if b.lod == 1:
            surfaces = "".join(f"<gml:surfaceMember>{_gml_polygon(pid, rings)}</gml:surfaceMember>"
                               for pid, _, rings in polys)
            geometry = (f"<{lod_ns}:lod1Solid><gml:Solid><gml:exterior><gml:CompositeSurface>{surfaces}"
                        f"</gml:CompositeSurface></gml:exterior></gml:Solid></{lod_ns}:lod1Solid>")
        else:
            refs = "".join(f"<gml:surfaceMember xlink:href=\"#{pid}\"/>" for pid, _, _ in polys)
            geometry = (f"<{lod_ns}:lod2Solid><gml:Solid><gml:exterior><gml:CompositeSurface>{refs}"
                        f"</gml:CompositeSurface></gml:exterior></gml:Solid></{lod_ns}:lod2Solid>")
            geometry += "".join(
                f"<{bounded}><{surface_ns}:{kind}><{lod_ns}:lod2MultiSurface><gml:MultiSurface><gml:surfaceMember>"
                f"{_gml_polygon(pid, rings)}</gml:surfaceMember></gml:MultiSurface></{lod_ns}:lod2MultiSurface>"
                f"</{surface_ns}:{kind}></{bounded}>" for pid, kind, rings in polys)
        members.append(f"<core:cityObjectMember><bldg:Building gml:id=\"{b.id}\">{''.join(attrs)}{geometry}"
                       "</bldg:Building></core:cityObjectMember>")
    ns = ("xmlns:core=\"http://www.opengis.net/citygml/3.0\" "
          "xmlns:bldg=\"http://www.opengis.net/citygml/building/3.0\" "
          "xmlns:con=\"http://www.opengis.net/citygml/construction/3.0\" xmlns:gml=\"http://www.opengis.net/gml/3.2\" "
          "xmlns:gen=\"http://www.opengis.net/citygml/generics/3.0\"" if v3 else
          "xmlns:core=\"http://www.opengis.net/citygml/2.0\" "
          "xmlns:bldg=\"http://www.opengis.net/citygml/building/2.0\" "
          "xmlns:gml=\"http://www.opengis.net/gml\" xmlns:gen=\"http://www.opengis.net/citygml/generics/2.0\"")
    doc = ("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
           f"<core:CityModel {ns} xmlns:xlink=\"http://www.w3.org/1999/xlink\">"
           f"<gml:boundedBy><gml:Envelope srsName=\"{srs}\" srsDimension=\"3\">"
           f"<gml:lowerCorner>{' '.join(f'{v:.3f}' for v in lo)}</gml:lowerCorner>"
           f"<gml:upperCorner>{' '.join(f'{v:.3f}' for v in hi)}</gml:upperCorner></gml:Envelope></gml:boundedBy>"
           + "".join(members) + "</core:CityModel>")
    path.write_text(doc, encoding="utf-8")
    return path
