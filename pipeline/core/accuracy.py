"""An anchor's error budget: independent 1-sigma parts combined by root sum of squares.

Each part names its source (georeferencing, mesh, geoid, survey, placement) and its horizontal
and vertical 1-sigma in metres, None where the twin cannot know it (a footprint layer's own
accuracy, a design model's placement). A part's vertical error reaches the ellipsoidal height,
the orthometric height or both: the geoid's error lands on whichever height was *derived* with
it (inputs given orthometric: h = H + N carries N's error; inputs given ellipsoidal: H = h - N
does). A combined figure is None when a part it needs is not known: a total that left out an
unknown part would claim more than the twin knows; the stated parts stay listed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

Applies = Literal["both", "ellipsoidal", "orthometric"]


@dataclass(frozen=True)
class ErrorPart:
    """One independent source of error at an anchor (1 sigma, metres; None: not known)."""

    source: str
    horizontal_m: float | None
    vertical_m: float | None
    applies_to: Applies = "both"
    note: str = ""


@dataclass(frozen=True)
class Accuracy:
    """Combined 1-sigma accuracy (m): horizontal, and vertical of the ellipsoidal and of the
    orthometric height (None when a part they need is not known), whether every part was
    stated, and the parts."""

    horizontal_m: float | None
    vertical_m: float | None
    vertical_orthometric_m: float | None
    complete: bool
    parts: list[ErrorPart] = field(default_factory=list)


def _rss(values: Sequence[float | None]) -> float | None:
    if not values or any(v is None for v in values):
        return None
    return round(math.sqrt(sum(v * v for v in values if v is not None)), 4)


def _rounded(p: ErrorPart) -> ErrorPart:
    def r(v: float | None) -> float | None:
        return None if v is None else round(float(v), 4)

    return ErrorPart(p.source, r(p.horizontal_m), r(p.vertical_m), p.applies_to, p.note)


def combine(parts: Sequence[ErrorPart]) -> Accuracy:
    """Root sum of squares of the parts, per component (independent errors)."""
    ell = [p.vertical_m for p in parts if p.applies_to != "orthometric"]
    ortho = [p.vertical_m for p in parts if p.applies_to != "ellipsoidal"]
    complete = all(p.horizontal_m is not None and p.vertical_m is not None for p in parts)
    return Accuracy(_rss([p.horizontal_m for p in parts]), _rss(ell), _rss(ortho), complete,
                    [_rounded(p) for p in parts])


def geoid_part(name: str, accuracy_m: float | None, input_heights: str) -> ErrorPart:
    """The geoid model's part: it reaches the height derived through it (``input_heights`` is
    how the inputs gave theirs, 'orthometric' or 'ellipsoidal')."""
    derived: Applies = "ellipsoidal" if input_heights == "orthometric" else "orthometric"
    return ErrorPart("geoid", 0.0, accuracy_m, derived,
                     f"{name}: its stated accuracy, on the {derived} height derived through it")
