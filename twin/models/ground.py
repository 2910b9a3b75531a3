"""Ground contacts: which station each satellite sees, how far, at what downlink rate.

Geometry. Satellite positions come in ECI (metres); they are turned into ECEF
by a rotation of the Greenwich mean sidereal angle about z (no polar motion,
nutation or precession: a few hundred metres at most, negligible for contact
timing). Stations sit on the WGS84 ellipsoid at their geodetic latitude,
longitude and height; their local vertical is the ellipsoid normal. Setting
``GroundParams.earth_flattening = 0`` gives a spherical Earth of radius
``earth_radius_m`` instead.

Elevation of a satellite seen from a station is the angle between the
station-to-satellite vector and the local horizontal plane. A satellite is in
contact when some station sees it at or above ``min_elevation_deg``; it then
talks to the station with the highest elevation.

Downlink rate (a link budget at fixed transmit power, antenna gains and
margins, so received power and hence rate scale with 1/R^2)::

    rate = min(max_rate_bps, rate_at_ref_bps * (ref_range_m / slant_range)^2)

``max_rate_bps`` is the modem's ceiling, reached near zenith. Rate is 0 out of
contact.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from twin.params import param

__all__ = ["GroundStation", "DEFAULT_GROUND_STATIONS", "GroundParams", "ContactState", "GroundContactModel"]


@dataclass(frozen=True)
class GroundStation:
    """A ground station at geodetic ``lat_deg`` (+N), ``lon_deg`` (+E), height ``alt_m``."""

    name: str
    lat_deg: float
    lon_deg: float
    alt_m: float = 0.0

    def __post_init__(self) -> None:
        if not -90.0 <= self.lat_deg <= 90.0:
            raise ValueError(f"ground station {self.name!r}: lat_deg must be in [-90, 90], got {self.lat_deg!r}")
        if not -180.0 <= self.lon_deg <= 360.0:
            raise ValueError(f"ground station {self.name!r}: lon_deg must be in [-180, 360], got {self.lon_deg!r}")
        if not -500.0 <= self.alt_m <= 9000.0:
            raise ValueError(f"ground station {self.name!r}: alt_m must be in [-500, 9000], got {self.alt_m!r}")


#: Polar and high-latitude stations that serve sun-synchronous missions
#: (approximate antenna-field coordinates; heights rounded).
DEFAULT_GROUND_STATIONS: tuple[GroundStation, ...] = (
    GroundStation("Svalbard SvalSat", 78.23, 15.41, 500.0),
    GroundStation("Fairbanks", 64.97, -147.50, 300.0),
    GroundStation("Kiruna", 67.86, 20.96, 400.0),
    GroundStation("Inuvik", 68.32, -133.55, 100.0),
    GroundStation("Troll TrollSat", -72.01, 2.53, 1300.0),
    GroundStation("Punta Arenas", -52.94, -70.85, 50.0),
)


@dataclass(frozen=True)
class GroundParams:
    """Ground-contact geometry and downlink budget."""

    min_elevation_deg: float = param(10.0, "deg", lo=0.0, hi=90.0, doc="elevation mask for contact")
    max_rate_bps: float = param(2e9, "bit/s", lo=0.0, doc="downlink modem ceiling")
    rate_at_ref_bps: float = param(1e9, "bit/s", lo=0.0, doc="downlink rate at ref_range_m (1/R^2 budget)")
    ref_range_m: float = param(1.5e6, "m", lo=1e3, doc="slant range at which the rate is rate_at_ref_bps")
    earth_radius_m: float = param(6378137.0, "m", lo=6.0e6, hi=6.5e6, doc="equatorial radius (WGS84)")
    earth_flattening: float = param(1 / 298.257223563, "1", lo=0.0, hi=0.01,
                                    doc="ellipsoid flattening (WGS84); 0 for a spherical Earth")


@dataclass
class ContactState:
    """Contacts over ``n_t`` instants, ``n_sat`` satellites and ``n_st`` stations.

    ``elevation_rad`` (n_t, n_sat, n_st): elevation of each satellite from each
    station (negative below the horizon). ``in_contact`` (n_t, n_sat) bool.
    ``station`` (n_t, n_sat) int: index of the highest-elevation station in
    contact, -1 when none. ``slant_range_m`` (n_t, n_sat): range to that
    station, NaN when none. ``rate_bps`` (n_t, n_sat): downlink rate, 0 when none.
    """

    elevation_rad: np.ndarray
    in_contact: np.ndarray
    station: np.ndarray
    slant_range_m: np.ndarray
    rate_bps: np.ndarray


class GroundContactModel:
    """Vectorized contact geometry over time, satellites and stations.

    Stateless: :meth:`evaluate` may be called per step (``n_t = 1``) or on a
    whole trajectory. Working memory is a few arrays of ``n_t * n_sat * n_st``
    floats; chunk long trajectories of large clusters.
    """

    def __init__(self, params: GroundParams, stations: Sequence[GroundStation] = DEFAULT_GROUND_STATIONS):
        if len(stations) == 0:
            raise ValueError("GroundContactModel needs at least one ground station")
        self.params = params
        self.stations = tuple(stations)
        lat = np.radians([s.lat_deg for s in self.stations])
        lon = np.radians([s.lon_deg for s in self.stations])
        h = np.array([s.alt_m for s in self.stations], dtype=float)
        f = params.earth_flattening
        e2 = f * (2.0 - f)
        n = params.earth_radius_m / np.sqrt(1.0 - e2 * np.sin(lat) ** 2)
        self._up = np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)], axis=-1)
        self._pos = np.stack([(n + h) * np.cos(lat) * np.cos(lon), (n + h) * np.cos(lat) * np.sin(lon),
                              (n * (1.0 - e2) + h) * np.sin(lat)], axis=-1)
        self._pos_up = np.einsum("sk,sk->s", self._pos, self._up)
        self._pos_sq = np.einsum("sk,sk->s", self._pos, self._pos)
        self._pos_and_up = np.concatenate([self._pos, self._up]).T  # (3, 2 n_st)
        self._min_el = np.radians(params.min_elevation_deg)
        self._rate_k = params.rate_at_ref_bps * params.ref_range_m ** 2

    @property
    def station_ecef_m(self) -> np.ndarray:
        """Station positions in ECEF, shape (n_st, 3), metres."""
        return self._pos.copy()

    def evaluate(self, r_eci_m: np.ndarray, gmst_rad: np.ndarray) -> ContactState:
        """Contacts for positions ``r_eci_m`` (n_t, n_sat, 3) at sidereal angles ``gmst_rad`` (n_t,)."""
        r = np.asarray(r_eci_m, dtype=float)
        g = np.asarray(gmst_rad, dtype=float).reshape(-1)
        if r.ndim != 3 or r.shape[2] != 3 or g.shape[0] != r.shape[0]:
            raise ValueError(f"expected r_eci_m (n_t, n_sat, 3) and gmst_rad (n_t,), got {r.shape} and {g.shape}")
        n_t, n_st = g.shape[0], len(self.stations)
        c, s = np.cos(g)[:, None], np.sin(g)[:, None]
        # Station positions and verticals carried into ECI at each instant: one matmul then gives
        # r.pos and r.up, and |rho|^2 = |r|^2 + |pos|^2 - 2 r.pos; no (n_t, n_sat, n_st, 3) array.
        pu = self._pos_and_up
        m = np.empty((n_t, 3, 2 * n_st))
        m[:, 0] = c * pu[0] - s * pu[1]
        m[:, 1] = s * pu[0] + c * pu[1]
        m[:, 2] = pu[2]
        dots = r @ m
        r_sq = np.square(r).sum(axis=-1, keepdims=True)
        # Floor at 1 m: a satellite on top of a station would divide by zero.
        rng_all = np.sqrt(np.maximum(r_sq + self._pos_sq - 2.0 * dots[..., :n_st], 1.0))
        sin_el = (dots[..., n_st:] - self._pos_up) / rng_all
        elev = np.arcsin(np.minimum(np.maximum(sin_el, -1.0), 1.0))

        best = np.argmax(elev, axis=-1)
        flat = np.arange(0, best.size * n_st, n_st).reshape(best.shape) + best  # cheaper than take_along_axis
        in_contact = elev.reshape(-1)[flat] >= self._min_el
        station = np.where(in_contact, best, -1)
        best_rng = rng_all.reshape(-1)[flat]
        slant = np.where(in_contact, best_rng, np.nan)
        rate = np.where(in_contact, np.minimum(self.params.max_rate_bps, self._rate_k / np.square(best_rng)), 0.0)
        return ContactState(elev, in_contact, station, slant, rate)
