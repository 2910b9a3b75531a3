"""The plant: every physics model of the spacecraft, stepped together over satellites.

The environment (orbit, Sun, shadow, ground visibility) does not depend on
what the flight software does, so it is computed ahead in chunks, vectorized
over time; power, thermal, optical links and radiation depend on the commands
and are stepped tick by tick, over satellites, in one fused ``@njit`` kernel
(:func:`_tick`) that calls the models' own per-satellite kernels (a numpy
version paid ~0.5 us of call overhead on each of ~400 tiny operations per tick).

``step(k)`` integrates from tick k to k+1 with the actuator state held (zero-order
hold), and leaves the truth at k+1 in the ``truth_*`` attributes: views of
buffers the kernel rewrites in place each tick (copy them to keep a snapshot).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numba import njit

from twin.hal import HEATER_ZONES, N_ISL, N_TPU_GROUPS, RAILS
from twin.models import loads, optical, power, radiation, thermal
from twin.models.ground import GroundContactModel
from twin.models.loads import tpu_consts, tpu_group_power
from twin.models.optical import RX_DBM_NO_SIGNAL, OpticalLinkModel, optical_step
from twin.models.orbit import OrbitModel
from twin.models.power import PowerState, PowerSystem, battery_step, solar_power_w
from twin.models.radiation import RadiationModel, radiation_advance
from twin.models.thermal import NODES, ThermalModel, thermal_step

__all__ = ["Plant", "Actuators", "ENV_CHUNK_TICKS"]

ENV_CHUNK_TICKS = 3600
_N_TPU = N_TPU_GROUPS
# Where each load's heat goes and which rail carries it, baked into the kernel as constants.
_LAYOUT = (tuple(NODES.index(f"tpu{g}") for g in range(N_TPU_GROUPS)),
           NODES.index("battery"), NODES.index("avionics"), NODES.index("structure"), NODES.index("solar_array"),
           *(RAILS.index(r) for r in ("avionics", "tpu", "optical", "downlink", "heater_battery", "heater_avionics")),
           HEATER_ZONES.index("battery"), HEATER_ZONES.index("avionics"))
_N_BATTERY = _LAYOUT[1]
_L_AVIONICS_W, _L_DOWNLINK_W, _L_HEATER_W = 0, 1, 2  # Plant._load_w: avionics, downlink, heaters by zone


def _models_stamp() -> str:
    """Hash of the model sources the fused kernel inlines, and of the layout it bakes in.

    numba's cache only checks the source file of the cached function itself
    (numba#1833), so a change in a model module would otherwise leave a stale
    ``_tick`` in ``__pycache__``. The stamp is a closure variable of ``_tick``,
    and numba keys its cache index on closure contents.
    """
    h = hashlib.sha256(repr(_LAYOUT).encode())
    for mod in (loads, optical, power, radiation, thermal):
        try:
            h.update(Path(mod.__file__).read_bytes())
        except OSError:  # no source next to the module: numba cannot cache it either
            h.update(mod.__name__.encode())
    return h.hexdigest()


def _build_tick(stamp: str, layout: tuple):
    (tpu_nodes, n_battery, n_avionics, n_structure, n_array,
     r_avionics, r_tpu, r_optical, r_downlink, r_heater_battery, r_heater_avionics,
     z_battery, z_avionics) = layout

    @njit(cache=True, error_model="numpy")
    def tick(t_s, dt_s, i, irr_step, albedo_step,
             heater_duty, switch_tpu, switch_optical, tpu_cap, isl_enable, downlink, charge_enable,
             heater_fault, isl_failed, uvlo_latched, load_w, tpu_c,
             online, rad_arrays, opt_arrays, isl_rx, isl_w,
             solar_c, strings_lost, soc, capacity_fade, battery_c, power_values, brownout,
             temps_c, thermal_arrays, rails_served, scratch):
        """One tick of every satellite: loads -> optical -> power -> thermal -> radiation.

        Returns True when a radiation event falls due (drawn in Python by the caller).
        """
        stamp  # noqa: B018  (in the closure so that the cache key follows the models' sources)
        q, p_tpu, rails, p_heat, powered = scratch
        t_end = t_s + dt_s
        for s in range(temps_c.shape[0]):
            tpu_on = switch_tpu[s] and not uvlo_latched[s]
            opt_on = switch_optical[s] and not uvlo_latched[s]
            p_tpu_sum = 0.0
            for g in range(len(tpu_nodes)):
                powered[s, g] = tpu_on
                p_tpu[g] = tpu_group_power(tpu_c, online[s, g], tpu_cap[s, g], tpu_on)
                p_tpu_sum += p_tpu[g]
            p_optical = optical_step(s, t_end, dt_s, isl_enable, opt_on, isl_failed, opt_arrays, isl_rx, isl_w)
            for z in range(p_heat.shape[0]):
                f = heater_fault[s, z]
                duty = heater_duty[s, z] if f == 0 else (1.0 if f > 0 else 0.0)
                p_heat[z] = duty * load_w[_L_HEATER_W + z]
            rails[r_avionics] = load_w[_L_AVIONICS_W]
            rails[r_tpu] = p_tpu_sum
            rails[r_optical] = p_optical
            rails[r_downlink] = load_w[_L_DOWNLINK_W] if downlink[s] else 0.0
            rails[r_heater_battery] = p_heat[z_battery]
            rails[r_heater_avionics] = p_heat[z_avionics]
            p_load = 0.0
            for r in range(rails.shape[0]):
                p_load += rails[r]

            p_avail = solar_power_w(solar_c, irr_step[i, s], 1.0, temps_c[s, n_array], strings_lost[s])
            battery_step(s, dt_s, p_avail, p_load, charge_enable[s], temps_c[s, n_battery],
                         soc, capacity_fade, battery_c, power_values, brownout)
            # Undervoltage protection: the PCDU opens the non-essential rails and keeps
            # them open until the flight software commands them off and on again.
            if brownout[s]:
                uvlo_latched[s] = True
            served = power_values[power.ROW_P_LOAD_SERVED, s] / max(p_load, 1e-9) if p_load > 0 else 1.0
            for r in range(rails.shape[0]):
                rails_served[s, r] = rails[r] * served

            for j in range(q.shape[0]):
                q[j] = 0.0
            for g in range(len(tpu_nodes)):
                q[tpu_nodes[g]] = p_tpu[g] * served
            q[n_avionics] = (rails[r_avionics] + rails[r_downlink]) * served + p_heat[z_avionics] * served
            q[n_structure] = rails[r_optical] * served
            q[n_battery] = p_heat[z_battery] * served + power_values[power.ROW_P_LOSS, s]
            q[n_array] = -power_values[power.ROW_P_SOLAR_USED, s]
            thermal_step(temps_c[s], q, irr_step[i, s], albedo_step[i, s], thermal_arrays)
        return radiation_advance(t_s, dt_s, powered, online, rad_arrays)

    return tick


_tick = _build_tick(_models_stamp(), _LAYOUT)


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
    """All models of one scenario, for ``n_sat`` satellites, on a fixed step ``dt_s``.

    Truth after each step (views of buffers rewritten in place each tick):
    ``truth_power`` (:class:`~twin.models.power.PowerState`), ``truth_rails_w``
    ``(n_sat, rails)`` (load served per rail), ``truth_brownout``,
    ``truth_sun_fraction`` and ``truth_in_contact``; temperatures are
    ``thermal.temps_c``, link states and received powers ``_isl``.
    """

    def __init__(self, scenario, rng: np.random.Generator, dt_s: float = 1.0):
        sc = scenario
        self.sc, self.dt_s = sc, float(dt_s)
        self.orbit = OrbitModel(sc.orbit, sc.epoch_unix_s)
        n = self.n_sat = self.orbit.n_sat
        self.ground = GroundContactModel(sc.ground, sc.stations)
        self.optical = OpticalLinkModel(sc.optical, n, float(self.orbit.period_s[0]))
        self.radiation = RadiationModel(sc.radiation, n, _N_TPU, sc.tpu.chips_per_group, rng)
        self.power = PowerSystem(sc.solar, sc.battery, n)
        self.solar = self.power.solar  # one array: fault injection sets solar.strings_lost
        self.thermal = ThermalModel(sc.thermal, n, self.dt_s)
        self.act = Actuators.safe(n)
        # Device faults, set by fault injection: heaters failed off (-1) / on (+1) per zone.
        self.heater_fault = np.zeros((n, len(HEATER_ZONES)), dtype=np.int8)
        self.isl_failed = np.zeros((n, N_ISL), dtype=bool)
        self.uvlo_latched = np.zeros(n, dtype=bool)
        heater_w = {"battery": sc.loads.heater_battery_w, "avionics": sc.loads.heater_avionics_w}
        self._load_w = np.array([sc.loads.avionics_w, sc.loads.downlink_w, *(heater_w[z] for z in HEATER_ZONES)])
        self._tpu_c = tpu_consts(sc.tpu)
        self._power_values, self._brownout = PowerState.buffers(n)
        self._rails_served = np.zeros((n, len(RAILS)))
        self._isl_rx = np.full((n, N_ISL), RX_DBM_NO_SIGNAL)
        self._isl_w = np.zeros((n, N_ISL))
        self._scratch = (np.zeros(len(NODES)), np.zeros(_N_TPU), np.zeros(len(RAILS)), np.zeros(len(HEATER_ZONES)),
                         np.zeros((n, _N_TPU), dtype=bool))
        self.truth_power = PowerState.over(self._power_values, self._brownout)
        self.truth_rails_w = self._rails_served
        self.truth_brownout = self._brownout
        self._isl = (self.optical.link_state, self._isl_rx)
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
        # Truth at tick 0: the battery's operating point with nothing drawn, links down, rails at 0.
        n = self.n_sat
        self.power.step_into(0.0, np.zeros(n), np.zeros(n), self.act.charge_enable,
                             self.thermal.temps_c[:, _N_BATTERY], self._power_values, self._brownout)
        self._rails_served[...] = 0.0
        self._isl_rx[...] = RX_DBM_NO_SIGNAL
        self.truth_sun_fraction = self.env_sun_fraction[i]
        self.truth_in_contact = self.env_in_contact[i]

    def step(self) -> None:
        """Advance from tick k to k+1 with the current actuators."""
        k, dt, act = self.k, self.dt_s, self.act
        i = self._env(k)
        t_s = k * dt
        pw, rad = self.power, self.radiation
        due = _tick(t_s, dt, i, self.env_irr_step, self.env_albedo_step,
                    act.heater_duty, act.switch_tpu, act.switch_optical, act.tpu_cap, act.isl_enable,
                    act.downlink, act.charge_enable,
                    self.heater_fault, self.isl_failed, self.uvlo_latched, self._load_w, self._tpu_c,
                    rad.online, rad.kernel_arrays, self.optical.kernel_arrays, self._isl_rx, self._isl_w,
                    pw.solar.consts, pw.solar.strings_lost, pw.soc, pw.capacity_fade, pw.kernel_consts,
                    self._power_values, self._brownout,
                    self.thermal.temps_c, self.thermal.kernel_arrays, self._rails_served, self._scratch)
        if due or rad.has_pending:
            rad.finish_step(t_s + dt, due)
        self.k = k + 1
        self.truth_sun_fraction = self.env_sun_fraction[i + 1]
        self.truth_in_contact = self.env_in_contact[i + 1]
