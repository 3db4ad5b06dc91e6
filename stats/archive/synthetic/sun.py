"""The sun's position at an acquisition, which places cloud shadows and scales the path radiance."""

from __future__ import annotations

import datetime as dt
import math

from .scene import day_of_year


def sun_position(when: dt.datetime, lon: float, lat: float) -> tuple[float, float]:
    """Solar elevation and azimuth (degrees, azimuth clockwise from north), NOAA low-precision formulas.

    Accurate to a few tenths of a degree, plenty for shadow placement.
    """
    utc = when.astimezone(dt.UTC)
    hours = utc.hour + utc.minute / 60.0 + utc.second / 3600.0
    gamma = 2.0 * math.pi / 365.0 * (day_of_year(utc.date()) - 1 + (hours - 12.0) / 24.0)
    eq_time = 229.18 * (0.000075 + 0.001868 * math.cos(gamma) - 0.032077 * math.sin(gamma)
                        - 0.014615 * math.cos(2 * gamma) - 0.040849 * math.sin(2 * gamma))
    decl = (0.006918 - 0.399912 * math.cos(gamma) + 0.070257 * math.sin(gamma)
            - 0.006758 * math.cos(2 * gamma) + 0.000907 * math.sin(2 * gamma)
            - 0.002697 * math.cos(3 * gamma) + 0.00148 * math.sin(3 * gamma))
    solar_minutes = hours * 60.0 + eq_time + 4.0 * lon
    hour_angle = math.radians(solar_minutes / 4.0 - 180.0)
    phi = math.radians(lat)
    cos_zenith = math.sin(phi) * math.sin(decl) + math.cos(phi) * math.cos(decl) * math.cos(hour_angle)
    elevation = 90.0 - math.degrees(math.acos(max(-1.0, min(1.0, cos_zenith))))
    azimuth = math.degrees(math.atan2(math.sin(hour_angle),
                                      math.cos(hour_angle) * math.sin(phi) - math.tan(decl) * math.cos(phi)))
    return elevation, (azimuth + 180.0) % 360.0
