"""Solar positions (pipeline/core/sun.py) against the NOAA Solar Calculator's formulas and
published solstice instants, for Seoul."""

from __future__ import annotations

from datetime import date, datetime, timezone

import numpy as np
import pytest

from pipeline.core.sun import solstice_date, sun_table, winter_solstice
from tests.sun_reference import noaa_day, noaa_sun, usno_azimuth_deg

LAT, LON = 37.5770, 126.8898  # the sample's site origin (Sangam DMC)


@pytest.mark.parametrize(("year", "published"), [
    # the December solstice as almanacs publish it (UTC, to the minute)
    (2024, datetime(2024, 12, 21, 9, 20, tzinfo=timezone.utc)),
    (2025, datetime(2025, 12, 21, 15, 3, tzinfo=timezone.utc)),
    (2026, datetime(2026, 12, 21, 20, 50, tzinfo=timezone.utc)),
])
def test_the_winter_solstice_falls_when_almanacs_say(year, published):
    assert abs((winter_solstice(year) - published).total_seconds()) <= 60


def test_the_solstice_date_is_the_korean_one():
    # 2026's solstice is 21 December in UTC but 22 December in Korea (05:50 KST)
    assert solstice_date(2026) == date(2026, 12, 22)
    assert solstice_date(2025) == date(2025, 12, 22)  # 00:03 KST
    assert solstice_date(2024) == date(2024, 12, 21)


def _crossing(clock: np.ndarray, values: np.ndarray, level: float) -> float:
    """Clock minute at which ``values`` first crosses ``level`` (linear between samples)."""
    above = values > level
    i = int(np.flatnonzero(above[1:] != above[:-1])[0])
    return float(np.interp(level, sorted(values[i:i + 2]),
                           clock[i:i + 2] if values[i] < values[i + 1] else clock[i:i + 2][::-1]))


def test_sunrise_noon_and_sunset_in_seoul_on_the_solstice_agree_with_noaa():
    """On Seoul's solstice, on KST: sunrise and sunset (upper limb on the horizon) within a
    minute, the noon elevation within 0.1 degree, of the NOAA calculator's."""
    day = solstice_date(2026)
    ref = noaa_day(day, LAT, LON, 9)
    morning = sun_table(day, LAT, LON, basis="kst", start_h=7, end_h=8.5, step_min=0.1)
    evening = sun_table(day, LAT, LON, basis="kst", start_h=16.5, end_h=18, step_min=0.1)
    # SPA's apparent elevation includes 0.5667 degrees of refraction at the horizon, so the upper
    # limb (0.2667 degrees above the centre) touches it when the apparent centre is at -0.2667
    rise = _crossing(morning.clock_min, morning.elevation_deg, -0.26667)
    sets = _crossing(evening.clock_min, evening.elevation_deg, -0.26667)
    assert abs(rise - ref["sunrise"]) < 1.0, (rise, ref["sunrise"])
    assert abs(sets - ref["sunset"]) < 1.0, (sets, ref["sunset"])
    noon = sun_table(day, LAT, LON, basis="kst", start_h=12, end_h=13, step_min=0.1)
    i = int(np.argmax(noon.elevation_deg))
    assert abs(noon.clock_min[i] - ref["noon"]) < 1.0
    assert abs(noon.elevation_deg[i] - ref["noon_elevation"]) < 0.1, (noon.elevation_deg[i], ref["noon_elevation"])
    assert 7 * 60 + 40 < rise < 7 * 60 + 48 and 17 * 60 + 14 < sets < 17 * 60 + 21  # KST, as Korean tables print


def test_true_solar_time_puts_the_sun_due_south_at_noon():
    """On the true-solar clock the sun crosses the meridian at 12:00; on KST it does so 30.8 minutes
    later on Seoul's solstice (126.89 E is 8.1 degrees, 32.4 minutes, west of KST's meridian, less
    the equation of time, +1.6 min then), by the equation of time NOAA gives."""
    day = solstice_date(2026)
    tst = sun_table(day, LAT, LON, basis="true_solar", start_h=11.5, end_h=12.5, step_min=0.5)
    at_noon = np.argmin(np.abs(tst.clock_min - 720.25))
    assert abs(tst.azimuth_deg[at_noon] - 180.0) < 0.1
    _, eot = noaa_sun(datetime(2026, 12, 22, 3, 30, tzinfo=timezone.utc))
    kst_of_tst_noon = 720.0 + (135.0 - LON) * 4 - eot
    utc = tst.utc[at_noon].astype("datetime64[s]").astype(datetime).replace(tzinfo=timezone.utc)
    kst = utc.hour * 60 + utc.minute + utc.second / 60 + 9 * 60 - 0.25  # back to 12:00 from the sample's middle
    assert abs(kst - kst_of_tst_noon) < 0.1, (kst, kst_of_tst_noon)
    assert 30.5 < kst_of_tst_noon - 720 < 31.2


def test_azimuths_through_the_day_agree_with_the_usno_formulas():
    day = solstice_date(2026)
    t = sun_table(day, LAT, LON, basis="kst", start_h=8, end_h=16, step_min=30)
    for clock, utc, az in zip(t.clock_min, t.utc, t.azimuth_deg, strict=True):
        when = utc.astype("datetime64[ms]").astype(datetime).replace(tzinfo=timezone.utc)
        assert abs(az - usno_azimuth_deg(LON, LAT, when)) < 0.05, clock


def test_samples_sit_in_the_middle_of_whole_steps():
    t = sun_table(date(2026, 12, 22), LAT, LON, start_h=8, end_h=16, step_min=1)
    assert len(t.clock_min) == 480 and t.clock_min[0] == 480.5 and t.clock_min[-1] == 959.5
    assert t.in_window(9, 15).sum() == 360
    d = t.directions_enu()
    assert np.allclose(np.linalg.norm(d, axis=1), 1.0)
    assert np.all(d[:, 1] < 0)  # the winter sun stays in the south all day
