"""The fused plant kernel: against a numpy reference written here, energy balances, clusters, determinism.

The reference steps the models through their public methods and books loads,
rails and heat exactly as the plant's docstrings say (the numpy plant this
kernel replaced), so the kernel's glue is checked independently of it.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from twin.hal import HEATER_ZONES, RAILS
from twin.models.loads import tpu_group_power_w
from twin.models.optical import OpticalLinkModel
from twin.models.power import PowerSystem
from twin.models.radiation import RadiationParams
from twin.models.thermal import NODES, ThermalModel
from twin.scenarios import load_scenario
from twin.sim.plant import Plant, _tick

NODE = {name: i for i, name in enumerate(NODES)}
RAIL = {name: i for i, name in enumerate(RAILS)}
TPU = [NODE[f"tpu{g}"] for g in range(4)]
NO_SEU = RadiationParams(rate_multiplier=0.0)


def scenario(n_sat: int = 1, **changes):
    sc = load_scenario("node")
    sc = dataclasses.replace(sc, **changes)
    return dataclasses.replace(sc, orbit=(sc.orbit,) * n_sat) if n_sat > 1 else sc


def drive(plant: Plant, k: int, tpu_from: int = 5) -> None:
    """A busy command schedule (a function of the tick only), broadcast over satellites."""
    act = plant.act
    act.switch_tpu[:] = k >= tpu_from
    act.switch_optical[:] = k >= 20
    act.tpu_cap[:] = [1.0, 0.7, 0.4, 0.1] if k < 2000 else 0.5
    act.isl_enable[:] = [True, True, k % 600 < 300, False]
    act.heater_duty[:] = [0.5, 0.25] if k % 900 < 450 else [0.0, 1.0]
    act.downlink[:] = k % 1200 < 400
    act.charge_enable[:] = k % 1500 < 1200
    plant.heater_fault[:, HEATER_ZONES.index("avionics")] = 1 if 700 <= k < 800 else 0
    plant.isl_failed[:, 1] = 1000 <= k < 1100


class ReferencePlant:
    """The plant's tick written with numpy over the models' public methods."""

    def __init__(self, sc, plant: Plant):
        self.sc, self.plant, n = sc, plant, plant.n_sat
        self.power = PowerSystem(sc.solar, sc.battery, n)
        self.thermal = ThermalModel(sc.thermal, n, plant.dt_s)
        self.optical = OpticalLinkModel(sc.optical, n, float(plant.orbit.period_s[0]))
        self.uvlo = np.zeros(n, bool)

    def step(self, k: int, i: int) -> dict:
        sc, p, dt = self.sc, self.plant, self.plant.dt_s
        act = p.act
        irr, albedo = p.env_irr_step[i], p.env_albedo_step[i]
        tpu_on, opt_on = act.switch_tpu & ~self.uvlo, act.switch_optical & ~self.uvlo
        p_tpu = tpu_group_power_w(sc.tpu, p.radiation.online, act.tpu_cap, tpu_on)
        state, rx, isl_w = self.optical.step(k * dt, dt, act.isl_enable, opt_on, p.isl_failed)
        duty = np.where(p.heater_fault == 0, act.heater_duty, (p.heater_fault > 0).astype(float))
        heater_w = np.array([getattr(sc.loads, f"heater_{z}_w") for z in HEATER_ZONES])
        p_heat = dict(zip(HEATER_ZONES, (duty * heater_w).T))
        rails = np.zeros((p.n_sat, len(RAILS)))
        rails[:, RAIL["avionics"]] = sc.loads.avionics_w
        rails[:, RAIL["tpu"]] = p_tpu.sum(axis=1)
        rails[:, RAIL["optical"]] = isl_w.sum(axis=1)
        rails[:, RAIL["downlink"]] = act.downlink * sc.loads.downlink_w
        rails[:, RAIL["heater_battery"]] = p_heat["battery"]
        rails[:, RAIL["heater_avionics"]] = p_heat["avionics"]
        p_load = rails.sum(axis=1)
        t = self.thermal.temps_c
        p_avail = self.power.solar.available_power_w(irr, 1.0, t[:, NODE["solar_array"]])
        ps = self.power.step(dt, p_avail, p_load, act.charge_enable, t[:, NODE["battery"]])
        self.uvlo |= ps.brownout
        served = np.where(p_load > 0, ps.p_load_served_w / np.maximum(p_load, 1e-9), 1.0)
        q = np.zeros((p.n_sat, len(NODES)))
        q[:, TPU] = p_tpu * served[:, None]
        q[:, NODE["avionics"]] = (rails[:, RAIL["avionics"]] + rails[:, RAIL["downlink"]]
                                  + p_heat["avionics"]) * served
        q[:, NODE["structure"]] = rails[:, RAIL["optical"]] * served
        q[:, NODE["battery"]] = p_heat["battery"] * served + ps.p_loss_w
        q[:, NODE["solar_array"]] = -ps.p_solar_used_w
        temps = self.thermal.step(q, irr, albedo)
        return {"temps": temps.copy(), "soc": self.power.soc.copy(), "rails": rails * served[:, None],
                "isl_state": state, "isl_rx": rx, "uvlo": self.uvlo.copy(),
                **{f: np.array(getattr(ps, f)) for f in ("v_bus_v", "i_battery_a", "i_solar_a", "p_solar_used_w",
                                                         "p_shunt_w", "p_load_served_w", "p_loss_w", "brownout")}}


def truth(plant: Plant) -> dict:
    ps = plant.truth_power
    return {"temps": plant.thermal.temps_c.copy(), "soc": plant.power.soc.copy(), "rails": plant.truth_rails_w.copy(),
            "isl_state": plant._isl[0].copy(), "isl_rx": plant._isl[1].copy(), "uvlo": plant.uvlo_latched.copy(),
            **{f: np.array(getattr(ps, f)) for f in ("v_bus_v", "i_battery_a", "i_solar_a", "p_solar_used_w",
                                                     "p_shunt_w", "p_load_served_w", "p_loss_w", "brownout")}}


def run(plant: Plant, n_steps: int, tpu_from: int = 5):
    """Step with :func:`drive`; yield ``(k, i)`` after each step (``i``: env index of the step)."""
    for k in range(n_steps):
        drive(plant, k, tpu_from)
        i = plant._env(k)
        plant.step()
        yield k, i


@pytest.mark.parametrize("case", ["busy_hour", "dark_brownout"])
def test_kernel_matches_the_numpy_reference(case):
    if case == "busy_hour":
        sc, n_steps, tpu_from = scenario(radiation=NO_SEU), 3600, 5
    else:  # no array, battery just above cutoff: brownout (~tick 90, links up), undervoltage latch
        sc = scenario(radiation=NO_SEU, battery=dataclasses.replace(load_scenario("node").battery, initial_soc=0.051))
        n_steps, tpu_from = 300, 200
    plant = Plant(sc, np.random.default_rng(1))
    ref = ReferencePlant(sc, plant)
    if case == "dark_brownout":
        plant.solar.strings_lost[:] = sc.solar.strings  # the fault hook reaches the power system
        ref.power.solar.strings_lost[:] = sc.solar.strings
    latched = partly_served = 0
    for k, i in run(plant, n_steps, tpu_from):
        want, got = ref.step(k, i), truth(plant)
        partly_served += int(0 < got["p_load_served_w"][0] and got["brownout"][0] and got["isl_state"][0, 0] == 2)
        for name, w in want.items():
            if w.dtype.kind in "bi":
                np.testing.assert_array_equal(got[name], w, err_msg=f"{name} at tick {k}")
            else:
                np.testing.assert_allclose(got[name], w, rtol=1e-12, atol=1e-9, err_msg=f"{name} at tick {k}")
        latched += int(got["uvlo"][0])
    if case == "dark_brownout":
        assert plant.truth_power.p_solar_used_w[0] == 0.0 and latched > 100 and partly_served == 1
    else:
        assert latched == 0 and plant.power.soc[0] != sc.battery.initial_soc


def test_electrical_energy_balance_over_an_hour():
    """Per satellite: solar used = loads served + delta stored + losses, and served = sum of the rails."""
    sc = scenario(radiation=NO_SEU)
    plant = Plant(sc, np.random.default_rng(1))
    cap_j = sc.battery.capacity_wh * 3600.0 * (1.0 - plant.power.capacity_fade)
    e0 = plant.power.soc * cap_j
    used = served = loss = 0.0
    dt = plant.dt_s
    in_sun = 0
    for _ in run(plant, 3600):
        ps = plant.truth_power
        used, served, loss = used + ps.p_solar_used_w * dt, served + ps.p_load_served_w * dt, loss + ps.p_loss_w * dt
        np.testing.assert_allclose(plant.truth_rails_w.sum(axis=1), ps.p_load_served_w, rtol=1e-12)
        assert np.all(ps.p_shunt_w >= -1e-6) and np.all(ps.p_loss_w >= 0)
        in_sun += int(ps.p_solar_used_w[0] > 0)
    e1 = plant.power.soc * cap_j
    scale = used + served + loss + e0
    np.testing.assert_allclose(used - served - loss, e1 - e0, rtol=0, atol=1e-12 * scale.max())
    assert 0 < in_sun and abs(e1 - e0)[0] > 1e5  # the battery really worked


def test_thermal_energy_balance_without_radiation():
    """Emissivities 0: the heat stored equals the sunlight and albedo absorbed minus the chemical energy stored.

    Every watt served to a load ends up as heat on its node, battery losses on the
    battery, and what the array delivers leaves the array node: the net heat input of
    the network per tick is ``sum(rails served) + p_loss - p_solar_used``.
    """
    base = load_scenario("node").thermal
    no_eps = {f.name: 0.0 for f in dataclasses.fields(base) if f.name.endswith("_emissivity")}
    th = dataclasses.replace(base, **no_eps, solar_array_absorptivity=0.3)
    sc = scenario(radiation=NO_SEU, thermal=th)
    plant = Plant(sc, np.random.default_rng(1))
    cap = th.capacities()
    absorbing = np.array([th.surface(n) for n in NODES])  # area, eps, alpha, sun fraction, earth view
    sun_abs = (absorbing[:, 0] * absorbing[:, 2] * absorbing[:, 3]).sum()
    alb_abs = (absorbing[:, 0] * absorbing[:, 2] * absorbing[:, 4]).sum() * th.albedo * th.solar_constant_w_m2
    assert np.all(absorbing[:, 1] == 0.0)
    t0 = plant.thermal.temps_c.copy()
    cap_j = sc.battery.capacity_wh * 3600.0
    e0 = plant.power.soc * cap_j
    inflow = absorbed = flows = 0.0
    dt = plant.dt_s
    for _, i in run(plant, 1800):
        ps = plant.truth_power
        q_net = plant.truth_rails_w.sum(axis=1) + ps.p_loss_w - ps.p_solar_used_w
        env = sun_abs * plant.env_irr_step[i] + alb_abs * plant.env_albedo_step[i]
        inflow, absorbed = inflow + q_net * dt, absorbed + env * dt
        flows = flows + (np.abs(q_net) + env + ps.p_solar_used_w) * dt
    stored = ((plant.thermal.temps_c - t0) * cap).sum(axis=1)
    scale = flows + cap.sum() * 300.0 * 1800
    np.testing.assert_allclose(stored, inflow + absorbed, rtol=0, atol=1e-12 * scale.max())
    # ... and the net heat input is exactly what the battery's chemistry did not keep
    np.testing.assert_allclose(inflow, -(plant.power.soc * cap_j - e0), rtol=0, atol=1e-12 * scale.max())
    assert absorbed[0] > 1e7 and abs(stored[0]) > 1e6


def test_81_identical_satellites_give_81_identical_rows_equal_to_one():
    one = Plant(scenario(radiation=NO_SEU), np.random.default_rng(1))
    many = Plant(scenario(81, radiation=NO_SEU), np.random.default_rng(1))
    for k, _ in run(one, 900):
        drive(many, k)
        many.step()
        a, b = truth(one), truth(many)
        for name, w in a.items():
            if name == "isl_rx":  # each satellite's links have their own formation phase, by design
                np.testing.assert_array_equal(b[name][0], w[0])
            else:
                np.testing.assert_array_equal(b[name], np.broadcast_to(w, b[name].shape), err_msg=name)
    assert np.ptp(many._isl[1][:, 0]) > 0.0  # (the phases do differ)


def test_same_seed_same_truth_bit_for_bit():
    sc = scenario(radiation=RadiationParams(rate_multiplier=2e4))  # ~0.5 SDC/s, a crash every ~10 min

    def history(seed):
        plant = Plant(sc, np.random.default_rng(seed))
        rows = []
        for _ in run(plant, 3600):
            t = truth(plant)
            rows.append(np.concatenate([np.ravel(v).astype(float) for v in t.values()]
                                       + [plant.radiation.online.ravel(), plant.radiation.sdc_total]))
        return np.array(rows), plant

    a, plant = history(7)
    b, _ = history(7)
    c, _ = history(8)
    assert a.tobytes() == b.tobytes()
    assert plant.radiation.sdc_total[0] > 100 and not np.array_equal(a, c)
    assert len(_tick.signatures) == 1  # every plant here ran on one compiled kernel
