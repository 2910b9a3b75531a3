"""Time scales, the Sun's position, and the Earth's shadow.

Low-precision formulas, good to about 0.01 deg for 1950-2050, which is far
below what a thermal or power model can notice:

- time: Unix seconds to Julian date, taking UTC ~ UT1 (error < 0.9 s);
- :func:`gmst_rad`: IAU 1982 Greenwich mean sidereal time;
- :func:`sun_unit_eci`, :func:`sun_distance_m`, :func:`mean_sun_ra_rad`: the
  Astronomical Almanac's low-precision solar coordinates (section C), referred
  to the mean equator and equinox of date;
- :func:`illumination_fraction`: the conical shadow model of Montenbruck &
  Gill, *Satellite Orbits* (2000), section 3.4.3, from the overlap of the
  apparent disks of the Sun and of a spherical Earth seen from the satellite.

All functions take floats or numpy arrays and broadcast; vectors are the last
axis, of length 3.
"""
from __future__ import annotations

import numpy as np

__all__ = [
    "AU_M", "R_SUN_M", "R_EARTH_M", "JD_UNIX_EPOCH", "JD_J2000",
    "unix_to_jd", "gmst_rad", "sun_unit_eci", "sun_distance_m", "mean_sun_ra_rad",
    "illumination_fraction",
]

AU_M = 149_597_870_700.0      # IAU 2012
R_SUN_M = 6.957e8             # IAU 2015 nominal solar radius
R_EARTH_M = 6_378_137.0       # WGS-84 equatorial radius; the shadow uses a sphere of this size
JD_UNIX_EPOCH = 2_440_587.5   # 1970-01-01T00:00:00 UTC
JD_J2000 = 2_451_545.0        # 2000-01-01T12:00:00

_DEG = np.pi / 180.0


def unix_to_jd(unix_s):
    """Julian date of a Unix time in seconds (float or array); UTC is taken as UT1."""
    return np.asarray(unix_s, dtype=float) / 86400.0 + JD_UNIX_EPOCH


def gmst_rad(jd) -> np.ndarray:
    """Greenwich mean sidereal time in radians, in [0, 2 pi), for Julian date(s) ``jd`` (UT1).

    IAU 1982 expression (Vallado, *Fundamentals of Astrodynamics*, eq. 3-47).
    """
    t = (np.asarray(jd, dtype=float) - JD_J2000) / 36525.0
    sec = 67310.54841 + (876600.0 * 3600.0 + 8640184.812866) * t + (0.093104 - 6.2e-6 * t) * t * t
    return np.mod(sec, 86400.0) * (2.0 * np.pi / 86400.0)


def _solar_angles(jd):
    """Mean longitude L, mean anomaly g and obliquity eps (radians) of the Astronomical Almanac."""
    n = np.asarray(jd, dtype=float) - JD_J2000
    mean_lon = (280.460 + 0.9856474 * n) * _DEG
    mean_anom = (357.528 + 0.9856003 * n) * _DEG
    eps = (23.439 - 4.0e-7 * n) * _DEG
    return mean_lon, mean_anom, eps


def sun_unit_eci(jd) -> np.ndarray:
    """Unit vector from the Earth to the Sun, shape ``jd.shape + (3,)``.

    Mean equator and equinox of date; the ecliptic longitude includes
    aberration, so this is the apparent direction to about 0.01 deg.
    """
    mean_lon, g, eps = _solar_angles(jd)
    lam = mean_lon + (1.915 * np.sin(g) + 0.020 * np.sin(2.0 * g)) * _DEG
    cos_lam, sin_lam = np.cos(lam), np.sin(lam)
    return np.stack([cos_lam, np.cos(eps) * sin_lam, np.sin(eps) * sin_lam], axis=-1)


def sun_distance_m(jd) -> np.ndarray:
    """Earth-Sun distance in metres (0.983 to 1.017 AU over the year)."""
    _, g, _ = _solar_angles(jd)
    return (1.00014 - 0.01671 * np.cos(g) - 0.00014 * np.cos(2.0 * g)) * AU_M


def mean_sun_ra_rad(jd) -> np.ndarray:
    """Right ascension of the fictitious mean Sun, radians in [0, 2 pi).

    It moves uniformly along the equator, once a tropical year; local *mean*
    solar time is measured from it, and a sun-synchronous orbit's node follows it.
    """
    mean_lon, _, _ = _solar_angles(jd)
    return np.mod(mean_lon, 2.0 * np.pi)


def illumination_fraction(r_eci_m, sun_unit, *, sun_dist_m=AU_M, earth_radius_m=R_EARTH_M) -> np.ndarray:
    """Fraction of the solar disk visible from position(s) ``r_eci_m`` (metres).

    1 in full Sun, 0 in the umbra, in between in the penumbra. ``sun_unit`` is
    the Earth-to-Sun unit vector (broadcast against ``r_eci_m``), ``sun_dist_m``
    the Earth-Sun distance (broadcast against the result). Limb darkening and the
    atmosphere are ignored; the Earth is a sphere of ``earth_radius_m``.
    """
    r = np.asarray(r_eci_m, dtype=float)
    to_sun = np.asarray(sun_dist_m, dtype=float)[..., None] * np.asarray(sun_unit, dtype=float) - r
    rr = np.einsum("...k,...k->...", r, r)
    dd = np.einsum("...k,...k->...", to_sun, to_sun)
    rd = np.einsum("...k,...k->...", r, to_sun)
    a = np.arcsin(R_SUN_M / np.sqrt(dd))                                   # Sun's apparent radius
    b = np.arcsin(np.minimum(earth_radius_m / np.sqrt(rr), 1.0))           # Earth's apparent radius
    # Angle between the Earth's and the Sun's centres; |r x d| from the Lagrange identity is
    # cheaper than a cross product and precise enough away from c = 0 and pi, where it is not needed.
    c = np.arctan2(np.sqrt(np.maximum(rr * dd - rd * rd, 0.0)), -rd)
    a, b, c = np.broadcast_arrays(a, b, c)

    frac = np.where(c >= a + b, 1.0, np.where(a > b, 1.0 - (b / a) ** 2, 0.0))   # a > b: annular
    partial = (c > np.abs(a - b)) & (c < a + b)
    if np.any(partial):
        a, b, c = a[partial], b[partial], c[partial]
        x = (c * c + a * a - b * b) / (2.0 * c)
        y = np.sqrt(np.maximum(a * a - x * x, 0.0))
        overlap = (a * a * np.arccos(np.clip(x / a, -1.0, 1.0))
                   + b * b * np.arccos(np.clip((c - x) / b, -1.0, 1.0)) - c * y)
        frac[partial] = 1.0 - overlap / (np.pi * a * a)
    return np.clip(frac, 0.0, 1.0)
