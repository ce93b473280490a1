"""ASPRS classes from height above ground and local geometry (metres, ENU).

Ground is what lies within ``ground_threshold`` of the ground surface. Above it, low and medium
vegetation are told apart by height; above ``high_object`` a point is a building when its
neighbourhood is a smooth surface (roofs and walls: low surface variation) and it is a single
echo; rough or multi-echo returns are high vegetation.
"""

from __future__ import annotations

import numpy as np

UNCLASSIFIED_CODES = (0, 1)
GROUND, LOW_VEGETATION, MEDIUM_VEGETATION, HIGH_VEGETATION, BUILDING = 2, 3, 4, 5, 6
#: height above ground (m) over which local geometry tells buildings from high vegetation
HIGH_OBJECT = 2.0


def may_need_geometry(number_of_returns: np.ndarray, existing: np.ndarray, *, reclassify: bool = False
                      ) -> np.ndarray:
    """Points whose class may depend on their surface variation, before heights are known: single
    echoes that are to be classified. Everything else is decided without a neighbourhood."""
    single = number_of_returns <= 1
    return single if reclassify else single & np.isin(existing, UNCLASSIFIED_CODES)


def needs_geometry(hag: np.ndarray, number_of_returns: np.ndarray, existing: np.ndarray, *,
                   high_object: float = HIGH_OBJECT, reclassify: bool = False) -> np.ndarray:
    """Points (height above ground ``hag``, m) whose class :func:`classify_points` reads from their
    surface variation: single echoes above ``high_object`` that are to be classified."""
    return (hag > high_object) & may_need_geometry(number_of_returns, existing, reclassify=reclassify)


def classify_points(hag: np.ndarray, surface_variation: np.ndarray, number_of_returns: np.ndarray,
                    existing: np.ndarray, *, ground_threshold: float, high_object: float = HIGH_OBJECT,
                    low_vegetation: float = 0.5, max_roughness: float = 0.05,
                    reclassify: bool = False) -> np.ndarray:
    """Classes (uint8) of points with height above ground ``hag`` (m).

    Points that already carry a class other than 0 (never classified) or 1 (unclassified) keep
    it unless ``reclassify``. ``surface_variation`` is read only where :func:`needs_geometry`
    holds (with the same ``high_object`` and ``reclassify``); elsewhere it may be anything.
    """
    cls = np.full(len(hag), MEDIUM_VEGETATION, np.uint8)
    cls[hag <= low_vegetation] = LOW_VEGETATION
    cls[hag <= ground_threshold] = GROUND
    high = hag > high_object
    smooth = surface_variation[high] <= max_roughness
    single = number_of_returns[high] <= 1
    cls[high] = np.where(smooth & single, BUILDING, HIGH_VEGETATION)
    if not reclassify:
        keep = ~np.isin(existing, UNCLASSIFIED_CODES)
        cls[keep] = existing[keep]
    return cls
