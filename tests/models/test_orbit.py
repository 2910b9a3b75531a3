"""Orbit, Sun and shadow, each checked against a reference computed here, independently.

References: Meeus, *Astronomical Algorithms* (2nd ed.) ch. 12 (sidereal time) and
ch. 25 (solar coordinates, a different series from the model's Astronomical
Almanac one), the closed-form beta angle, the cylindrical-shadow eclipse
formula, and ray casting against a spherical Earth for the penumbra.
"""
from __future__ import annotations

import math
from datetime import datetime, timezone

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from twin.models.orbit import (OrbitModel, OrbitParams, gmst_rad, illumination_fraction,
                               sso_inclination_rad, sun_distance_m, sun_unit_eci, unix_to_jd)

MU = 3.986004418e14
RE = 6378.137e3
J2 = 1.08263e-3
AU = 149_597_870_700.0
R_SUN = 6.957e8
H = 650e3
A = RE + H
YEAR_S = 365.2422 * 86400.0
DAY = 86400.0
EPOCH = datetime(2027, 1, 1, tzinfo=timezone.utc)
J2000 = datetime(2000, 1, 1, 12, tzinfo=timezone.utc)


# ---- independent references -------------------------------------------------------------------
def jd_of(dt: datetime) -> float:
    return 2451545.0 + (dt - J2000).total_seconds() / DAY


def t_since_epoch(dt: datetime) -> float:
    return (dt - EPOCH).total_seconds()


def meeus_gmst_deg(jd):
    """Meeus eq. 12.4."""
    d = np.asarray(jd) - 2451545.0
    t = d / 36525.0
    return np.mod(280.46061837 + 360.98564736629 * d + 0.000387933 * t**2 - t**3 / 38710000.0, 360.0)


def meeus_sun(jd):
    """Meeus ch. 25 low accuracy: apparent longitude, obliquity, RA, dec (deg), mean longitude, R (AU)."""
    t = (np.asarray(jd) - 2451545.0) / 36525.0
    l0 = 280.46646 + 36000.76983 * t + 0.0003032 * t**2
    m = np.radians(357.52911 + 35999.05029 * t - 0.0001537 * t**2)
    e = 0.016708634 - 0.000042037 * t
    c = ((1.914602 - 0.004817 * t - 0.000014 * t**2) * np.sin(m)
         + (0.019993 - 0.000101 * t) * np.sin(2 * m) + 0.000289 * np.sin(3 * m))
    nu = m + np.radians(c)
    r_au = 1.000001018 * (1 - e**2) / (1 + e * np.cos(nu))
    omega = np.radians(125.04 - 1934.136 * t)
    lam = np.radians(l0 + c - 0.00569 - 0.00478 * np.sin(omega))
    eps = np.radians(23.4392911 - 0.0130042 * t + 0.00256 * np.cos(omega))
    ra = np.degrees(np.arctan2(np.cos(eps) * np.sin(lam), np.cos(lam))) % 360.0
    dec = np.degrees(np.arcsin(np.sin(eps) * np.sin(lam)))
    return lam, eps, ra, dec, l0 % 360.0, r_au


def sso_incl_ref() -> float:
    rate = 2 * math.pi / YEAR_S
    return math.acos(-rate * 2 * A**3.5 / (3 * J2 * RE**2 * math.sqrt(MU)))


def period_ref() -> float:
    return 2 * math.pi * math.sqrt(A**3 / MU)


def beta_ref(t_s, raan0_rad, incl=None):
    """Closed-form beta (rad) for a node at raan0 at the epoch, drifting one turn per year."""
    incl = sso_incl_ref() if incl is None else incl
    g, eps, *_ = meeus_sun(jd_of(EPOCH) + np.asarray(t_s) / DAY)
    o = raan0_rad + 2 * math.pi / YEAR_S * np.asarray(t_s)
    s = (np.cos(g) * np.sin(o) * math.sin(incl) - np.sin(g) * np.cos(eps) * np.cos(o) * math.sin(incl)
         + np.sin(g) * np.sin(eps) * math.cos(incl))
    return np.arcsin(s)


def raan_for_ltan(dt: datetime, ltan_h: float) -> float:
    """Node RA whose local *mean* solar time is ltan_h: longitude from UT, plus GMST."""
    ut_h = dt.hour + dt.minute / 60 + dt.second / 3600
    return math.radians(meeus_gmst_deg(jd_of(dt)) + (ltan_h - ut_h) * 15.0)


def eclipse_fraction_cyl(beta):
    beta = np.abs(np.asarray(beta))
    ratio = math.sqrt(H**2 + 2 * RE * H) / (A * np.cos(beta))
    return np.where(beta < math.asin(RE / A), np.arccos(np.minimum(ratio, 1.0)) / math.pi, 0.0)


def default_model(**kw) -> OrbitModel:
    return OrbitModel(OrbitParams(**kw), EPOCH.timestamp())


# ---- time and Sun ------------------------------------------------------------------------------
def test_julian_date_and_sidereal_time_match_meeus_examples():
    assert unix_to_jd(0.0) == 2440587.5
    # Meeus examples 12.a and 12.b: 1987-04-10 0h UT and 19:21 UT.
    for dt, hms in ((datetime(1987, 4, 10, tzinfo=timezone.utc), (13, 10, 46.3668)),
                    (datetime(1987, 4, 10, 19, 21, tzinfo=timezone.utc), (8, 34, 57.0896))):
        want = math.radians(15 * (hms[0] + hms[1] / 60 + hms[2] / 3600))
        assert float(gmst_rad(unix_to_jd(dt.timestamp()))) == pytest.approx(want, abs=1e-7)


def test_sun_matches_meeus_example_25a():
    jd = 2448908.5                          # 1992-10-13 0h TD
    ra, dec = math.radians(198.38083), math.radians(-7.78507)
    want = np.array([math.cos(dec) * math.cos(ra), math.cos(dec) * math.sin(ra), math.sin(dec)])
    u = sun_unit_eci(np.array([jd]))[0]
    assert np.linalg.norm(u) == pytest.approx(1.0, abs=1e-12)
    assert math.degrees(math.acos(min(1.0, float(u @ want)))) < 0.01
    assert float(sun_distance_m(jd)) / AU == pytest.approx(0.99766, abs=1e-4)


def test_sun_follows_meeus_over_a_year():
    jd = jd_of(EPOCH) + np.arange(0, 366, 7.3)
    _, _, ra, dec, _, r_au = meeus_sun(jd)
    ra, dec = np.radians(ra), np.radians(dec)
    want = np.stack([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)], axis=-1)
    err_deg = np.degrees(np.arccos(np.clip(np.sum(sun_unit_eci(jd) * want, axis=-1), -1, 1)))
    assert err_deg.max() < 0.01
    assert np.abs(sun_distance_m(jd) / AU - r_au).max() < 1e-4


# ---- orbit geometry ----------------------------------------------------------------------------
def test_inclination_and_period_from_first_principles():
    m = default_model()
    assert m.inclination_rad.shape == (1,) and m.period_s.shape == (1,)
    assert m.inclination_rad[0] == pytest.approx(sso_incl_ref(), abs=1e-9)
    assert float(sso_inclination_rad(H)) == pytest.approx(sso_incl_ref(), abs=1e-9)
    assert math.degrees(m.inclination_rad[0]) == pytest.approx(97.99, abs=0.01)
    assert m.period_s[0] == pytest.approx(period_ref(), rel=1e-9)
    assert m.period_s[0] / 60 == pytest.approx(97.7, abs=0.05)

    # The positions themselves: circular, and successive ascending nodes one period apart.
    t = np.arange(0.0, 2 * DAY, 5.0)
    r = m.state(t).r_eci_m[:, 0]
    assert np.allclose(np.linalg.norm(r, axis=-1), A, rtol=1e-12)
    z = r[:, 2]
    k = np.flatnonzero((z[:-1] < 0) & (z[1:] >= 0))
    t_up = t[k] - z[k] * (t[k + 1] - t[k]) / (z[k + 1] - z[k])
    assert np.diff(t_up) == pytest.approx(period_ref(), abs=0.1)


def test_node_drifts_one_turn_per_tropical_year():
    m = default_model()
    t = np.array([0.0, 10.0, YEAR_S / 4, YEAR_S / 4 + 10.0])
    r = m.state(t).r_eci_m[:, 0]
    h0, h1 = np.cross(r[0], r[1]), np.cross(r[2], r[3])
    node = [math.atan2(h[0], -h[1]) for h in (h0, h1)]
    assert math.degrees((node[1] - node[0]) % (2 * math.pi)) == pytest.approx(90.0, abs=0.01)
    # The chord's normal also carries the node drift (~rate/n = 2e-4 rad); the peak latitude does not.
    assert math.acos(h0[2] / np.linalg.norm(h0)) == pytest.approx(sso_incl_ref(), abs=5e-4)
    r_top = default_model(phase_deg=90.0).state(np.zeros(1)).r_eci_m[0, 0]
    assert r_top[2] / A == pytest.approx(math.sin(sso_incl_ref()), abs=1e-12)


@pytest.mark.parametrize("when, ltan", [
    (datetime(2027, 1, 1, tzinfo=timezone.utc), 18.0),
    (datetime(2027, 4, 15, 6, 30, tzinfo=timezone.utc), 18.0),
    (datetime(2027, 8, 10, 17, 45, tzinfo=timezone.utc), 18.0),
    (datetime(2027, 11, 3, 12, tzinfo=timezone.utc), 6.0),
    (datetime(2027, 2, 11, 21, 5, tzinfo=timezone.utc), 10.5),
])
def test_ascending_node_local_time_at_epoch(when, ltan):
    m = OrbitModel(OrbitParams(ltan_hours=ltan), when.timestamp())
    r = m.state(np.array([0.0, 1.0])).r_eci_m[:, 0]
    assert abs(r[0, 2]) < 1e-6 and r[1, 2] > 0          # phase 0: at the ascending node, going north
    node_ra = math.degrees(math.atan2(r[0, 1], r[0, 0]))
    ut_h = when.hour + when.minute / 60
    lon = node_ra - float(meeus_gmst_deg(jd_of(when)))
    local_mean_h = (ut_h + lon / 15.0) % 24.0
    assert (local_mean_h - ltan + 12) % 24 - 12 == pytest.approx(0.0, abs=0.005)   # 18 s
    # Against the apparent Sun the node's local time differs by the equation of time.
    _, _, sun_ra, _, l0, _ = meeus_sun(jd_of(when))
    eot_h = ((l0 - 0.0057183 - sun_ra + 180) % 360 - 180) / 15.0
    local_apparent_h = (12.0 + (node_ra - sun_ra) / 15.0) % 24.0
    assert (local_apparent_h - ltan - eot_h + 12) % 24 - 12 == pytest.approx(0.0, abs=0.005)


def test_beta_angle_matches_closed_form():
    m = default_model()
    dates = [datetime(2027, mo, d, 12, tzinfo=timezone.utc) for mo, d in ((3, 21), (6, 21), (9, 23), (12, 21))]
    t = np.array([t_since_epoch(d) for d in dates])
    want = beta_ref(t, raan_for_ltan(EPOCH, 18.0))
    got = m.state(t).beta_rad[:, 0]
    assert np.degrees(np.abs(got - want)).max() < 0.03
    assert math.degrees(got[1]) == pytest.approx(58.5, abs=0.5)   # June solstice: the lowest beta


@pytest.mark.parametrize("day", [datetime(2027, 6, 1, tzinfo=timezone.utc),
                                 datetime(2027, 6, 21, tzinfo=timezone.utc),
                                 datetime(2027, 7, 10, tzinfo=timezone.utc)])
def test_eclipse_duration_matches_cylindrical_shadow(day):
    t0 = t_since_epoch(day)
    beta = float(beta_ref(t0 + period_ref() / 2, raan_for_ltan(EPOCH, 18.0)))
    assert abs(beta) < math.asin(RE / A) - math.radians(1)          # a date with a real eclipse
    t = t0 + np.arange(0.0, period_ref(), 1.0)
    eclipse_s = np.count_nonzero(default_model().state(t).sun_fraction[:, 0] < 0.5) * 1.0
    want_s = float(eclipse_fraction_cyl(beta)) * period_ref()
    assert want_s > 300
    assert eclipse_s == pytest.approx(want_s, abs=10.0)


def test_yearly_sunlit_fraction_and_eclipse_season():
    m = default_model()
    t = np.arange(0.0, 365 * DAY, 60.0)
    frac = m.state(t).sun_fraction[:, 0]
    t_ref = np.arange(0.0, 365 * DAY, 3600.0)
    sunlit_ref = 1.0 - float(np.mean(eclipse_fraction_cyl(beta_ref(t_ref, raan_for_ltan(EPOCH, 18.0)))))
    assert frac.mean() == pytest.approx(0.96, abs=0.01)
    assert frac.mean() == pytest.approx(sunlit_ref, abs=0.003)

    eclipse_days = np.flatnonzero((frac.reshape(365, -1) < 0.5).any(axis=1))
    beta_daily = np.abs(beta_ref(t_ref, raan_for_ltan(EPOCH, 18.0))).reshape(365, 24)
    want_days = np.flatnonzero((beta_daily < math.asin(RE / A)).any(axis=1))
    assert 75 <= eclipse_days.size <= 110
    assert abs(eclipse_days.size - want_days.size) <= 2
    june21, dec21 = datetime(2027, 6, 21, tzinfo=timezone.utc), datetime(2027, 12, 21, tzinfo=timezone.utc)
    assert (june21 - EPOCH).days in eclipse_days and (dec21 - EPOCH).days not in eclipse_days
    one_orbit = np.arange(0.0, period_ref(), 2.0)
    assert m.state(t_since_epoch(june21) + one_orbit).sun_fraction.min() == 0.0
    assert m.state(t_since_epoch(dec21) + one_orbit).sun_fraction.min() == 1.0


# ---- shadow ------------------------------------------------------------------------------------
def ray_cast_fraction(r, sun_unit, n_grid=301):
    """Fraction of a uniform grid over the solar disk whose rays from r miss the Earth sphere."""
    to_sun = AU * sun_unit - r
    d0 = to_sun / np.linalg.norm(to_sun)
    alpha = math.asin(R_SUN / np.linalg.norm(to_sun))
    e1 = np.cross(d0, [0.0, 0.0, 1.0]) if abs(d0[2]) < 0.9 else np.cross(d0, [1.0, 0.0, 0.0])
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(d0, e1)
    g = np.linspace(-1, 1, n_grid)
    x, y = np.meshgrid(g, g)
    inside = x**2 + y**2 <= 1
    d = d0 + math.tan(alpha) * (x[inside, None] * e1 + y[inside, None] * e2)
    d /= np.linalg.norm(d, axis=-1, keepdims=True)
    s = -(d @ r)                                    # distance along the ray to closest approach
    miss = np.linalg.norm(r + s[:, None] * d, axis=-1)
    blocked = (s > 0) & (miss < RE)
    return 1.0 - blocked.mean()


def test_penumbra_overlap_matches_ray_casting():
    sun = np.array([1.0, 0.0, 0.0])
    theta_edge = math.pi - math.asin(RE / A)          # cylinder edge on the night side
    for d_deg in np.linspace(-0.45, 0.45, 13):
        th = theta_edge + math.radians(d_deg)
        r = A * np.array([math.cos(th), math.sin(th), 0.0])
        got = float(illumination_fraction(r, sun))
        assert got == pytest.approx(ray_cast_fraction(r, sun), abs=0.01), d_deg


def test_penumbra_transition_duration():
    m = default_model()
    t0 = t_since_epoch(datetime(2027, 6, 21, tzinfo=timezone.utc))
    coarse_t = t0 + np.arange(0.0, period_ref(), 1.0)
    f = m.state(coarse_t).sun_fraction[:, 0]
    k = np.flatnonzero((f[:-1] >= 0.5) & (f[1:] < 0.5))[0]
    fine_t = coarse_t[k] + np.arange(-60.0, 60.0, 0.05)
    fine = m.state(fine_t).sun_fraction[:, 0]
    partial = (fine > 0.0) & (fine < 1.0)
    assert np.all(np.diff(fine) <= 1e-12)              # entering: monotonic decrease
    assert np.any((fine > 0.2) & (fine < 0.8))
    # Geometry: penumbra thickness 2 L alpha_sun at L = sqrt(a^2 - Re^2) behind the terminator,
    # crossed at the rate the distance from the shadow axis shrinks (u from the sub-solar point).
    beta = float(beta_ref(coarse_t[k], raan_for_ltan(EPOCH, 18.0)))
    length = math.sqrt(A**2 - RE**2)
    cos_u = -length / (A * math.cos(beta))
    sin_u = math.sqrt(1 - cos_u**2)
    rate = A**2 * math.sqrt(MU / A**3) * abs(cos_u) * sin_u * math.cos(beta) ** 2 / RE
    want_s = 2 * length * R_SUN / AU / rate
    assert partial.sum() * 0.05 == pytest.approx(want_s, rel=0.15)
    assert 5.0 < partial.sum() * 0.05 < 35.0


@settings(max_examples=200, deadline=None)
@given(st.floats(6.6e6, 4.2e7), st.floats(-1, 1), st.floats(0, 2 * math.pi),
       st.floats(-1, 1), st.floats(0, 2 * math.pi))
def test_illumination_bounds(radius, z, lon, sz, slon):
    r = radius * np.array([math.sqrt(1 - z * z) * math.cos(lon), math.sqrt(1 - z * z) * math.sin(lon), z])
    sun = np.array([math.sqrt(1 - sz * sz) * math.cos(slon), math.sqrt(1 - sz * sz) * math.sin(slon), sz])
    f = float(illumination_fraction(r, sun))
    assert 0.0 <= f <= 1.0
    along = float(r @ sun)
    off_axis = float(np.linalg.norm(r - along * sun))
    if along >= 0:
        assert f == 1.0
    elif off_axis < RE - 0.02 * abs(along) - 1e3:       # well inside the umbra cone
        assert f == 0.0
    elif off_axis > RE + 0.02 * abs(along) + 1e3:       # well outside the penumbra cone
        assert f == 1.0


# ---- TLE ---------------------------------------------------------------------------------------
def tle_checksum(line: str) -> str:
    return str(sum(int(c) if c.isdigit() else c == "-" for c in line) % 10)


def make_tle(epoch: datetime, incl_deg, raan_deg, revs_per_day):
    doy = (epoch - datetime(epoch.year, 1, 1, tzinfo=timezone.utc)).total_seconds() / DAY + 1
    l1 = f"1 99999U 27001A   {epoch.year % 100:02d}{doy:012.8f}  .00000000  00000-0  00000-0 0  999"
    l2 = f"2 99999 {incl_deg:8.4f} {raan_deg:8.4f} 0001000   0.0000   0.0000 {revs_per_day:11.8f}    1"
    l1, l2 = l1 + tle_checksum(l1), l2 + tle_checksum(l2)
    assert len(l1) == len(l2) == 69
    return l1, l2


def sso_tle(epoch):
    raan = math.degrees(raan_for_ltan(epoch, 18.0)) % 360
    return make_tle(epoch, math.degrees(sso_incl_ref()), raan, DAY / period_ref()), math.radians(raan)


def test_tle_propagation_is_a_plausible_dawn_dusk_orbit():
    june21 = datetime(2027, 6, 21, tzinfo=timezone.utc)
    (l1, l2), raan = sso_tle(june21)
    m = OrbitModel(OrbitParams(tle_line1=l1, tle_line2=l2), june21.timestamp())
    assert m.inclination_rad[0] == pytest.approx(sso_incl_ref(), abs=1e-5)
    assert m.period_s[0] == pytest.approx(period_ref(), rel=1e-6)
    t = np.arange(0.0, period_ref(), 1.0)
    s = m.state(t)
    assert s.r_eci_m.shape == (t.size, 1, 3)
    alt = np.linalg.norm(s.r_eci_m[:, 0], axis=-1) - RE
    assert alt.min() > H - 25e3 and alt.max() < H + 25e3     # J2 short-period terms are ~10 km
    # Beta from the mean elements, relative to the TLE's own epoch.
    g, eps, *_ = meeus_sun(jd_of(june21) + t / DAY)
    o = raan + 2 * math.pi / YEAR_S * t
    i = sso_incl_ref()
    want_beta = np.arcsin(np.cos(g) * np.sin(o) * math.sin(i) - np.sin(g) * np.cos(eps) * np.cos(o) * math.sin(i)
                          + np.sin(g) * np.sin(eps) * math.cos(i))
    assert np.degrees(np.abs(s.beta_rad[:, 0] - want_beta)).max() < 0.3
    eclipse_s = np.count_nonzero(s.sun_fraction[:, 0] < 0.5)
    assert eclipse_s == pytest.approx(float(eclipse_fraction_cyl(want_beta.mean())) * period_ref(), abs=30)


def _fixed(line: str, pos: int, text: str) -> str:
    line = line[:pos] + text + line[pos + len(text):]
    return line[:68] + tle_checksum(line[:68])


@pytest.mark.parametrize("edit, key, words", [
    (lambda l1, l2: (l1, _fixed(l2, 8, " 9x.9900")), "tle_line2", "inclination"),
    (lambda l1, l2: (l1, l2[:68] + str((int(l2[68]) + 1) % 10)), "tle_line2", "checksum"),
    (lambda l1, l2: (l1[:60], l2), "tle_line1", "69 characters"),
    (lambda l1, l2: (l1, ""), "tle_line2", "both lines"),
    (lambda l1, l2: (_fixed(l1, 20, "abc"), l2), "tle_line1", "epoch day"),
    (lambda l1, l2: (l1, _fixed(l2, 2, "12345")), "tle_line2", "satellite number"),
])
def test_bad_tle_raises_value_error_naming_the_problem(edit, key, words):
    l1, l2 = edit(*sso_tle(datetime(2027, 6, 21, tzinfo=timezone.utc))[0])
    with pytest.raises(ValueError, match=words) as info:
        OrbitModel(OrbitParams(tle_line1=l1, tle_line2=l2), EPOCH.timestamp())
    assert key in str(info.value)


# ---- several satellites ------------------------------------------------------------------------
def test_satellites_are_an_array_axis():
    m = OrbitModel([OrbitParams(phase_deg=0.0), OrbitParams(phase_deg=90.0)], EPOCH.timestamp())
    assert m.n_sat == 2 and m.inclination_rad.shape == (2,) and m.period_s.shape == (2,)
    t = np.arange(0.0, 6000.0, 30.0)
    s = m.state(t)
    assert s.r_eci_m.shape == (t.size, 2, 3)
    for name in ("sun_fraction", "irradiance_w_m2", "beta_rad", "albedo_factor"):
        assert getattr(s, name).shape == (t.size, 2), name
    assert s.sun_unit_eci.shape == (t.size, 3) and s.gmst_rad.shape == (t.size,)
    cos_sep = np.sum(s.r_eci_m[:, 0] * s.r_eci_m[:, 1], axis=-1) / A**2
    assert np.abs(cos_sep).max() < 1e-9                       # a quarter orbit apart, always
    assert np.allclose(s.beta_rad[:, 0], s.beta_rad[:, 1])     # same plane

    # Irradiance and albedo factor follow their definitions.
    d = np.asarray(sun_distance_m(unix_to_jd(EPOCH.timestamp() + t)))
    assert np.allclose(s.irradiance_w_m2, 1361.0 * (AU / d[:, None]) ** 2 * s.sun_fraction)
    cos_z = np.einsum("tsk,tk->ts", s.r_eci_m, s.sun_unit_eci) / A
    assert np.allclose(s.albedo_factor, np.maximum(cos_z, 0.0))
    assert s.albedo_factor.min() == 0.0 and s.albedo_factor.max() > 0.1


def test_circular_and_tle_satellites_mix():
    june21 = datetime(2027, 6, 21, tzinfo=timezone.utc)
    (l1, l2), _ = sso_tle(june21)
    tle = OrbitParams(tle_line1=l1, tle_line2=l2)
    mixed = OrbitModel([OrbitParams(), tle, OrbitParams(phase_deg=45.0)], june21.timestamp())
    t = np.arange(0.0, 3000.0, 10.0)
    s = mixed.state(t)
    assert s.r_eci_m.shape == (t.size, 3, 3)
    alone = OrbitModel(tle, june21.timestamp()).state(t)
    assert np.array_equal(s.r_eci_m[:, 1], alone.r_eci_m[:, 0])
    assert np.array_equal(s.sun_fraction[:, 1], alone.sun_fraction[:, 0])
    assert np.allclose(np.linalg.norm(s.r_eci_m[:, [0, 2]], axis=-1), A, rtol=1e-12)


def test_tle_that_decays_mid_run_raises_naming_the_time():
    june21 = datetime(2027, 6, 21, tzinfo=timezone.utc)
    (l1, l2), _ = sso_tle(june21)
    m = OrbitModel(OrbitParams(tle_line1=_fixed(l1, 53, " 50000-0"), tle_line2=l2), june21.timestamp())
    m.state(np.arange(0.0, DAY, 60.0))                                  # still flying on day one
    with pytest.raises(ValueError, match="decayed"):
        m.state(np.arange(0.0, 60 * DAY, 600.0))                        # B* = 0.5: down within weeks
