"""The plant: every physics model of the spacecraft, stepped together over satellites.

The environment (orbit, Sun, shadow, ground visibility) does not depend on
what the flight software does, so it is computed ahead in chunks, vectorized
over time; power, thermal, optical links and radiation depend on the commands
and are stepped tick by tick, vectorized over satellites.

``step(k)`` integrates from tick k to k+1 with the actuator state held (zero-order
hold), and leaves the truth at k+1 in ``self.truth``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from twin.hal import HEATER_ZONES, N_ISL, N_TPU_GROUPS, RAILS
from twin.models.ground import GroundContactModel
from twin.models.loads import tpu_group_power_w
from twin.models.optical import OpticalLinkModel
from twin.models.orbit import OrbitModel
from twin.models.power import PowerSystem, SolarArray
from twin.models.radiation import RadiationModel
from twin.models.thermal import NODES, ThermalModel

__all__ = ["Plant", "Actuators", "ENV_CHUNK_TICKS"]

ENV_CHUNK_TICKS = 3600
_N_TPU = N_TPU_GROUPS
_TPU_NODES = [NODES.index(f"tpu{g}") for g in range(N_TPU_GROUPS)]
_N_BATTERY = NODES.index("battery")
_N_AVIONICS = NODES.index("avionics")
_N_STRUCTURE = NODES.index("structure")
_N_ARRAY = NODES.index("solar_array")
_RAIL = {r: i for i, r in enumerate(RAILS)}


@dataclass
class Actuators:
    """Actuator state as the hardware holds it, arrays over satellites."""

    heater_duty: np.ndarray      # (n_sat, zones)
    switch_tpu: np.ndarray       # (n_sat,) bool
    switch_optical: np.ndarray   # (n_sat,) bool
    tpu_cap: np.ndarray          # (n_sat, groups)
    isl_enable: np.ndarray       # (n_sat, links) bool
    downlink: np.ndarray         # (n_sat,) bool
    charge_enable: np.ndarray    # (n_sat,) bool

    @classmethod
    def safe(cls, n_sat: int) -> "Actuators":
        z = np.zeros
        return cls(z((n_sat, len(HEATER_ZONES))), z(n_sat, bool), z(n_sat, bool), z((n_sat, _N_TPU)),
                   z((n_sat, N_ISL), bool), z(n_sat, bool), np.ones(n_sat, bool))


class Plant:
    """All models of one scenario, for ``n_sat`` satellites, on a fixed step ``dt_s``."""

    def __init__(self, scenario, rng: np.random.Generator, dt_s: float = 1.0):
        sc = scenario
        self.sc, self.dt_s = sc, dt_s
        self.orbit = OrbitModel(sc.orbit, sc.epoch_unix_s)
        n = self.n_sat = self.orbit.n_sat
        self.ground = GroundContactModel(sc.ground, sc.stations)
        self.optical = OpticalLinkModel(sc.optical, n, float(self.orbit.period_s[0]))
        self.radiation = RadiationModel(sc.radiation, n, _N_TPU, sc.tpu.chips_per_group, rng)
        self.solar = SolarArray(sc.solar, n)
        self.power = PowerSystem(sc.solar, sc.battery, n)
        self.thermal = ThermalModel(sc.thermal, n, dt_s)
        self.act = Actuators.safe(n)
        # Device faults, set by fault injection: heaters failed off (-1) / on (+1) per zone.
        self.heater_fault = np.zeros((n, len(HEATER_ZONES)), dtype=np.int8)
        self.isl_failed = np.zeros((n, N_ISL), dtype=bool)
        self.uvlo_latched = np.zeros(n, dtype=bool)
        self._heater_w = np.array([sc.loads.heater_battery_w, sc.loads.heater_avionics_w])
        self._q = np.zeros((n, len(NODES)))
        self._rails_w = np.zeros((n, len(RAILS)))
        self._env_k0 = -1
        self.reset()

    # -- environment, precomputed ahead in chunks -------------------------------------------
    def _env(self, k: int) -> int:
        """Make sure the environment chunk holding ticks k and k+1 is loaded; return the index of k in it."""
        i = k - self._env_k0
        if self._env_k0 < 0 or i < 0 or i + 1 >= ENV_CHUNK_TICKS + 1:
            self._env_k0 = k
            t = (k + np.arange(ENV_CHUNK_TICKS + 2)) * self.dt_s
            st = self.orbit.state(t)
            cs = self.ground.evaluate(st.r_eci_m, st.gmst_rad)
            self.env_sun_fraction = st.sun_fraction
            self.env_irradiance = st.irradiance_w_m2
            # Mean over each step (trapezoid): eclipse entry and exit fall inside a step.
            self.env_irr_step = 0.5 * (st.irradiance_w_m2[:-1] + st.irradiance_w_m2[1:])
            self.env_albedo_step = 0.5 * (st.albedo_factor[:-1] + st.albedo_factor[1:])
            self.env_in_contact = cs.in_contact
            self.env_rate_bps = cs.rate_bps
            self.env_beta = st.beta_rad
            i = 0
        return i

    def reset(self) -> None:
        self.power.reset()
        self.thermal.reset()
        self.optical.reset()
        self.act = Actuators.safe(self.n_sat)
        self.uvlo_latched[:] = False
        self.k = 0
        i = self._env(0)
        self._fill_truth(i, brownout=np.zeros(self.n_sat, bool))

    def step(self) -> None:
        """Advance from tick k to k+1 with the current actuators."""
        k, dt, act, sc = self.k, self.dt_s, self.act, self.sc
        i = self._env(k)
        irr = self.env_irr_step[i]
        tpu_on = act.switch_tpu & ~self.uvlo_latched
        opt_on = act.switch_optical & ~self.uvlo_latched
        online = self.radiation.online
        p_tpu = tpu_group_power_w(sc.tpu, online, act.tpu_cap, tpu_on)
        isl_state, isl_rx, isl_w = self.optical.step(k * dt, dt, act.isl_enable, opt_on, self.isl_failed)
        duty = np.where(self.heater_fault == 0, act.heater_duty, (self.heater_fault > 0).astype(float))
        p_heat = duty * self._heater_w
        rails = self._rails_w
        rails[:, _RAIL["avionics"]] = sc.loads.avionics_w
        rails[:, _RAIL["tpu"]] = p_tpu.sum(axis=1)
        rails[:, _RAIL["optical"]] = isl_w.sum(axis=1)
        rails[:, _RAIL["downlink"]] = act.downlink * sc.loads.downlink_w
        rails[:, _RAIL["heater_battery"]] = p_heat[:, 0]
        rails[:, _RAIL["heater_avionics"]] = p_heat[:, 1]
        p_load = rails.sum(axis=1)
        t_array = self.thermal.temps_c[:, _N_ARRAY]
        p_avail = self.solar.available_power_w(irr, 1.0, t_array)
        ps = self.power.step(dt, p_avail, p_load, act.charge_enable, self.thermal.temps_c[:, _N_BATTERY])
        # Undervoltage protection: the PCDU opens the non-essential rails and keeps
        # them open until the flight software commands them off and on again.
        self.uvlo_latched |= ps.brownout
        served = np.where(p_load > 0, ps.p_load_served_w / np.maximum(p_load, 1e-9), 1.0)[:, None]
        q = self._q
        q[:] = 0.0
        q[:, _TPU_NODES] = p_tpu * served
        q[:, _N_AVIONICS] = (rails[:, _RAIL["avionics"]] + rails[:, _RAIL["downlink"]]) * served[:, 0] \
            + p_heat[:, 1] * served[:, 0]
        q[:, _N_STRUCTURE] = rails[:, _RAIL["optical"]] * served[:, 0]
        q[:, _N_BATTERY] = p_heat[:, 0] * served[:, 0] + ps.p_loss_w
        q[:, _N_ARRAY] = -ps.p_solar_used_w
        self.thermal.step(q, irr, self.env_albedo_step[i])
        powered_groups = np.broadcast_to(tpu_on[:, None], online.shape)
        self.radiation.step(k * dt, dt, powered_groups)
        self.k = k + 1
        self._last_power = ps
        self._isl = (isl_state, isl_rx)
        self._fill_truth(i + 1, ps.brownout, ps, rails * served)

    def _fill_truth(self, i: int, brownout, ps=None, rails_w=None) -> None:
        """Truth at the current tick, for sensors and for tests (never seen by the flight software)."""
        n = self.n_sat
        if ps is None:
            ps = self.power.step(0.0, np.zeros(n), np.zeros(n), self.act.charge_enable,
                                 self.thermal.temps_c[:, _N_BATTERY])
            rails_w = np.zeros((n, len(RAILS)))
            rails_w[:, _RAIL["avionics"]] = 0.0
            self._isl = (np.zeros((n, N_ISL), np.int8), np.full((n, N_ISL), -90.0))
        self.truth_power = ps
        self.truth_rails_w = rails_w
        self.truth_sun_fraction = self.env_sun_fraction[i]
        self.truth_in_contact = self.env_in_contact[i]
        self.truth_brownout = brownout
