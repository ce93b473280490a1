"""Landmarks of Digital Media City used to anchor the synthetic sample.

Positions are approximate (about ±30 m, read off public maps), sizes and heights are plausible
stand-ins, not survey data. Each entry: name, use, lat, lon (WGS84 degrees), footprint width and
depth (m), rotation (degrees counter-clockwise from grid east), floors, height (m) or None when the
footprint file should not carry it, and an optional courtyard (inner width, depth in m).
"""

from __future__ import annotations

from typing import NamedTuple


class Landmark(NamedTuple):
    name: str
    use: str
    lat: float
    lon: float
    width: float
    depth: float
    rotation: float
    floors: int
    height: float
    courtyard: tuple[float, float] | None = None
    ellipse: bool = False


LANDMARKS: tuple[Landmark, ...] = (
    Landmark("MBC Broadcasting Center", "broadcast", 37.5812, 126.8913, 110, 55, 28, 23, 104.0),
    Landmark("SBS Prism Tower", "broadcast", 37.5797, 126.8884, 58, 42, 28, 25, 112.0),
    Landmark("YTN New Square", "broadcast", 37.5781, 126.8891, 48, 36, 28, 20, 88.0),
    Landmark("KBS Media Center", "broadcast", 37.5786, 126.8868, 60, 40, 28, 18, 79.0),
    Landmark("CJ ENM Center", "broadcast", 37.5781, 126.8923, 55, 40, 28, 17, 76.0),
    Landmark("JTBC Building", "broadcast", 37.5752, 126.8876, 52, 38, 28, 15, 66.0),
    Landmark("Nuri Dream Square Business Tower", "office", 37.5797, 126.8912, 44, 34, 28, 24, 106.0),
    Landmark("Nuri Dream Square R&D Tower", "office", 37.5791, 126.8900, 40, 30, 28, 20, 88.0),
    Landmark("한국영상자료원 Korean Film Archive", "culture", 37.5768, 126.8909, 70, 45, 28, 7, 33.0),
    Landmark("LG U+ Sangam Building", "office", 37.5806, 126.8895, 50, 40, 28, 21, 92.0),
    Landmark("DMC첨단산업센터", "office", 37.5761, 126.8893, 46, 36, 28, 17, 74.0),
    Landmark("Sangam IT Tower", "office", 37.5774, 126.8938, 45, 35, 28, 18, 78.0),
    Landmark("Seoul Business Agency", "public", 37.5759, 126.8922, 40, 32, 28, 12, 52.0),
    Landmark("DMC Station", "transport", 37.5771, 126.8995, 90, 30, 62, 3, 16.0),
    Landmark("Sangam World Cup Stadium", "stadium", 37.5683, 126.8972, 290, 235, 20, 6, 49.0,
             courtyard=(150, 100), ellipse=True),
    Landmark("World Cup Park Management Office", "public", 37.5705, 126.8870, 30, 20, 10, 3, 12.0),
)
