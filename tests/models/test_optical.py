"""Optical links: state machine, load, spacing and received power."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from twin.hal.channels import ISL_ACQUIRING, ISL_DOWN, ISL_UP
from twin.models.optical import LINK_ACQUIRING, LINK_DOWN, LINK_UP, RX_DBM_NO_SIGNAL, OpticalLinkModel, OpticalParams

PERIOD = 5862.0
ON4 = np.ones((1, 4), dtype=bool)


def run(model, n_steps, dt, enable, powered, failed=None, t0=0.0):
    out = []
    for i in range(1, n_steps + 1):
        out.append(model.step(t0 + i * dt, dt, enable, powered, failed))
    return out


@pytest.mark.parametrize("acq, dt, steps_to_up", [(20.0, 1.0, 20), (20.0, 0.1, 200), (20.0, 3.0, 7), (0.0, 1.0, 1)])
def test_acquisition_timing(acq, dt, steps_to_up):
    model = OpticalLinkModel(OpticalParams(acquisition_s=acq), n_sat=1, period_s=PERIOD)
    states = np.array([s[0, 0] for s, _, _ in run(model, steps_to_up + 5, dt, ON4, np.array([True]))])
    want = np.array([1] * (steps_to_up - 1) + [2] * 6)
    np.testing.assert_array_equal(states, want)


def test_drops_on_disable_unpowered_and_failure_then_reacquires():
    p = OpticalParams(acquisition_s=5.0)
    model = OpticalLinkModel(p, n_sat=1, period_s=PERIOD)
    powered = np.array([True])
    run(model, 5, 1.0, ON4, powered)
    assert model.state.tolist() == [[2, 2, 2, 2]]
    enable = ON4.copy()
    enable[0, 1] = False
    failed = np.array([[False, False, True, False]])
    state, rx, power = model.step(6.0, 1.0, enable, powered, failed)
    assert state.tolist() == [[2, 0, 0, 2]]
    assert rx[0, 1] == rx[0, 2] == RX_DBM_NO_SIGNAL and rx[0, 0] > RX_DBM_NO_SIGNAL
    # A failed but enabled terminal keeps drawing standby power; a disabled one draws nothing.
    assert power.tolist() == [[p.power_per_link_w, 0.0, p.standby_power_w, p.power_per_link_w]]
    state, rx, power = model.step(7.0, 1.0, ON4, np.array([False]))
    assert state.tolist() == [[0, 0, 0, 0]] and power.sum() == 0.0 and (rx == RX_DBM_NO_SIGNAL).all()
    # Back on: acquisition starts over.
    states = [s[0, 0] for s, _, _ in run(model, 6, 1.0, ON4, powered, t0=7.0)]
    assert states == [1, 1, 1, 1, 2, 2]


def test_power_accounting_over_satellites():
    p = OpticalParams(power_per_link_w=55.0, standby_power_w=12.0, acquisition_s=3.0)
    model = OpticalLinkModel(p, n_sat=3, period_s=PERIOD)
    enable = np.array([[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]], dtype=bool)
    powered = np.array([True, True, False])
    for i in range(1, 3):
        _, _, power = model.step(float(i), 1.0, enable, powered)
    # acquiring: 2 + 4 links on the powered satellites, none on the unpowered one
    np.testing.assert_allclose(power.sum(axis=1), [2 * 12.0, 4 * 12.0, 0.0])
    enable2 = enable.copy()
    enable2[1, 3] = False  # re-enabled later: acquires anew
    state, _, power = model.step(3.0, 1.0, enable2, powered)
    assert state.tolist() == [[2, 2, 0, 0], [2, 2, 2, 0], [0, 0, 0, 0]]
    np.testing.assert_allclose(power.sum(axis=1), [2 * 55.0, 3 * 55.0, 0.0])
    state, _, power = model.step(4.0, 1.0, enable, powered)
    assert state[1].tolist() == [2, 2, 2, 1]
    assert power[1].sum() == pytest.approx(3 * 55.0 + 12.0)


def test_spacing_bounds_and_two_cycles_per_orbit():
    p = OpticalParams(spacing_min_m=90.0, spacing_max_m=210.0)
    model = OpticalLinkModel(p, n_sat=3, period_s=PERIOD)
    t = np.linspace(0.0, PERIOD, 4001)[:-1]
    d = np.stack([model.spacing_m(x) for x in t])  # (n_t, n_sat, n_links)
    assert d.min() >= 90.0 - 1e-9 and d.max() <= 210.0 + 1e-9
    assert d.min() < 90.5 and d.max() > 209.5
    # Two shape cycles per orbit: exactly two maxima per orbit (circularly) on every link.
    is_max = (d > np.roll(d, 1, axis=0)) & (d >= np.roll(d, -1, axis=0))
    assert (is_max.sum(axis=0) == 2).all()
    np.testing.assert_allclose(model.spacing_m(123.0 + PERIOD / 2), model.spacing_m(123.0), atol=1e-9)
    # Distinct phases per link.
    for sat in range(3):
        for i in range(4):
            for j in range(i):
                assert np.abs(d[:, sat, i] - d[:, sat, j]).max() > 10.0


def capture_db(d, w0=0.05, theta=1e-3, a=0.05):
    return 10 * math.log10(1 - math.exp(-2 * a * a / (w0 * w0 + (theta * d) ** 2)))


def test_rx_power_reference_and_monotonic_in_distance():
    model = OpticalLinkModel(OpticalParams(), n_sat=1, period_s=PERIOD)
    d = np.linspace(100.0, 200.0, 101)
    rx = model.rx_dbm_at(d)
    assert rx[50] == pytest.approx(-20.0, abs=1e-9)
    assert (np.diff(rx) < 0).all()
    assert 1.0 < rx[0] - rx[-1] < 10.0
    want = [-20.0 + capture_db(x) - capture_db(150.0) for x in (100.0, 200.0)]
    np.testing.assert_allclose(rx[[0, -1]], want, atol=1e-9)
    flat = OpticalLinkModel(OpticalParams(divergence_urad=10.0), n_sat=1, period_s=PERIOD).rx_dbm_at(d)
    assert np.ptp(flat) < 0.01  # diffraction-limited beam: deep near field, no range dependence


def test_step_reports_rx_of_current_spacing():
    model = OpticalLinkModel(OpticalParams(acquisition_s=1.0), n_sat=2, period_s=PERIOD)
    for t in (1.0, 500.0, 1700.0):
        _, rx, _ = model.step(t, 1.0, np.ones((2, 4), bool), np.array([True, True]))
        d = model.spacing_m(t + 1.0)  # the state at the end of the step
        want = np.vectorize(lambda x: -20.0 + capture_db(x) - capture_db(150.0))(d)
        np.testing.assert_allclose(rx, want, atol=1e-9)


def test_state_codes_match_the_channel_table():
    assert (LINK_DOWN, LINK_ACQUIRING, LINK_UP) == (ISL_DOWN, ISL_ACQUIRING, ISL_UP) == (0, 1, 2)


def test_reset_and_shape_errors():
    model = OpticalLinkModel(OpticalParams(acquisition_s=1.0), n_sat=2, period_s=PERIOD)
    model.step(1.0, 1.0, np.ones((2, 4), bool), np.array([True, True]))
    model.reset()
    assert (model.state == 0).all()
    with pytest.raises(ValueError):
        model.step(2.0, 1.0, np.ones((1, 4), bool), np.array([True, True]))
    with pytest.raises(ValueError):
        OpticalLinkModel(OpticalParams(spacing_min_m=300.0), n_sat=1, period_s=PERIOD)


@settings(deadline=None, max_examples=150)
@given(seq=st.lists(st.tuples(st.tuples(st.booleans(), st.booleans()), st.booleans(),
                              st.tuples(st.booleans(), st.booleans())), min_size=1, max_size=60),
       acq=st.integers(0, 6))
def test_state_machine_matches_reference(seq, acq):
    """Random enable / power / failure sequences against a per-link reference written here."""
    p = OpticalParams(acquisition_s=float(acq), power_per_link_w=7.0, standby_power_w=3.0)
    model = OpticalLinkModel(p, n_sat=1, period_s=PERIOD, n_links=2)
    held = [0, 0]  # whole seconds each link has been continuously active
    for i, (en, pw, fl) in enumerate(seq, start=1):
        state, rx, power = model.step(float(i), 1.0, np.array([en]), np.array([pw]), np.array([fl]))
        for k in range(2):
            active = en[k] and pw and not fl[k]
            held[k] = held[k] + 1 if active else 0
            want_state = 0 if not active else (2 if held[k] >= acq else 1)
            want_power = 0.0 if not (en[k] and pw) else (7.0 if want_state == 2 else 3.0)
            assert state[0, k] == want_state
            assert power[0, k] == want_power
            assert (rx[0, k] > -30.0) if want_state == 2 else (rx[0, k] == RX_DBM_NO_SIGNAL)
