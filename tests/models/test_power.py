"""Power model: array output by hand, battery limits and inhibits, energy conservation."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from twin.models.power import BatteryParams, PowerSystem, SolarArray, SolarArrayParams
from twin.params import ParamError

BP = BatteryParams()
R = BP.r_internal_ohm  # 0.010 ohm


def pack_ocv(soc, bp=BP):
    """Reference pack OCV: linear interpolation of the parameter table, times the series count."""
    return np.interp(soc, bp.ocv_soc, bp.ocv_cell_v) * bp.cells_series


def system(n, soc, bp=BP):
    ps = PowerSystem(SolarArrayParams(), bp, n)
    ps.reset(soc)
    return ps


# -- solar array ---------------------------------------------------------------------------------

def test_array_at_normal_incidence_bol_is_about_28_kw():
    sa = SolarArray(SolarArrayParams(), 1)
    assert sa.available_power_w(np.array([1361.0]), 1.0, 28.0)[0] == pytest.approx(1361 * 105 * 0.22 * 0.9)
    assert 27_000 < 1361 * 105 * 0.22 * 0.9 < 29_000


def test_array_power_matches_hand_calculation():
    sa = SolarArray(SolarArrayParams(years_in_orbit=3.0, strings=20), 4)
    sa.strings_lost = np.array([0, 2, 20, 0])
    cos, temp = np.array([0.9, 0.9, 0.9, 1.0]), np.array([60.0, 60.0, 60.0, -20.0])
    got = sa.available_power_w(np.full(4, 1361.0), cos, temp)
    # 1361 W/m2 * cos 0.9 * 105 m2 * 22 % * 90 %, -0.2 %/C over 32 C, 2 %/year for 3 years.
    hot = 1361 * 0.9 * 105 * 0.22 * 0.9 * (1 - 0.002 * 32) * 0.98 ** 3
    cold = 1361 * 1.0 * 105 * 0.22 * 0.9 * (1 + 0.002 * 48) * 0.98 ** 3
    np.testing.assert_allclose(got, [hot, hot * 18 / 20, 0.0, cold], rtol=1e-12)
    assert hot == pytest.approx(22434.1, abs=0.1)


def test_array_gives_nothing_without_sun_or_from_behind_or_when_too_hot():
    sa = SolarArray(SolarArrayParams(), 3)
    got = sa.available_power_w(np.array([0.0, 1361.0, 1361.0]), np.array([1.0, -0.5, 1.0]),
                               np.array([28.0, 28.0, 600.0]))
    np.testing.assert_array_equal(got, 0.0)


# -- battery table and parameters ----------------------------------------------------------------

def test_ocv_table_is_monotonic_from_2_75_to_4_2_v():
    v = np.asarray(BP.ocv_cell_v)
    assert v[0] == 2.75 and v[-1] == 4.2
    assert np.all(np.diff(v) > 0) and np.all(np.diff(BP.ocv_soc) > 0)


def test_idle_terminal_voltage_is_the_ocv_and_monotonic_in_soc():
    soc = np.linspace(0.0, 1.0, 101)
    ps = system(soc.size, soc)
    s = ps.step(1.0, np.full(soc.size, 3000.0), np.full(soc.size, 3000.0), True, 20.0)
    np.testing.assert_array_equal(s.i_battery_a, 0.0)
    np.testing.assert_allclose(s.v_battery_v, pack_ocv(soc), rtol=1e-12)
    assert np.all(np.diff(s.v_battery_v) > 0)
    assert s.v_battery_v[0] == pytest.approx(66.0) and s.v_battery_v[-1] == pytest.approx(100.8)


@pytest.mark.parametrize("change", [
    dict(ocv_soc=(0.0, 0.5, 1.0), ocv_cell_v=(3.0, 3.9, 3.8)),
    dict(ocv_soc=(0.0, 0.6, 0.5, 1.0), ocv_cell_v=(3.0, 3.5, 3.6, 4.2)),
    dict(ocv_soc=(0.1, 1.0), ocv_cell_v=(3.0, 4.2)),
    dict(ocv_soc=(0.0, 1.0), ocv_cell_v=(3.0, 3.5, 4.2)),
    dict(t_charge_min_c=50.0),
    dict(cell_v_min=4.3),
])
def test_bad_battery_parameters_are_rejected(change):
    with pytest.raises(ParamError):
        BatteryParams(**change)


# -- charging ------------------------------------------------------------------------------------

def test_charge_only_inside_temperature_range_when_enabled_and_not_full():
    temps = np.array([-5.0, 0.0, 20.0, 45.0, 50.0, 20.0, 20.0])
    enable = np.array([True, True, True, True, True, False, True])
    soc = np.array([0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 1.0])
    ps = system(7, soc)
    s = ps.step(1.0, np.full(7, 8000.0), np.full(7, 5000.0), enable, temps)
    charging = np.array([False, True, True, True, False, False, False])
    assert np.all(s.i_battery_a[charging] > 0)
    np.testing.assert_array_equal(s.i_battery_a[~charging], 0.0)
    np.testing.assert_array_equal(s.p_shunt_w[~charging], 3000.0)
    np.testing.assert_allclose(s.p_battery_w[charging], 3000.0, rtol=1e-12)
    np.testing.assert_array_equal(s.p_load_served_w, 5000.0)
    np.testing.assert_array_equal(ps.soc[~charging], soc[~charging])
    assert np.all(ps.soc[charging] > 0.5)
    assert not s.brownout.any()


def test_charge_current_is_limited_and_the_rest_shunted():
    ps = system(1, 0.5)
    s = ps.step(1.0, np.array([30000.0]), np.array([5000.0]), True, np.array([20.0]))
    voc = pack_ocv(0.5)
    assert s.i_battery_a[0] == pytest.approx(BP.max_charge_a)
    assert s.v_battery_v[0] == pytest.approx(voc + 120.0 * R)
    assert s.p_battery_w[0] == pytest.approx((voc + 120.0 * R) * 120.0)
    assert s.p_shunt_w[0] == pytest.approx(25000.0 - (voc + 120.0 * R) * 120.0)
    assert s.i_solar_a[0] == pytest.approx((5000.0 + s.p_battery_w[0]) / s.v_bus_v[0])


def test_charge_current_tapers_at_the_cell_voltage_limit():
    ps = system(1, 0.99)
    s = ps.step(1.0, np.array([30000.0]), np.array([0.0]), True, np.array([20.0]))
    voc = 24 * (4.11 + (4.20 - 4.11) * (0.99 - 0.95) / 0.05)
    assert s.i_battery_a[0] == pytest.approx((24 * 4.2 - voc) / R)   # ~43 A, below the 120 A limit
    assert s.v_battery_v[0] == pytest.approx(100.8)


def test_charging_solves_power_voltage_and_current_together():
    ps = system(1, 0.3)
    s = ps.step(1.0, np.array([7000.0]), np.array([2000.0]), True, np.array([20.0]))
    voc, i = pack_ocv(0.3), s.i_battery_a[0]
    assert (voc + i * R) * i == pytest.approx(5000.0, rel=1e-12)
    assert s.v_bus_v[0] == s.v_battery_v[0] == pytest.approx(voc + i * R)
    # heat: I^2 R plus the 2 % of the OCV-side energy the chemistry does not keep
    assert s.p_loss_w[0] == pytest.approx(i * i * R + 0.02 * voc * i, rel=1e-12)


# -- discharging ---------------------------------------------------------------------------------

def test_discharge_covers_the_deficit_without_brownout():
    ps = system(1, 0.6)
    s = ps.step(1.0, np.array([1000.0]), np.array([6000.0]), True, np.array([20.0]))
    voc, i = pack_ocv(0.6), -s.i_battery_a[0]
    assert (voc - i * R) * i == pytest.approx(5000.0, rel=1e-12)
    assert s.p_load_served_w[0] == pytest.approx(6000.0, rel=1e-12)
    assert s.p_solar_used_w[0] == 1000.0 and not s.brownout[0]
    assert s.p_loss_w[0] == pytest.approx(i * i * R + voc * i * (1 / 0.98 - 1), rel=1e-12)


def test_discharge_current_limit_browns_out():
    ps = system(1, 0.6)
    s = ps.step(1.0, np.array([2000.0]), np.array([60000.0]), True, np.array([20.0]))
    voc = pack_ocv(0.6)
    assert s.i_battery_a[0] == pytest.approx(-BP.max_discharge_a)
    assert s.brownout[0]
    assert s.p_load_served_w[0] == pytest.approx(2000.0 + voc * 400.0 - R * 400.0 ** 2)


@pytest.mark.parametrize("temp", [-25.0, 65.0])
def test_no_discharge_outside_temperature_range(temp):
    ps = system(1, 0.6)
    s = ps.step(1.0, np.array([500.0]), np.array([3000.0]), True, np.array([temp]))
    assert s.i_battery_a[0] == 0.0 and s.brownout[0]
    assert s.p_load_served_w[0] == 500.0 and ps.soc[0] == 0.6


def test_no_discharge_at_cutoff_and_the_last_step_stops_at_cutoff():
    ps = system(2, np.array([BP.soc_cutoff, BP.soc_cutoff + 1e-4]))
    s = ps.step(60.0, np.zeros(2), np.full(2, 6000.0), True, np.full(2, 20.0))
    assert s.brownout.all()
    assert s.i_battery_a[0] == 0.0 and s.p_load_served_w[0] == 0.0
    # 1e-4 of 20 kWh = 7.2 kJ, less than 60 s at 6 kW: the step drains exactly to the cutoff
    assert 0 < s.p_load_served_w[1] < 6000.0
    assert ps.soc[1] == pytest.approx(BP.soc_cutoff, abs=1e-12)


def test_zero_dt_reports_the_operating_point_without_changing_soc():
    ps = system(2, np.array([1.0, 0.5]))
    s = ps.step(0.0, np.array([0.0, 9000.0]), np.array([3000.0, 1000.0]), True, np.full(2, 20.0))
    assert np.all(np.isfinite(s.v_bus_v)) and s.i_battery_a[0] < 0 and s.i_battery_a[1] > 0
    np.testing.assert_array_equal(ps.soc, [1.0, 0.5])


def test_capacity_fade_scales_stored_energy_and_soc_rate():
    bp = dataclasses.replace(BP, capacity_fade_fraction=0.25)
    ps = system(1, 0.8, bp)
    assert ps.stored_energy_wh()[0] == pytest.approx(0.8 * 20000 * 0.75)
    s = ps.step(10.0, np.array([0.0]), np.array([5000.0]), True, np.array([20.0]))
    drawn_j = pack_ocv(0.8) * -s.i_battery_a[0] / 0.98 * 10.0
    assert ps.soc[0] == pytest.approx(0.8 - drawn_j / (20000 * 3600 * 0.75), rel=1e-12)


# -- energy conservation -------------------------------------------------------------------------

sat_inputs = st.tuples(st.floats(0.0, 40000.0), st.floats(0.0, 60000.0), st.booleans(), st.floats(-30.0, 70.0))
step_inputs = st.tuples(st.floats(0.0, 120.0), st.lists(sat_inputs, min_size=3, max_size=3))


@settings(max_examples=200, deadline=None)
@given(profile=st.lists(step_inputs, min_size=1, max_size=60),
       soc0=st.lists(st.floats(0.0, 1.0), min_size=3, max_size=3), fade=st.floats(0.0, 0.5))
def test_energy_is_conserved_over_random_profiles(profile, soc0, fade):
    """sum(solar used) == sum(load served) + delta(stored) + sum(losses), per satellite, in J."""
    bp = dataclasses.replace(BP, capacity_fade_fraction=fade)
    ps = system(3, np.array(soc0), bp)
    e0 = ps.soc * 20000 * 3600 * (1 - fade)
    used = served = loss = np.zeros(3)
    for dt, sats in profile:
        sun, load, enable, temp = (np.array(c) for c in zip(*sats))
        s = ps.step(dt, sun, load, enable, temp)
        used, served, loss = used + s.p_solar_used_w * dt, served + s.p_load_served_w * dt, loss + s.p_loss_w * dt
        assert np.all(s.p_loss_w >= 0) and np.all(s.p_shunt_w >= -1e-9 * (1.0 + sun))
        assert np.all(s.p_load_served_w <= load * (1 + 1e-12))
        assert not np.any((s.p_load_served_w < load * (1 - 1e-9)) & ~s.brownout)
        np.testing.assert_allclose(s.p_solar_used_w, s.p_load_served_w + s.p_battery_w, rtol=1e-12, atol=1e-9)
    e1 = ps.soc * 20000 * 3600 * (1 - fade)
    scale = 1.0 + used + served + loss + e0
    np.testing.assert_allclose(used - served - loss, e1 - e0, rtol=0, atol=1e-12 * scale.max())
    assert np.all((ps.soc >= 0) & (ps.soc <= 1))
