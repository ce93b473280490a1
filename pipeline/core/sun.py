"""The sun seen from the site: solar positions on a clock (true solar time or KST) by NREL's SPA.

pvlib's implementation of the Solar Position Algorithm (Reda & Andreas 2004, ±0.0003°) gives the
topocentric azimuth and the refraction-corrected (apparent) elevation: light arrives along the
apparent direction, so that is the one shadows follow. Korean sunlight assessments count hours in
true solar time (진태양시: the clock on which the sun crosses the meridian at 12:00; in Seoul 32.4
minutes behind KST by longitude, less the equation of time: 30.8 minutes on the winter solstice);
``time_basis`` chooses it or KST (UTC+9).

Times on the clock are minutes after local midnight. A day's samples sit at the middle of each
``step_min`` interval, so ``n`` lit samples are exactly ``n * step_min`` minutes of sun and a
window [08:00, 16:00) holds whole steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Literal

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

# pvlib and pandas are imported in the functions that use them: together ~100 MB and 0.3 s in
# every process that imports this module, which includes each pipeline worker (the runner
# preloads every selected stage's module), though only the analysis stage's main process asks
# for the sun

TimeBasis = Literal["true_solar", "kst"]

KST = timezone(timedelta(hours=9), "KST")
TIME_BASIS_NAMES = {"true_solar": "true solar time (진태양시)", "kst": "Korea Standard Time (KST, UTC+9)"}


def winter_solstice(year: int) -> datetime:
    """The instant (UTC, to the second) the sun's apparent longitude reaches 270° in ``year``, by
    SPA's apparent-longitude series (the same theory as the positions)."""
    start = datetime(year, 12, 18, tzinfo=timezone.utc)
    seconds = np.arange(0.0, 7 * 86400.0 + 1, 60.0)
    lam = _apparent_longitude(start.timestamp() + seconds, year)
    i = int(np.flatnonzero((lam[:-1] < 270.0) & (lam[1:] >= 270.0))[0])
    # the longitude moves 0.0007° per minute, evenly: linear within a minute is far below a second
    s = seconds[i] + 60.0 * (270.0 - lam[i]) / (lam[i + 1] - lam[i])
    return start + timedelta(seconds=round(float(s)))


def _apparent_longitude(unixtime: np.ndarray, year: int) -> np.ndarray:
    """The sun's apparent geocentric longitude (degrees, 0-360) at POSIX times, by SPA."""
    from pvlib import spa

    jd = spa.julian_day(unixtime)
    jce = spa.julian_ephemeris_century(spa.julian_ephemeris_day(jd, spa.calculate_deltat(year, 12)))
    jme = spa.julian_ephemeris_millennium(jce)
    theta = spa.geocentric_longitude(spa.heliocentric_longitude(jme))
    nutation = np.empty((2, len(jce)))
    spa.longitude_obliquity_nutation(jce, spa.mean_elongation(jce), spa.mean_anomaly_sun(jce),
                                     spa.mean_anomaly_moon(jce), spa.moon_argument_latitude(jce),
                                     spa.moon_ascending_longitude(jce), nutation)
    lam = spa.apparent_sun_longitude(theta, nutation[0], spa.aberration_correction(spa.heliocentric_radius_vector(jme)))
    return np.asarray(lam) % 360.0


def solstice_date(year: int) -> date:
    """The date of the winter solstice in Korea (KST), as Korean tables give it."""
    return winter_solstice(year).astimezone(KST).date()


@dataclass(frozen=True)
class SunTable:
    """The sun at each sample of one day: clock minutes after midnight on ``basis``, UTC instants,
    topocentric azimuth (degrees clockwise from true north), apparent elevation (degrees, with
    refraction) and the equation of time (minutes: true solar minus mean solar time)."""

    day: date
    basis: TimeBasis
    step_min: float
    clock_min: np.ndarray
    utc: np.ndarray
    azimuth_deg: np.ndarray
    elevation_deg: np.ndarray
    equation_of_time_min: np.ndarray

    def directions_enu(self) -> np.ndarray:
        """Unit vectors (T, 3) towards the sun in the site's ENU frame (east, north, up)."""
        az, el = np.radians(self.azimuth_deg), np.radians(self.elevation_deg)
        return np.column_stack([np.sin(az) * np.cos(el), np.cos(az) * np.cos(el), np.sin(el)])

    def shading_directions(self) -> np.ndarray:
        """:meth:`directions_enu` with zero rows for steps when the sun is below the horizon: what
        :func:`pipeline.core.shading.lit_matrix` takes (a zero direction lights nothing)."""
        return self.directions_enu() * self.above_horizon[:, None]

    @property
    def above_horizon(self) -> np.ndarray:
        """Whether the sun's centre is above the horizon (apparent elevation > 0)."""
        return self.elevation_deg > 0.0

    def in_window(self, start_h: float, end_h: float) -> np.ndarray:
        """Samples whose interval lies in [start_h, end_h) hours on the table's clock."""
        return (self.clock_min >= start_h * 60.0) & (self.clock_min < end_h * 60.0)

    def clock_text(self, i: int) -> str:
        m = float(self.clock_min[i])
        return f"{int(m // 60):02d}:{m % 60:04.1f}"


def _positions(utc: pd.DatetimeIndex, lat: float, lon: float, altitude_m: float) -> pd.DataFrame:
    import pvlib

    return pvlib.solarposition.get_solarposition(utc, lat, lon, altitude=altitude_m, method="nrel_numpy")


def sun_table(day: date, lat: float, lon: float, *, basis: TimeBasis = "true_solar", start_h: float = 8.0,
              end_h: float = 16.0, step_min: float = 1.0, altitude_m: float = 0.0) -> SunTable:
    """Solar positions at the middle of every ``step_min`` interval of [start_h, end_h) on ``day``,
    the clock being ``basis``; site latitude and longitude in degrees (WGS84), altitude in metres.

    True solar time is UTC + longitude/15 h + the equation of time; the instant of a true-solar
    clock reading is found by fixed-point iteration on the equation of time (it changes by
    under a second per hour, so two rounds agree to well below a millisecond)."""
    import pandas as pd

    clock = np.arange(start_h * 60.0 + step_min / 2, end_h * 60.0, step_min)
    midnight = pd.Timestamp(day).tz_localize("UTC")
    if basis == "kst":
        utc = midnight + pd.to_timedelta(clock - 9 * 60.0, unit="min")
        pos = _positions(pd.DatetimeIndex(utc), lat, lon, altitude_m)
    elif basis == "true_solar":
        mean_solar = midnight + pd.to_timedelta(clock - lon * 4.0, unit="min")
        eot = np.zeros(len(clock))
        for _ in range(3):
            utc = pd.DatetimeIndex(mean_solar - pd.to_timedelta(eot, unit="min"))
            pos = _positions(utc, lat, lon, altitude_m)
            eot = pos["equation_of_time"].to_numpy()
    else:
        raise ValueError(f"unknown time basis {basis!r}")
    return SunTable(day, basis, float(step_min), clock, utc.tz_convert(None).to_numpy(),
                    pos["azimuth"].to_numpy(np.float64),
                    pos["apparent_elevation"].to_numpy(np.float64), pos["equation_of_time"].to_numpy(np.float64))
