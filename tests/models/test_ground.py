"""Ground contacts against geometry computed independently in the tests."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from twin.models.ground import DEFAULT_GROUND_STATIONS, GroundContactModel, GroundParams, GroundStation

MU = 3.986004418e14
RE = 6378137.0
ALT = 650e3
A = RE + ALT
INC = math.radians(97.99)
OMEGA_EARTH = 7.2921150e-5
SPHERE = dict(earth_flattening=0.0, earth_radius_m=RE)


def sso_track(days: float, dt: float, raan_deg: float = 30.0, gmst0: float = 0.4):
    """Circular 650 km SSO positions (n_t, 1, 3) in ECI and GMST (n_t,), nodal drift ignored."""
    t = np.arange(0.0, days * 86400.0, dt)
    u = math.sqrt(MU / A**3) * t
    om = math.radians(raan_deg)
    r = A * np.stack([np.cos(u) * math.cos(om) - np.sin(u) * math.cos(INC) * math.sin(om),
                      np.cos(u) * math.sin(om) + np.sin(u) * math.cos(INC) * math.cos(om),
                      np.sin(u) * math.sin(INC)], axis=-1)
    return r[:, None, :], gmst0 + OMEGA_EARTH * t


def station_eci_unit(lat_deg: float, lon_deg: float, gmst: np.ndarray) -> np.ndarray:
    """Unit vector to a point of a spherical Earth, carried into ECI by Earth's rotation."""
    lat, ang = math.radians(lat_deg), math.radians(lon_deg) + gmst
    return np.stack([math.cos(lat) * np.cos(ang), math.cos(lat) * np.sin(ang),
                     np.full_like(ang, math.sin(lat))], axis=-1)


def central_angle_contact(r: np.ndarray, gmst: np.ndarray, lat: float, lon: float, el_min_deg: float):
    """In contact when the Earth central angle station-satellite is below lambda_max."""
    el = math.radians(el_min_deg)
    lam_max = math.acos(RE / A * math.cos(el)) - el
    s = station_eci_unit(lat, lon, gmst)
    cos_ang = np.einsum("tk,tk->t", r[:, 0, :], s) / np.linalg.norm(r[:, 0, :], axis=-1)
    return np.arccos(np.clip(cos_ang, -1, 1)) < lam_max


@pytest.mark.parametrize("lat, lon", [(78.23, 15.41), (40.0, -3.7)])
@pytest.mark.parametrize("el_min", [5.0, 10.0])
def test_contact_matches_central_angle_on_a_sphere(lat, lon, el_min):
    days, dt = 6.0, 10.0
    r, g = sso_track(days, dt)
    model = GroundContactModel(GroundParams(min_elevation_deg=el_min, **SPHERE), [GroundStation("s", lat, lon)])
    got = model.evaluate(r, g).in_contact[:, 0]
    want = central_angle_contact(r, g, lat, lon, el_min)
    assert want.sum() > 100
    # Only samples sitting on the mask boundary (to rounding) may disagree.
    assert np.count_nonzero(got != want) <= 2
    assert got.sum() == pytest.approx(want.sum(), rel=0.01)


def minutes_per_day(cs, el_min_deg: float, dt: float, days: float) -> np.ndarray:
    return np.count_nonzero(cs.elevation_rad[:, 0, :] >= math.radians(el_min_deg), axis=0) * dt / 60.0 / days


@pytest.mark.parametrize("el_min, sval_ref, mid_ref", [(10.0, 87.0, 26.0), (5.0, 128.0, 39.0)])
def test_contact_minutes_plausible_against_reference_table(el_min, sval_ref, mid_ref):
    days, dt = 8.0, 10.0
    r, g = sso_track(days, dt)
    # Eight 40 N stations spread in longitude average out the non-repeating ground track.
    stations = [GroundStation("svalbard", 78.23, 15.41)] + [GroundStation(f"n40_{k}", 40.0, 45.0 * k)
                                                             for k in range(8)]
    cs = GroundContactModel(GroundParams(min_elevation_deg=el_min), stations).evaluate(r, g)
    mins = minutes_per_day(cs, el_min, dt, days)
    assert mins[0] == pytest.approx(sval_ref, rel=0.15)
    assert mins[1:].mean() == pytest.approx(mid_ref, rel=0.15)
    # The union contact flag counts at least the best single station and no more than the sum.
    union = cs.in_contact[:, 0].sum() * dt / 60.0 / days
    assert mins.max() - 1e-9 <= union <= mins.sum() + 1e-9


def geodetic_ecef(lat_deg, lon_deg, h, a=RE, f=1 / 298.257223563):
    lat, lon = math.radians(lat_deg), math.radians(lon_deg)
    e2 = 2 * f - f * f
    n = a / math.sqrt(1 - e2 * math.sin(lat) ** 2)
    pos = np.array([(n + h) * math.cos(lat) * math.cos(lon), (n + h) * math.cos(lat) * math.sin(lon),
                    (n * (1 - e2) + h) * math.sin(lat)])
    up = np.array([math.cos(lat) * math.cos(lon), math.cos(lat) * math.sin(lon), math.sin(lat)])
    return pos, up


def ecef_to_eci(v: np.ndarray, gmst: float) -> np.ndarray:
    c, s = math.cos(gmst), math.sin(gmst)
    return np.array([c * v[0] - s * v[1], s * v[0] + c * v[1], v[2]])


@pytest.mark.parametrize("flattening", [0.0, 1 / 298.257223563])
def test_slant_range_at_zenith_is_altitude(flattening):
    stations = [GroundStation("a", 78.23, 15.41, 500.0), GroundStation("b", -52.94, -70.85, 0.0)]
    heights = np.array([400e3, 650e3, 1200e3])
    gmsts = np.array([0.0, 1.3, 4.0])
    r = np.zeros((len(gmsts), len(heights) * 2, 3))
    for i, g in enumerate(gmsts):
        for j, st_ in enumerate(stations):
            pos, up = geodetic_ecef(st_.lat_deg, st_.lon_deg, st_.alt_m, f=flattening)
            for k, h in enumerate(heights):
                r[i, j * len(heights) + k] = ecef_to_eci(pos + h * up, g)
    cs = GroundContactModel(GroundParams(earth_flattening=flattening), stations).evaluate(r, gmsts)
    want_range = np.tile(heights, 2)
    np.testing.assert_allclose(cs.slant_range_m, np.broadcast_to(want_range, cs.slant_range_m.shape), rtol=1e-9)
    np.testing.assert_array_equal(cs.station, np.broadcast_to(np.repeat([0, 1], 3), cs.station.shape))
    best_el = np.take_along_axis(cs.elevation_rad, cs.station[..., None], axis=-1)[..., 0]
    np.testing.assert_allclose(best_el, math.pi / 2, atol=1e-6)


def test_rate_scales_with_inverse_square_range_and_is_capped():
    p = GroundParams(max_rate_bps=3e9, rate_at_ref_bps=1e9, ref_range_m=1.5e6, **SPHERE)
    heights = np.array([500e3, 900e3, 1.5e6, 3.0e6])
    r = ((RE + heights)[:, None] * np.array([1.0, 0.0, 0.0]))[None]  # over (0 N, 0 E) at gmst 0
    cs = GroundContactModel(p, [GroundStation("eq", 0.0, 0.0)]).evaluate(r, np.zeros(1))
    want = [3e9, 1e9 * (1.5 / 0.9) ** 2, 1e9, 0.25e9]
    np.testing.assert_allclose(cs.rate_bps[0], want, rtol=1e-9)


def test_out_of_contact_fields():
    r = np.array([[[-A, 0.0, 0.0], [A, 0.0, 0.0]]])  # antipode of the station, and over it
    cs = GroundContactModel(GroundParams(**SPHERE), [GroundStation("eq", 0.0, 0.0)]).evaluate(r, np.zeros(1))
    assert cs.in_contact.tolist() == [[False, True]]
    assert cs.station.tolist() == [[-1, 0]]
    assert math.isnan(cs.slant_range_m[0, 0]) and cs.slant_range_m[0, 1] == pytest.approx(ALT)
    assert cs.rate_bps[0, 0] == 0.0 and cs.rate_bps[0, 1] > 0.0
    assert cs.elevation_rad[0, 0, 0] == pytest.approx(-math.pi / 2)


def test_highest_elevation_station_is_chosen():
    stations = [GroundStation("west", 0.0, -5.0), GroundStation("east", 0.0, 4.0), GroundStation("far", 0.0, 90.0)]
    lon = math.radians(3.0)  # 8 deg from "west", 1 deg from "east"
    r = np.array([[[A * math.cos(lon), A * math.sin(lon), 0.0]]])
    cs = GroundContactModel(GroundParams(min_elevation_deg=5.0, **SPHERE), stations).evaluate(r, np.zeros(1))
    assert cs.station[0, 0] == 1
    assert cs.elevation_rad[0, 0, 1] > cs.elevation_rad[0, 0, 0] > math.radians(5.0) > cs.elevation_rad[0, 0, 2]


@settings(deadline=None, max_examples=200)
@given(lat=st.floats(-89.0, 89.0), lon=st.floats(-180.0, 180.0), g=st.floats(0.0, 2 * math.pi),
       x=st.floats(-8e6, 8e6), y=st.floats(-8e6, 8e6), z=st.floats(-8e6, 8e6))
def test_elevation_matches_vector_geometry(lat, lon, g, x, y, z):
    r_eci = np.array([x, y, z])
    pos, up = geodetic_ecef(lat, lon, 0.0, f=0.0)
    rho = r_eci - ecef_to_eci(pos, g)
    rng = np.linalg.norm(rho)
    if rng < 1e3:
        return
    want = math.pi / 2 - math.acos(np.clip(rho @ ecef_to_eci(up, g) / rng, -1, 1))
    cs = GroundContactModel(GroundParams(**SPHERE), [GroundStation("s", lat, lon)]).evaluate(
        r_eci[None, None], np.array([g]))
    assert cs.elevation_rad[0, 0, 0] == pytest.approx(want, abs=1e-6)


def test_default_stations_and_bad_input():
    names = [s.name for s in DEFAULT_GROUND_STATIONS]
    assert len(names) == len(set(names)) >= 5
    assert any(s.lat_deg < -60 for s in DEFAULT_GROUND_STATIONS) and any(s.lat_deg > 75 for s in DEFAULT_GROUND_STATIONS)
    with pytest.raises(ValueError):
        GroundStation("bad", 91.0, 0.0)
    model = GroundContactModel(GroundParams())
    with pytest.raises(ValueError):
        model.evaluate(np.zeros((2, 1, 3)), np.zeros(3))
