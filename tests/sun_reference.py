"""Independent sun positions for the tests: the NOAA Solar Calculator's formulas (after Meeus,
Astronomical Algorithms) and the US Naval Observatory's low-precision formulas, written out
here so that nothing is shared with pvlib or CesiumJS."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import numpy as np


def _julian_century(utc: datetime) -> float:
    jd = (utc - datetime(2000, 1, 1, 12, tzinfo=timezone.utc)).total_seconds() / 86400.0 + 2451545.0
    return (jd - 2451545.0) / 36525.0


def noaa_sun(utc: datetime) -> tuple[float, float]:
    """(declination in degrees, equation of time in minutes) by the NOAA Solar Calculator."""
    jc = _julian_century(utc)
    l0 = (280.46646 + jc * (36000.76983 + jc * 0.0003032)) % 360
    m = 357.52911 + jc * (35999.05029 - 0.0001537 * jc)
    e = 0.016708634 - jc * (0.000042037 + 0.0000001267 * jc)
    mr = np.radians(m)
    c = (np.sin(mr) * (1.914602 - jc * (0.004817 + 0.000014 * jc)) + np.sin(2 * mr) * (0.019993 - 0.000101 * jc)
         + np.sin(3 * mr) * 0.000289)
    omega = np.radians(125.04 - 1934.136 * jc)
    lam = np.radians(l0 + c - 0.00569 - 0.00478 * np.sin(omega))
    eps0 = 23 + (26 + (21.448 - jc * (46.815 + jc * (0.00059 - jc * 0.001813))) / 60) / 60
    eps = np.radians(eps0 + 0.00256 * np.cos(omega))
    decl = np.degrees(np.arcsin(np.sin(eps) * np.sin(lam)))
    y = np.tan(eps / 2) ** 2
    l0r = np.radians(l0)
    eot = 4 * np.degrees(y * np.sin(2 * l0r) - 2 * e * np.sin(mr) + 4 * e * y * np.sin(mr) * np.cos(2 * l0r)
                         - 0.5 * y * y * np.sin(4 * l0r) - 1.25 * e * e * np.sin(2 * mr))
    return float(decl), float(eot)


def noaa_day(day: date, lat: float, lon: float, tz_hours: float) -> dict[str, float]:
    """Sunrise, solar noon and sunset (minutes after local midnight on the ``tz_hours`` clock;
    rise and set: the sun's centre 0.833° below the horizon, refraction and semi-diameter) and the
    noon elevation (degrees, with NOAA's refraction), iterating each event on its own instant."""
    out = {}
    noon = 720.0 - 4 * lon + tz_hours * 60
    for _ in range(3):
        decl, eot = noaa_sun(datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
                             + timedelta(minutes=noon - tz_hours * 60))
        noon = 720.0 - 4 * lon - eot + tz_hours * 60
    out["noon"] = noon
    phi = np.radians(lat)
    elev = 90.0 - lat + decl
    te = np.tan(np.radians(elev))
    out["noon_elevation"] = elev + (58.1 / te - 0.07 / te ** 3 + 0.000086 / te ** 5) / 3600  # NOAA refraction
    for name, sign in (("sunrise", -1), ("sunset", 1)):
        t = noon
        for _ in range(4):
            decl, eot = noaa_sun(datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
                                 + timedelta(minutes=t - tz_hours * 60))
            d = np.radians(decl)
            ha = np.degrees(np.arccos(np.cos(np.radians(90.833)) / (np.cos(phi) * np.cos(d)) - np.tan(phi) * np.tan(d)))
            t = 720.0 - 4 * lon - eot + tz_hours * 60 + sign * 4 * ha
        out[name] = t
    return out


def usno_azimuth_deg(lon: float, lat: float, utc: datetime) -> float:
    """The sun's azimuth (degrees clockwise from north) by the US Naval Observatory's low-precision
    formulas (about 1 arcminute from 1950 to 2050)."""
    n = (utc - datetime(2000, 1, 1, 12, tzinfo=timezone.utc)).total_seconds() / 86400.0
    g, q = np.radians(357.529 + 0.98560028 * n), 280.459 + 0.98564736 * n
    ecl_lon = np.radians(q + 1.915 * np.sin(g) + 0.020 * np.sin(2 * g))
    eps = np.radians(23.439 - 0.00000036 * n)
    ra = np.arctan2(np.cos(eps) * np.sin(ecl_lon), np.cos(ecl_lon))
    dec = np.arcsin(np.sin(eps) * np.sin(ecl_lon))
    hour = np.radians((18.697374558 + 24.06570982441908 * n) * 15.0 + lon) - ra
    phi = np.radians(lat)
    return float(np.degrees(np.arctan2(-np.sin(hour), np.tan(dec) * np.cos(phi) - np.sin(phi) * np.cos(hour))) % 360)
