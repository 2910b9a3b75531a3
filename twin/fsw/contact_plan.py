"""Onboard prediction of ground contacts and eclipses from the uplinked orbit elements.

The propagator is deliberately small: a circular orbit of altitude ``h``
inclined for sun-synchronism (``cos i = -Omega_dot_sso / (3/2 n J2 (Re/a)^2)``),
its node starting at the right ascension of the mean Sun plus
``(LTAN - 12 h) * 15 deg`` and drifting at the J2 nodal rate, the argument of
latitude advancing at the Keplerian mean motion from ``phase_deg``. Time
``t_s`` counts seconds from ``epoch_unix_s`` (the executive's ``t_ns = 0``).

- Stations sit on a spherical Earth (radius Re), rotated into the inertial
  frame by the Greenwich mean sidereal time; a contact is elevation >=
  ``min_elevation_deg``.
- Eclipse: cylindrical shadow (behind the Earth and within Re of the Sun
  line), with the Astronomical Almanac's low-precision Sun.

:class:`ContactPlanner` evaluates both with numpy over ``predict_horizon_orbits``
at ``predict_step_s`` (window edges interpolated linearly between samples) and
recomputes every ``predict_refresh_orbits``; per-tick queries are scalar and
cost a few comparisons.
"""
from __future__ import annotations

import math

import numpy as np

from .config import OrbitConfig

__all__ = ["ContactPlanner", "OrbitPredictor", "WindowList", "sso_inclination_rad", "gmst_rad",
           "sun_unit_eci", "find_windows", "RE_KM", "MU_KM3_S2", "J2"]

MU_KM3_S2 = 398600.4418
RE_KM = 6378.137
J2 = 1.08263e-3
SSO_NODE_RATE_RAD_S = 2.0 * math.pi / (365.2422 * 86400.0)
_JD_UNIX = 2440587.5
_JD_J2000 = 2451545.0
_DEG = math.pi / 180.0


def sso_inclination_rad(altitude_km: float) -> float:
    """Inclination whose J2 node drift is one turn eastward per tropical year."""
    a = RE_KM + altitude_km
    n = math.sqrt(MU_KM3_S2 / a**3)
    return math.acos(-SSO_NODE_RATE_RAD_S / (1.5 * n * J2 * (RE_KM / a) ** 2))


def _days_j2000(unix_s):
    return np.asarray(unix_s, dtype=float) / 86400.0 + (_JD_UNIX - _JD_J2000)


def gmst_rad(unix_s):
    """Greenwich mean sidereal time (radians) at Unix time(s), UTC taken as UT1."""
    return np.mod((280.46061837 + 360.98564736629 * _days_j2000(unix_s)) * _DEG, 2.0 * math.pi)


def sun_unit_eci(unix_s) -> np.ndarray:
    """Earth-to-Sun unit vector(s), mean equator and equinox of date, shape ``(..., 3)``."""
    d = _days_j2000(unix_s)
    g = (357.528 + 0.9856003 * d) * _DEG
    lam = (280.460 + 0.9856474 * d) * _DEG + (1.915 * np.sin(g) + 0.020 * np.sin(2.0 * g)) * _DEG
    eps = (23.439 - 4.0e-7 * d) * _DEG
    return np.stack([np.cos(lam), np.cos(eps) * np.sin(lam), np.sin(eps) * np.sin(lam)], axis=-1)


class OrbitPredictor:
    """Positions (km, inertial frame of date) of the satellite from its uplinked elements."""

    def __init__(self, orbit: OrbitConfig):
        self.epoch_unix_s = orbit.epoch_unix_s
        self.a_km = RE_KM + orbit.altitude_km
        self.n_rad_s = math.sqrt(MU_KM3_S2 / self.a_km**3)
        self.period_s = 2.0 * math.pi / self.n_rad_s
        self.inclination_rad = sso_inclination_rad(orbit.altitude_km)
        mean_sun_ra = (280.460 + 0.9856474 * float(_days_j2000(orbit.epoch_unix_s))) * _DEG
        self.raan0_rad = mean_sun_ra + (orbit.ltan_hours - 12.0) * (math.pi / 12.0)
        self.raan_rate = -1.5 * self.n_rad_s * J2 * (RE_KM / self.a_km) ** 2 * math.cos(self.inclination_rad)
        self.u0_rad = orbit.phase_deg * _DEG

    def positions_km(self, t_s: np.ndarray) -> np.ndarray:
        """``(len(t_s), 3)`` positions at ``t_s`` seconds after the epoch."""
        u = self.u0_rad + self.n_rad_s * t_s
        raan = self.raan0_rad + self.raan_rate * t_s
        cu, su, co, so = np.cos(u), np.sin(u), np.cos(raan), np.sin(raan)
        ci, si = math.cos(self.inclination_rad), math.sin(self.inclination_rad)
        return self.a_km * np.stack([cu * co - su * ci * so, cu * so + su * ci * co, su * si], axis=-1)


def find_windows(t: np.ndarray, f: np.ndarray) -> list[tuple[float, float]]:
    """Intervals where ``f >= 0`` over samples ``(t, f)``, edges interpolated, clipped to ``t[0]..t[-1]``."""
    inside = f >= 0.0
    edges = np.flatnonzero(inside[1:] != inside[:-1])
    crossing = t[edges] + (t[edges + 1] - t[edges]) * f[edges] / (f[edges] - f[edges + 1])
    starts = list(crossing[inside[edges + 1]])
    ends = list(crossing[inside[edges]])
    if inside[0]:
        starts.insert(0, t[0])
    if inside[-1]:
        ends.append(t[-1])
    return [(float(a), float(b)) for a, b in zip(starts, ends)]


class WindowList:
    """Sorted, disjoint time windows with cheap monotonic queries (a pointer moves forward)."""

    def __init__(self, windows: list[tuple[float, float]]):
        self.starts = [w[0] for w in windows]
        self.ends = [w[1] for w in windows]
        self._k = 0

    def _first_open(self, t: float) -> int:
        ends, k = self.ends, self._k
        while k and ends[k - 1] >= t:
            k -= 1
        while k < len(ends) and ends[k] < t:
            k += 1
        self._k = k
        return k

    def inside(self, t: float, margin: float = 0.0) -> bool:
        """Whether ``t`` lies in a window widened by ``margin`` each side."""
        k = self._first_open(t - margin)
        return k < len(self.starts) and self.starts[k] - margin <= t

    def time_to_next(self, t: float) -> float:
        """0 inside a window, else seconds to the next start, -1 if none is known."""
        k = self._first_open(t)
        if k == len(self.starts):
            return -1.0
        return max(0.0, self.starts[k] - t)

    def remaining(self, t: float) -> float:
        """Seconds left in the window holding ``t``, 0 outside."""
        k = self._first_open(t)
        if k < len(self.starts) and self.starts[k] <= t:
            return self.ends[k] - t
        return 0.0


def _merge(windows: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[list[float]] = []
    for a, b in sorted(windows):
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


class ContactPlanner:
    """Contact and eclipse plan over the next ``predict_horizon_orbits``; see the module docstring.

    ``contacts``: ``(start_s, end_s, station name)`` per station pass;
    ``contact_windows`` / ``eclipse_windows``: merged :class:`WindowList`.
    After :meth:`update` (``t_s``), the plan's view of that instant:
    ``in_contact`` (within ``margin_s`` of a predicted pass), ``next_contact``,
    ``next_eclipse`` (seconds; 0 inside, -1 none known), ``eclipse_left``
    (seconds left in a predicted eclipse, 0 outside).
    """

    def __init__(self, orbit: OrbitConfig, stations, min_elevation_deg: float, margin_s: float = 0.0):
        self.cfg = orbit
        self.margin_s = margin_s
        self.orbit = OrbitPredictor(orbit)
        self.station_names = [s[0] for s in stations]
        lat = np.radians([s[1] for s in stations], dtype=float)
        lon = np.radians([s[2] for s in stations], dtype=float)
        self._lat_cos, self._lat_sin, self._lon = np.cos(lat), np.sin(lat), lon
        self._sin_min_el = math.sin(min_elevation_deg * _DEG)
        self.horizon_s = orbit.predict_horizon_orbits * self.orbit.period_s
        self.refresh_s = orbit.predict_refresh_orbits * self.orbit.period_s
        self.reset()

    def reset(self) -> None:
        self.t0_s: float | None = None
        self.t_s: float | None = None
        self.in_contact = False
        self.next_contact = self.next_eclipse = -1.0
        self.eclipse_left = 0.0
        self._steady_from = self._steady_until = 0.0
        self._contact_at: float | None = None
        self._eclipse_at: float | None = None
        self._eclipse_end = 0.0
        self.contacts: list[tuple[float, float, str]] = []
        self.contact_windows = WindowList([])
        self.eclipse_windows = WindowList([])

    def update(self, t_s: float) -> None:
        """Recompute the plan if it is due (or time went back), then its view of ``t_s``."""
        if t_s == self.t_s:
            return
        # Between two window edges (the refresh time is one) the view only counts down: no search per tick.
        if not self._steady_from <= t_s < self._steady_until:
            if self.t0_s is None or not self.t0_s <= t_s < self.t0_s + self.refresh_s:
                self.contacts, eclipses = self.predict(t_s, self.horizon_s)
                self.contact_windows = WindowList(_merge([(a, b) for a, b, _ in self.contacts]))
                self.eclipse_windows = WindowList(eclipses)
                self.t0_s = t_s
            self._anchor(t_s)
        self.t_s = t_s
        nc, ne = self._contact_at, self._eclipse_at
        self.next_contact = -1.0 if nc is None else (nc - t_s if nc > t_s else 0.0)
        self.next_eclipse = -1.0 if ne is None else (ne - t_s if ne > t_s else 0.0)
        self.eclipse_left = self._eclipse_end - t_s if self.next_eclipse == 0.0 else 0.0

    def _anchor(self, t_s: float) -> None:
        """Search the windows at ``t_s``; keep the absolute times the view counts down to, and until when."""
        margin = self.margin_s
        contacts, eclipses = self.contact_windows, self.eclipse_windows
        self.in_contact = contacts.inside(t_s, margin)
        edges = [self.t0_s + self.refresh_s]
        k = contacts._first_open(t_s - margin)
        for a, b in zip(contacts.starts[k:k + 2], contacts.ends[k:k + 2]):
            edges += [a - margin, a, b, b + margin]
        k = contacts._first_open(t_s)
        self._contact_at = contacts.starts[k] if k < len(contacts.starts) else None
        k = eclipses._first_open(t_s)
        if k < len(eclipses.starts):
            self._eclipse_at, self._eclipse_end = eclipses.starts[k], eclipses.ends[k]
            edges += [self._eclipse_at, self._eclipse_end]
        else:
            self._eclipse_at, self._eclipse_end = None, 0.0
        self._steady_from, self._steady_until = t_s, min(e for e in edges if e > t_s)

    def predict(self, t0_s: float, horizon_s: float) -> tuple[list, list]:
        """Station passes ``(start, end, name)`` sorted by start, and eclipses ``(start, end)``, in t0..t0+horizon."""
        step = self.cfg.predict_step_s
        t = t0_s + np.arange(0.0, horizon_s + step, step)
        r = self.orbit.positions_km(t)
        unix = self.orbit.epoch_unix_s + t
        theta = gmst_rad(unix)[:, None] + self._lon[None, :]
        up = np.stack([self._lat_cos * np.cos(theta), self._lat_cos * np.sin(theta),
                       np.broadcast_to(self._lat_sin, theta.shape)], axis=-1)        # (n_t, n_st, 3)
        rho = r[:, None, :] - RE_KM * up
        sin_el = np.einsum("tsk,tsk->ts", rho, up) / np.linalg.norm(rho, axis=-1)
        contacts = [(a, b, self.station_names[s]) for s in range(up.shape[1])
                    for a, b in find_windows(t, sin_el[:, s] - self._sin_min_el)]
        contacts.sort()

        sun = sun_unit_eci(unix)
        along = np.einsum("tk,tk->t", r, sun)
        perp = np.sqrt(np.maximum(np.einsum("tk,tk->t", r, r) - along * along, 0.0))
        # Shadow function: >= 0 in the cylinder behind the Earth, negative elsewhere.
        shadow = np.where(along < 0.0, RE_KM - perp, -self.orbit.a_km)
        return contacts, find_windows(t, shadow)

    def horizon_left_s(self, t_s: float) -> float:
        """Seconds of plan left after ``t_s`` (0 without a plan)."""
        if self.t0_s is None:
            return 0.0
        left = self.t0_s + self.horizon_s - t_s
        return left if left > 0.0 else 0.0  # max(0.0, left), written out (see twin.fsw.base)
