"""3D Tiles 1.1 implicit tiling: subtree files, availability bitstreams, template URIs and the
bounding volumes and geometric errors of implicit tiles.

A tileset with ``implicitTiling`` on a tile lists no children: the tree is a full quadtree or
octree of ``availableLevels`` levels, cut into subtrees of ``subtreeLevels`` levels, each
described by a subtree file (binary ``subt`` or JSON) whose bitstreams say which tiles, contents
and child subtrees exist, in Morton order level by level.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


class SubtreeError(ValueError):
    """A subtree file is missing, unreadable or inconsistent."""


def expand_template(template: str, level: int, x: int, y: int, z: int | None = None) -> str:
    """A template URI with ``{level}``, ``{x}``, ``{y}`` (and ``{z}``) filled in."""
    out = template.replace("{level}", str(level)).replace("{x}", str(x)).replace("{y}", str(y))
    return out.replace("{z}", str(z)) if z is not None else out


def morton_decode(index: int, dims: int) -> tuple[int, ...]:
    """Coordinates (x, y[, z]) of a Morton index (bit-interleaved, x in the lowest bit)."""
    coords = [0] * dims
    bit = 0
    while index:
        for d in range(dims):
            coords[d] |= (index & 1) << bit
            index >>= 1
        bit += 1
    return tuple(coords)


@dataclass
class Availability:
    """One availability: a constant (0 or 1) or a little-endian bitstream."""

    constant: int | None
    bits: np.ndarray | None
    available_count: int | None

    def get(self, i: int) -> bool:
        if self.bits is None:
            return bool(self.constant)
        return i < len(self.bits) and bool(self.bits[i])

    def count(self, n: int) -> int:
        return n * int(bool(self.constant)) if self.bits is None else int(self.bits[:n].sum())


@dataclass
class Subtree:
    tiles: Availability
    contents: list[Availability]
    children: Availability


def _read_subtree_doc(path: Path) -> tuple[dict[str, Any], bytes]:
    data = path.read_bytes()
    if data[:4] == b"subt":
        if len(data) < 24:
            raise SubtreeError("subtree header is truncated")
        _, version, jlen, blen = struct.unpack_from("<4sIQQ", data, 0)
        if version != 1:
            raise SubtreeError(f"subtree version {version}, expected 1")
        if 24 + jlen + blen > len(data):
            raise SubtreeError("subtree file is shorter than its header says")
        return json.loads(data[24:24 + jlen]), data[24 + jlen:24 + jlen + blen]
    return json.loads(data), b""


def read_subtree(path: Path, content_count: int) -> Subtree:
    """The availabilities of one subtree file (binary or JSON); SubtreeError when it is broken."""
    try:
        doc, binary = _read_subtree_doc(path)
    except (OSError, json.JSONDecodeError, UnicodeDecodeError, struct.error) as exc:
        raise SubtreeError(f"cannot read subtree ({exc})") from None
    buffers = []
    for b, buf in enumerate(doc.get("buffers", [])):
        if "uri" in buf:
            target = path.parent / buf["uri"]
            if not target.is_file():
                raise SubtreeError(f"buffers[{b}] {buf['uri']} does not exist")
            buffers.append(target.read_bytes())
        else:
            buffers.append(binary)
        if len(buffers[-1]) < buf.get("byteLength", 0):
            raise SubtreeError(f"buffers[{b}] is shorter than its byteLength")
    views = doc.get("bufferViews", [])

    def availability(obj: Any, name: str) -> Availability:
        if not isinstance(obj, dict):
            raise SubtreeError(f"{name} is missing")
        if "constant" in obj:
            return Availability(int(obj["constant"]), None, obj.get("availableCount"))
        try:
            view = views[obj["bitstream"]]
            raw = buffers[view["buffer"]][view.get("byteOffset", 0):view.get("byteOffset", 0) + view["byteLength"]]
        except (KeyError, IndexError, TypeError):
            raise SubtreeError(f"{name}.bitstream does not name a buffer view that exists") from None
        bits = np.unpackbits(np.frombuffer(raw, np.uint8), bitorder="little")
        return Availability(None, bits, obj.get("availableCount"))

    contents = doc.get("contentAvailability", [])
    if content_count and len(contents) != content_count:
        raise SubtreeError(f"{len(contents)} contentAvailability entries for {content_count} content(s)")
    return Subtree(availability(doc.get("tileAvailability"), "tileAvailability"),
                   [availability(c, f"contentAvailability[{i}]") for i, c in enumerate(contents)],
                   availability(doc.get("childSubtreeAvailability"), "childSubtreeAvailability"))


@dataclass(frozen=True)
class ImplicitTile:
    """An available tile: level, coordinates, which of its contents are available."""

    level: int
    coords: tuple[int, ...]
    contents: tuple[bool, ...]


def walk(root_folder: Path, tiling: dict[str, Any], content_count: int,
         problems: list[str]) -> Iterator[ImplicitTile]:
    """Every available tile of an implicit tree; problems (missing or broken subtrees,
    availability counts that disagree, content where no tile is) go to ``problems``."""
    dims = 3 if tiling.get("subdivisionScheme") == "OCTREE" else 2
    branch = 2 ** dims
    levels = int(tiling["subtreeLevels"])
    available = int(tiling["availableLevels"])
    template = tiling["subtrees"]["uri"]
    stack: list[tuple[int, tuple[int, ...]]] = [(0, (0,) * dims)]
    while stack:
        level0, origin = stack.pop()
        uri = expand_template(template, level0, *origin)
        path = root_folder / uri
        if not path.is_file():
            problems.append(f"subtree {uri} does not exist")
            continue
        try:
            sub = read_subtree(path, content_count)
        except SubtreeError as exc:
            problems.append(f"subtree {uri}: {exc}")
            continue
        depth = min(levels, available - level0)
        total = (branch ** depth - 1) // (branch - 1)
        for name, av in [("tileAvailability", sub.tiles)] + [(f"contentAvailability[{i}]", c)
                                                             for i, c in enumerate(sub.contents)]:
            if av.available_count is not None and av.bits is not None and av.count(total) != av.available_count:
                problems.append(f"subtree {uri}: {name}.availableCount is {av.available_count}, "
                                f"the bitstream has {av.count(total)}")
        index = 0
        for rel in range(depth):
            for m in range(branch ** rel):
                bit = index + m
                tile = sub.tiles.get(bit)
                cont = tuple(c.get(bit) for c in sub.contents)
                local = morton_decode(m, dims)
                coords = tuple((o << rel) + c for o, c in zip(origin, local, strict=True))
                if any(cont) and not tile:
                    problems.append(f"subtree {uri}: content available at level {level0 + rel} {coords} "
                                    "where no tile is")
                if tile:
                    yield ImplicitTile(level0 + rel, coords, cont)
            index += branch ** rel
        if level0 + levels < available:
            for m in range(branch ** levels):
                if sub.children.get(m):
                    local = morton_decode(m, dims)
                    stack.append((level0 + levels, tuple((o << levels) + c for o, c in zip(origin, local,
                                                                                             strict=True))))


def child_box(box: list[float], level: int, coords: tuple[int, ...]) -> list[float]:
    """The box of an implicit tile: the root box divided 2**level times along its first two
    half-axes (quadtree) or all three (octree, when ``coords`` has z)."""
    c = np.asarray(box[:3], np.float64)
    axes = np.asarray(box[3:], np.float64).reshape(3, 3)
    n = 2 ** level
    new_axes = axes.copy()
    for d, k in enumerate(coords):
        frac = (2 * k + 1) / n - 1  # tile centre in [-1, 1] along this half-axis
        c = c + frac * axes[d]
        new_axes[d] = axes[d] / n
    return [*c.tolist(), *new_axes.ravel().tolist()]


def child_region(region: list[float], level: int, coords: tuple[int, ...]) -> list[float]:
    """The region of an implicit tile: longitude, latitude (and height, octree) divided."""
    w, s, e, n_, lo, hi = region
    n = 2 ** level
    dx, dy = (e - w) / n, (n_ - s) / n
    x, y = coords[0], coords[1]
    out = [w + x * dx, s + y * dy, w + (x + 1) * dx, s + (y + 1) * dy, lo, hi]
    if len(coords) == 3:
        dz = (hi - lo) / n
        out[4], out[5] = lo + coords[2] * dz, lo + (coords[2] + 1) * dz
    return out
