"""Matching building outlines of two sources (a footprint layer and outlines drawn from the LiDAR):
which outlines are the same building, which conflict, which only one source has.

Outlines are matched one to one by intersection over union (IoU), the best pairs first; an
unmatched outline that still covers a real share of another source's outline (a row of houses
the LiDAR outlined as one, a building the layer split in parts) is a conflict, never a second
building on the same ground.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry


@dataclass
class OutlineMatch:
    """Pairs (index in the first source, index in the second, IoU), the second source's
    outlines in conflict (index, the first-source indices it overlaps), and the indices only one
    source has."""

    pairs: list[tuple[int, int, float]] = field(default_factory=list)
    conflicts: list[tuple[int, list[int]]] = field(default_factory=list)
    only_first: list[int] = field(default_factory=list)
    only_second: list[int] = field(default_factory=list)


def _iou(a: BaseGeometry, b: BaseGeometry) -> float:
    inter = float(shapely.area(shapely.intersection(a, b)))
    union = float(shapely.area(a) + shapely.area(b)) - inter
    return inter / union if union > 0 else 0.0


def match_outlines(first: Sequence[BaseGeometry], second: Sequence[BaseGeometry], *, min_iou: float = 0.5,
                   conflict_share: float = 0.1, given: Sequence[tuple[int, int]] = ()) -> OutlineMatch:
    """Match ``second``'s outlines to ``first``'s (plan metres, one CRS): pairs with IoU at least
    ``min_iou``, best first, each outline in at most one pair; an unpaired outline of ``second``
    whose overlap with ``first``'s outlines exceeds ``conflict_share`` of its own area (or of
    theirs) is a conflict. ``given`` pairs (first, second index: the same id in both sources)
    are pairs whatever their overlap."""
    out = OutlineMatch()
    a, b = np.asarray(first, dtype=object), np.asarray(second, dtype=object)
    taken_a, taken_b = set(), set()
    for i, j in given:
        if i not in taken_a and j not in taken_b:
            taken_a.add(i)
            taken_b.add(j)
            out.pairs.append((i, j, round(_iou(a[i], b[j]), 4)))
    if not len(a) or not len(b):
        out.only_first = [i for i in range(len(a)) if i not in taken_a]
        out.only_second = [j for j in range(len(b)) if j not in taken_b]
        return out
    tree = shapely.STRtree(a)
    jb, ia = tree.query(b, predicate="intersects")
    inter = shapely.area(shapely.intersection(a[ia], b[jb]))
    union = shapely.area(a[ia]) + shapely.area(b[jb]) - inter
    iou = np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
    for k in np.argsort(-iou, kind="stable"):
        if iou[k] < min_iou:
            break
        i, j = int(ia[k]), int(jb[k])
        if i in taken_a or j in taken_b:
            continue
        taken_a.add(i)
        taken_b.add(j)
        out.pairs.append((i, j, round(float(iou[k]), 4)))
    out.pairs.sort()
    for j in range(len(b)):
        if j in taken_b:
            continue
        mine = jb == j
        share = inter[mine] / np.maximum(np.minimum(shapely.area(a[ia[mine]]), shapely.area(b[j])), 1e-9)
        overlapped = sorted(int(i) for i, s in zip(ia[mine], share, strict=True) if s > conflict_share)
        if overlapped:
            out.conflicts.append((j, overlapped))
        else:
            out.only_second.append(j)
    out.only_first = [i for i in range(len(a)) if i not in taken_a]
    return out
