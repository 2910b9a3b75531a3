"""Thermal network: stiffness, accuracy against a fine explicit reference, closed forms, conservation.

References are built here from the parameter fields (capacities, links, surfaces),
independently of the model's matrices.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from twin.models.thermal import NODES, ThermalModel, ThermalParams

SIGMA = 5.670374419e-8
N = len(NODES)
IDX = {name: i for i, name in enumerate(NODES)}
TPU = [IDX[f"tpu{g}"] for g in range(4)]
NO_LINKS = {f.name: 0.0 for f in dataclasses.fields(ThermalParams) if f.name.startswith("g_")}


def reference_network(p: ThermalParams):
    """Capacities, conductance matrix and surface terms written out from the parameter fields."""
    cap = np.array([p.c_tpu_group_j_k] * 4 + [p.c_coldplate_j_k, p.c_radiator_j_k, p.c_battery_j_k,
                                               p.c_avionics_j_k, p.c_structure_j_k, p.c_solar_array_j_k])
    g = np.zeros((N, N))
    pairs = [(f"tpu{k}", "coldplate", p.g_tpu_coldplate_w_k) for k in range(4)] + [
        ("coldplate", "radiator", p.g_coldplate_radiator_w_k),
        ("coldplate", "structure", p.g_coldplate_structure_w_k),
        ("battery", "structure", p.g_battery_structure_w_k), ("avionics", "structure", p.g_avionics_structure_w_k),
        ("structure", "radiator", p.g_structure_radiator_w_k),
        ("structure", "solar_array", p.g_structure_solar_array_w_k)]
    for a, b, w in pairs:
        g[IDX[a], IDX[b]] = g[IDX[b], IDX[a]] = w
    lap = np.diag(g.sum(axis=1)) - g
    eps_a, sun_a, alb_a, ir_a = (np.zeros(N) for _ in range(4))
    for node, pre in [("radiator", "radiator"), ("battery", "battery_radiator"), ("structure", "structure"),
                      ("solar_array", "solar_array")]:
        area, eps, alpha, fs, fe = (getattr(p, f"{pre}_{k}") for k in
                                    ("area_m2", "emissivity", "absorptivity", "sun_fraction", "earth_view"))
        i = IDX[node]
        eps_a[i], sun_a[i] = eps * area, alpha * area * fs
        alb_a[i], ir_a[i] = alpha * area * fe * p.albedo * p.solar_constant_w_m2, eps * area * fe * p.earth_ir_w_m2
    return cap, lap, eps_a, sun_a, alb_a, ir_a


def full_power_q(n_sat=1, tpu_w=6000.0):
    q = np.zeros((n_sat, N))
    q[:, TPU] = tpu_w
    q[:, IDX["avionics"]] = 790.0
    q[:, IDX["battery"]] = 50.0
    q[:, IDX["solar_array"]] = -26000.0
    return q


def test_shapes_reset_and_independent_satellites():
    m = ThermalModel(ThermalParams(), 3)
    assert m.temps_c.shape == (3, N) and np.all(m.temps_c == 20.0)
    m.reset(np.arange(N, dtype=float))
    np.testing.assert_array_equal(m.temps_c, np.broadcast_to(np.arange(N, dtype=float), (3, N)))
    m.reset()
    q = full_power_q(3)
    q[1:] = 0.0
    for _ in range(50):
        out = m.step(q, np.array([1361.0, 0.0, 0.0]), np.array([0.1, 0.0, 0.0]))
    assert out.shape == (3, N) and out is m.temps_c
    np.testing.assert_allclose(out[1], out[2], rtol=1e-13)
    assert np.all(out[0, TPU] > out[1, TPU] + 10.0)


def test_stable_and_quasi_static_with_a_tiny_tpu_mass_at_1_s():
    """A 1 mJ/K TPU group (time constant ~4 us) at dt = 1 s, power toggled every step.

    Explicit Euler would diverge at once (dt * G / C ~ 2.6e5); the model must instead
    show the TPU at cold plate + Q / G after every step.
    """
    p = dataclasses.replace(ThermalParams(), c_tpu_group_j_k=1e-3)
    m = ThermalModel(p, 1, dt_s=1.0)
    q_on, q_off = full_power_q(), full_power_q(tpu_w=0.0)
    for k in range(600):
        q = q_on if k % 2 == 0 else q_off
        t = m.step(q, np.array([1361.0]), np.array([0.1]))[0]
        assert np.all(np.isfinite(t)) and np.all(np.abs(t) < 200.0)
        np.testing.assert_allclose(t[TPU], t[IDX["coldplate"]] + q[0, TPU] / p.g_tpu_coldplate_w_k, atol=0.01)


def test_matches_fine_explicit_euler_through_eclipse_entry_and_exit():
    """300 s: Sun, 10 s penumbra into eclipse, TPUs drop to idle, 10 s penumbra out, Sun.

    The reference integrates the full nonlinear network with explicit Euler at 1 ms and
    the instantaneous inputs; the model gets the same inputs averaged over each 1 s step.
    A stiffer TPU group (C = 200 J/K, time constant 0.8 s) makes it harder.
    """
    p = dataclasses.replace(ThermalParams(), c_tpu_group_j_k=200.0)
    cap, lap, eps_a, sun_a, alb_a, ir_a = reference_network(p)
    t_end, sub = 300, 1000
    h = 1.0 / sub
    t_fine = (np.arange(t_end * sub) + 0.5) * h

    # The penumbrae start and end inside steps, not on their edges.
    frac = np.where(t_fine < 150.0, np.clip((110.3 - t_fine) / 10.0, 0, 1), np.clip((t_fine - 200.7) / 10.0, 0, 1))
    irr_fine, alb_fine = 1361.0 * frac, 0.1 * frac
    tpu_fine = np.where(t_fine < 150.0, 6000.0, 1200.0)  # commands apply at tick edges

    q_base = np.zeros(N)
    q_base[IDX["avionics"]], q_base[IDX["battery"]] = 790.0, 50.0
    tk = np.full(N, 20.0 + 273.15)
    const = q_base + ir_a + eps_a * SIGMA * p.t_space_k ** 4
    ref = np.empty((t_end, N))
    for k in range(t_end * sub):
        q = const + sun_a * irr_fine[k] + alb_a * alb_fine[k]
        q[TPU] += tpu_fine[k]
        q[IDX["solar_array"]] -= 26000.0 * frac[k]
        tk = tk + h * (q - lap @ tk - SIGMA * eps_a * tk ** 4) / cap
        if (k + 1) % sub == 0:
            ref[k // sub] = tk - 273.15

    m = ThermalModel(p, 1, dt_s=1.0)
    got = np.empty((t_end, N))
    for s in range(t_end):
        sl = slice(s * sub, (s + 1) * sub)
        q = q_base.copy()
        q[TPU] += tpu_fine[sl].mean()
        q[IDX["solar_array"]] -= 26000.0 * frac[sl].mean()
        got[s] = m.step(q[None], np.array([irr_fine[sl].mean()]), np.array([alb_fine[sl].mean()]))[0]
    swing = ref.max(axis=0) - ref.min(axis=0)
    assert swing[IDX["solar_array"]] > 10.0 and swing[TPU[0]] > 15.0  # the transients are real
    err = np.max(np.abs(got - ref))
    assert err < 0.05, err


@pytest.mark.parametrize("node", ["radiator", "solar_array", "battery"])
def test_isolated_surface_reaches_the_closed_form_radiative_balance(node):
    p = dataclasses.replace(ThermalParams(), **NO_LINKS, c_radiator_j_k=5000.0, c_solar_array_j_k=5000.0,
                            c_battery_j_k=500.0)
    cap, lap, eps_a, sun_a, alb_a, ir_a = reference_network(p)
    i = IDX[node]
    q_int, irr, af = 3000.0, 1361.0, 0.25
    m = ThermalModel(p, 1)
    q = np.zeros((1, N))
    q[0, i] = q_int
    for _ in range(3000):
        t = m.step(q, np.array([irr]), np.array([af]))[0]
    absorbed = sun_a[i] * irr + alb_a[i] * af + ir_a[i]
    expected = ((q_int + absorbed) / (eps_a[i] * SIGMA) + p.t_space_k ** 4) ** 0.25 - 273.15
    assert t[i] == pytest.approx(expected, abs=1e-6)


@settings(max_examples=60, deadline=None)
@given(q_steps=st.lists(st.lists(st.floats(-2000.0, 8000.0), min_size=N, max_size=N), min_size=1, max_size=25),
       irr=st.floats(0.0, 1400.0), af=st.floats(0.0, 1.0), c_tpu=st.floats(1e-2, 1e4))
def test_energy_is_conserved_without_radiation(q_steps, irr, af, c_tpu):
    """Emissivities 0: sum(C * dT) == sum((Q + absorbed sunlight and albedo) * dt)."""
    no_eps = {f.name: 0.0 for f in dataclasses.fields(ThermalParams) if f.name.endswith("_emissivity")}
    p = dataclasses.replace(ThermalParams(), **no_eps, c_tpu_group_j_k=c_tpu)
    cap, _, _, sun_a, alb_a, _ = reference_network(p)
    m = ThermalModel(p, 2, dt_s=1.0)
    t0 = m.temps_c.copy()
    q = np.array(q_steps)
    for row in q:
        m.step(np.stack([row, -row]), np.array([irr, 0.0]), np.array([af, 0.0]))
    stored = ((m.temps_c - t0) * cap).sum(axis=1)
    absorbed = (sun_a * irr + alb_a * af).sum() * len(q)
    inflow = np.array([q.sum() + absorbed, -q.sum()])
    # round-off scale: the heat flows and the stored energy itself (C * T in K)
    scale = np.abs(q).sum() + absorbed + cap.sum() * 300.0 * len(q)
    np.testing.assert_allclose(stored, inflow, rtol=0, atol=1e-12 * scale)


def test_rejects_a_radiating_node_too_light_for_dt():
    with pytest.raises(ValueError, match="radiator"):
        ThermalModel(dataclasses.replace(ThermalParams(), c_radiator_j_k=10.0), 1, dt_s=1.0)
    ThermalModel(dataclasses.replace(ThermalParams(), c_radiator_j_k=10.0), 1, dt_s=0.001)


def test_default_operating_point_at_full_power_in_sunlight():
    """The 'node' defaults at 24 kW of TPU power, heaters off: the ranges the design aims for."""
    m = ThermalModel(ThermalParams(), 1, dt_s=20.0)
    q = full_power_q()
    for _ in range(15000):  # 3.5 days: the battery's time constant is ~2 h
        t = m.step(q, np.array([1361.0]), np.array([0.1]))[0]
    ranges = {"tpu0": (60, 80), "coldplate": (40, 55), "radiator": (20, 35), "battery": (10, 25),
              "avionics": (10, 40), "solar_array": (50, 80)}
    for node, (lo, hi) in ranges.items():
        assert lo <= t[IDX[node]] <= hi, (node, t[IDX[node]])
