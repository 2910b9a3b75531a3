"""Where the satellites are, and how much Sun they see.

:class:`OrbitModel` turns per-satellite :class:`OrbitParams` into an
:class:`OrbitState` over a vector of times: positions, the Sun's direction,
illumination (with penumbra), irradiance, beta angle and an albedo factor, as
arrays over time and satellites, without a Python loop over time.

Each satellite is either

- a circular sun-synchronous orbit, ``a = Re + altitude``, inclined per
  :func:`sso_inclination_rad`. Its node starts at right ascension
  ``RA(mean Sun) + (LTAN - 12 h) * 15 deg``, so the LTAN is a local *mean* solar
  time (what a sun-synchronous node keeps; against the apparent Sun it swings
  by the equation of time, +-16 min), and drifts at the J2 nodal rate, one turn
  per tropical year. The argument of latitude advances at the Keplerian mean
  motion: the J2 secular change of that rate (-0.12 % at 650 km, a nodal period
  ~7 s longer) is left out so that ``period_s`` is ``2 pi sqrt(a^3/mu)``; it
  shifts the along-track phase, not beta, eclipses or the sunlit fraction;
- or, when both TLE lines are given, SGP4 (``sgp4`` package, WGS-72), its TEME
  frame taken as the ECI frame of date (they differ by < 0.01 deg).

The Sun and the Earth's shadow come from :mod:`twin.models.sun`, re-exported here.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from sgp4.api import SGP4_ERRORS, Satrec, SatrecArray

from ..params import ParamError, param
from .sun import (AU_M, JD_UNIX_EPOCH, R_EARTH_M, gmst_rad, illumination_fraction, mean_sun_ra_rad,
                  sun_distance_m, sun_unit_eci, unix_to_jd)

__all__ = [
    "MU_EARTH_M3_S2", "R_EARTH_M", "J2", "SSO_NODE_RATE_RAD_S", "SOLAR_CONSTANT_W_M2", "AU_M",
    "unix_to_jd", "gmst_rad", "sun_unit_eci", "sun_distance_m", "mean_sun_ra_rad",
    "illumination_fraction", "sso_inclination_rad", "OrbitParams", "OrbitState", "OrbitModel",
]

MU_EARTH_M3_S2 = 3.986004418e14
J2 = 1.08263e-3
SSO_NODE_RATE_RAD_S = 2.0 * np.pi / (365.2422 * 86400.0)   # one turn per tropical year
SOLAR_CONSTANT_W_M2 = 1361.0                               # at 1 AU


def sso_inclination_rad(altitude_m):
    """Inclination (radians) at which a circular orbit's J2 node drift is one turn a year eastward.

    ``cos i = -rate / (3/2 n J2 (Re/a)^2)`` with ``a = Re + altitude_m``;
    raises ValueError where no such inclination exists (above ~5,970 km).
    """
    a = R_EARTH_M + np.asarray(altitude_m, dtype=float)
    cos_i = -SSO_NODE_RATE_RAD_S / (1.5 * np.sqrt(MU_EARTH_M3_S2 / a**3) * J2 * (R_EARTH_M / a) ** 2)
    if np.any(cos_i < -1.0):
        raise ValueError("no sun-synchronous inclination exists at this altitude")
    return np.arccos(cos_i)


@dataclass(frozen=True)
class OrbitParams:
    """One satellite's orbit: a circular dawn-dusk SSO, or a TLE propagated with SGP4."""

    altitude_km: float = param(650.0, "km", lo=200, hi=2000,
                               doc="altitude of the circular orbit above the equatorial radius")
    ltan_hours: float = param(18.0, "h", lo=0, hi=24,
                              doc="local time of the ascending node (mean solar time)")
    phase_deg: float = param(0.0, "deg", lo=-360, hi=360, doc="argument of latitude at epoch")
    tle_line1: str = param("", doc="if set with tle_line2, propagate this TLE with SGP4 instead")
    tle_line2: str = param("", doc="second line of the TLE; the circular-orbit fields are then unused")


@dataclass(eq=False)
class OrbitState:
    """The orbit environment at ``n_t`` times for ``n_sat`` satellites (SI units, ECI of date).

    ``beta_rad`` is the Sun's elevation above the orbit plane, positive on the
    side of the orbit normal ``r x v`` (positive for LTAN 18:00). ``albedo_factor``
    is the cosine of the solar zenith angle at the (geocentric) sub-satellite
    point, clipped at 0.
    """

    t_s: np.ndarray              # (n_t,) seconds since the model epoch
    r_eci_m: np.ndarray          # (n_t, n_sat, 3)
    sun_unit_eci: np.ndarray     # (n_t, 3)
    sun_fraction: np.ndarray     # (n_t, n_sat) 1 full Sun, 0 umbra
    irradiance_w_m2: np.ndarray  # (n_t, n_sat) 1361 * (1 AU / d)^2 * sun_fraction
    beta_rad: np.ndarray         # (n_t, n_sat)
    gmst_rad: np.ndarray         # (n_t,)
    albedo_factor: np.ndarray    # (n_t, n_sat)


class OrbitModel:
    """Orbits of ``n_sat`` satellites from an epoch (Unix seconds, UTC).

    ``params`` is one :class:`OrbitParams` (``n_sat = 1``) or a sequence of
    them, one per satellite; circular and TLE satellites may be mixed.
    A malformed or unpropagatable TLE raises :class:`~twin.params.ParamError`
    (a ValueError) whose key names the offending line.
    """

    def __init__(self, params: OrbitParams | Sequence[OrbitParams], epoch_unix_s: float):
        plist = [params] if isinstance(params, OrbitParams) else list(params)
        if not plist:
            raise ValueError("OrbitModel needs at least one OrbitParams")
        self.n_sat = len(plist)
        self.epoch_unix_s = float(epoch_unix_s)
        self.inclination_rad = np.empty(self.n_sat)
        self.period_s = np.empty(self.n_sat)

        is_tle = [_uses_tle(p, k) for k, p in enumerate(plist)]
        self._circ = np.flatnonzero(~np.asarray(is_tle))
        self._tle = np.flatnonzero(is_tle)

        circ = [plist[k] for k in self._circ]
        a = self._a = R_EARTH_M + 1e3 * np.array([p.altitude_km for p in circ], dtype=float)
        self._n = np.sqrt(MU_EARTH_M3_S2 / a**3)
        incl = sso_inclination_rad(a - R_EARTH_M)
        self._cos_i, self._sin_i = np.cos(incl), np.sin(incl)
        ltan = np.array([p.ltan_hours for p in circ], dtype=float)
        self._raan0 = mean_sun_ra_rad(unix_to_jd(self.epoch_unix_s)) + (ltan - 12.0) * (np.pi / 12.0)
        self._raan_rate = -1.5 * self._n * J2 * (R_EARTH_M / a) ** 2 * self._cos_i
        self._u0 = np.radians([p.phase_deg for p in circ])
        self.inclination_rad[self._circ] = incl
        self.period_s[self._circ] = 2.0 * np.pi / self._n

        sats = [_satrec(plist[k], k) for k in self._tle]
        self._satrecs = SatrecArray(sats) if sats else None
        self.inclination_rad[self._tle] = [s.inclo for s in sats]
        self.period_s[self._tle] = [2.0 * np.pi * 60.0 / s.no_kozai for s in sats]
        if sats:
            self._propagate_tle(np.zeros(1))   # fail now, not in the middle of a run

    def state(self, t_s) -> OrbitState:
        """The orbit environment at times ``t_s`` (1-D, seconds since the epoch)."""
        t = np.asarray(t_s, dtype=float).reshape(-1)
        jd = unix_to_jd(self.epoch_unix_s + t)
        sun = sun_unit_eci(jd)
        dist = sun_distance_m(jd)

        parts = []
        if self._circ.size:
            parts.append((self._circ, *self._propagate_circular(t, sun)))
        if self._tle.size:
            r_tle, v_tle = self._propagate_tle(t)
            normal = np.cross(r_tle, v_tle)
            parts.append((self._tle, r_tle,
                          np.einsum("tsk,tk->ts", normal, sun) / np.linalg.norm(normal, axis=-1)))
        if len(parts) == 1:
            _, r, sin_beta = parts[0]
        else:
            r, sin_beta = np.empty((t.size, self.n_sat, 3)), np.empty((t.size, self.n_sat))
            for sats, r_part, sin_beta_part in parts:
                r[:, sats], sin_beta[:, sats] = r_part, sin_beta_part

        frac = illumination_fraction(r, sun[:, None, :], sun_dist_m=dist[:, None])
        cos_zenith = np.einsum("tsk,tk->ts", r, sun) / np.linalg.norm(r, axis=-1)
        return OrbitState(
            t_s=t, r_eci_m=r, sun_unit_eci=sun, sun_fraction=frac,
            irradiance_w_m2=(SOLAR_CONSTANT_W_M2 * (AU_M / dist) ** 2)[:, None] * frac,
            beta_rad=np.arcsin(np.clip(sin_beta, -1.0, 1.0)), gmst_rad=gmst_rad(jd),
            albedo_factor=np.maximum(cos_zenith, 0.0))

    def _propagate_circular(self, t, sun):
        """Positions (n_t, n_circ, 3) and sin(beta) (n_t, n_circ) of the circular satellites."""
        u = self._u0 + self._n * t[:, None]
        raan = self._raan0 + self._raan_rate * t[:, None]
        cu, su, co, so = np.cos(u), np.sin(u), np.cos(raan), np.sin(raan)
        ci, si = self._cos_i, self._sin_i
        r = self._a[:, None] * np.stack([cu * co - su * ci * so, cu * so + su * ci * co, su * si], axis=-1)
        # Orbit normal is (si*so, -si*co, ci).
        sin_beta = si * so * sun[:, 0, None] - si * co * sun[:, 1, None] + ci * sun[:, 2, None]
        return r, sin_beta

    def _propagate_tle(self, t):
        """SGP4 positions and velocities (n_t, n_tle, 3), metres and m/s."""
        days = (self.epoch_unix_s + t) / 86400.0
        whole = np.floor(days)
        err, r_km, v_km_s = self._satrecs.sgp4(JD_UNIX_EPOCH + whole, days - whole)
        if np.any(err):
            k, i = np.argwhere(err)[0]
            raise ParamError("tle_line2", f"satellite {self._tle[k]}: SGP4 fails "
                             f"at t = {t[i]:g} s after the epoch: "
                             f"{SGP4_ERRORS.get(int(err[k, i]), 'error ' + str(err[k, i]))}")
        return np.swapaxes(r_km, 0, 1) * 1e3, np.swapaxes(v_km_s, 0, 1) * 1e3


def _uses_tle(p: OrbitParams, k: int) -> bool:
    if bool(p.tle_line1.strip()) != bool(p.tle_line2.strip()):
        missing = "tle_line2" if p.tle_line1.strip() else "tle_line1"
        raise ParamError(missing, f"satellite {k}: a TLE needs both lines; this one is empty")
    return bool(p.tle_line1.strip())


# (name, first column, end column (0-based, exclusive), kind) of the fields SGP4 reads.
_TLE_FIELDS = {
    1: (("epoch year", 18, 20, "digits"), ("epoch day", 20, 32, "float"),
        ("mean motion derivative", 33, 43, "float"), ("mean motion second derivative", 44, 52, "exp"),
        ("drag term B*", 53, 61, "exp")),
    2: (("inclination", 8, 16, "float"), ("right ascension of the node", 17, 25, "float"),
        ("eccentricity", 26, 33, "digits"), ("argument of perigee", 34, 42, "float"),
        ("mean anomaly", 43, 51, "float"), ("mean motion", 52, 63, "float")),
}
_TLE_KINDS = {kind: re.compile(rx) for kind, rx in (
    ("digits", r"\d+"), ("float", r"[+-]?(\d+\.?\d*|\.\d+)"), ("exp", r"[+-]?\d{1,5}[+-]\d"))}


def _check_tle(line1: str, line2: str, k: int) -> tuple[str, str]:
    """The two lines stripped, or ParamError naming the line and what is wrong with it.

    The ``sgp4`` extension parses garbage silently (as zeros), hence this check.
    """
    lines = (line1.strip(), line2.strip())
    for num, line in enumerate(lines, start=1):
        key = f"tle_line{num}"
        if not line.isascii():
            raise ParamError(key, f"satellite {k}: contains non-ASCII characters")
        if len(line) != 69:
            raise ParamError(key, f"satellite {k}: a TLE line has 69 characters, this one {len(line)}")
        if not line.startswith(f"{num} "):
            raise ParamError(key, f"satellite {k}: must start with '{num} ', got {line[:2]!r}")
        for name, i, j, kind in _TLE_FIELDS[num]:
            if not _TLE_KINDS[kind].fullmatch(line[i:j].strip()):
                raise ParamError(key, f"satellite {k}: {name} (columns {i + 1}-{j}) "
                                      f"is malformed: {line[i:j]!r}")
        tally = sum(int(ch) if ch.isdigit() else ch == "-" for ch in line[:68]) % 10
        if line[68] != str(tally):
            raise ParamError(key, f"satellite {k}: checksum (column 69) is {line[68]!r} "
                                  f"but the line tallies to {tally}")
    if lines[0][2:7] != lines[1][2:7]:
        raise ParamError("tle_line2", f"satellite {k}: satellite number {lines[1][2:7]!r} "
                                      f"differs from line 1's {lines[0][2:7]!r}")
    return lines


def _satrec(p: OrbitParams, k: int) -> Satrec:
    sat = Satrec.twoline2rv(*_check_tle(p.tle_line1, p.tle_line2, k))
    if sat.error:
        raise ParamError("tle_line2", f"satellite {k}: SGP4 rejects the elements: "
                                      f"{SGP4_ERRORS.get(sat.error, sat.error)}")
    return sat
