"""Simulated sensors: truth -> noisy readings at the resolution the wire carries.

Every analog channel gets seeded Gaussian noise (a real sensor never repeats
itself bit for bit; the flight software's stuck-sensor check relies on that),
is clipped to what its converter can output, and is rounded to float32 exactly
as the wire rounds it, so the flight software sees identical numbers on the
simulated rig and on an emulated rig.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from twin.hal import (CHANNELS, N_CHANNELS, N_ISL, RAILS, S_BOARD_BOOT_COUNT, S_GROUND_LOCK, S_I_BATTERY,
                      S_I_RAIL, S_I_SOLAR, S_ISL_RX_DBM, S_ISL_STATE, S_SUN_PRESENT, S_T_AVIONICS, S_T_BATTERY,
                      S_T_COLDPLATE, S_T_RADIATOR, S_T_SOLAR_ARRAY, S_T_TPU, S_TPU_ONLINE, S_TPU_SDC_COUNT,
                      S_V_BATTERY, S_V_BUS)
from twin.models.thermal import NODES
from twin.params import param

__all__ = ["SensorParams", "SensorModel"]

_NOISE_CHUNK = 4096
_TEMP_NODES = [NODES.index(f"tpu{g}") for g in range(4)] + [NODES.index(n) for n in
                                                           ("coldplate", "radiator", "battery", "avionics", "solar_array")]
_TEMP_CH = [*S_T_TPU, S_T_COLDPLATE, S_T_RADIATOR, S_T_BATTERY, S_T_AVIONICS, S_T_SOLAR_ARRAY]
_RAIL_CH = [S_I_RAIL[r] for r in RAILS]
_LO = np.array([c.lo for c in CHANNELS])
_HI = np.array([c.hi for c in CHANNELS])


@dataclass(frozen=True)
class SensorParams:
    temp_noise_c: float = param(0.05, "degC", lo=0, hi=10, doc="temperature sensor noise (1 sigma)")
    voltage_noise_v: float = param(0.01, "V", lo=0, hi=5, doc="voltage sensor noise (1 sigma)")
    current_noise_a: float = param(0.02, "A", lo=0, hi=10, doc="current sensor noise (1 sigma)")
    rx_power_noise_db: float = param(0.1, "dB", lo=0, hi=10, doc="optical receive power noise (1 sigma)")
    watchdog_timeout_s: float = param(30.0, "s", lo=1, hi=3600, doc="board resets if not serviced for this long")


class SensorModel:
    """Builds the channel vector of one satellite from the plant's truth."""

    def __init__(self, params: SensorParams, rng: np.random.Generator):
        self.rng = rng
        sigma = np.zeros(N_CHANNELS)
        sigma[_TEMP_CH] = params.temp_noise_c
        sigma[[S_V_BUS, S_V_BATTERY]] = params.voltage_noise_v
        sigma[[S_I_BATTERY, S_I_SOLAR, *_RAIL_CH]] = params.current_noise_a
        sigma[list(S_ISL_RX_DBM)] = params.rx_power_noise_db
        self.sigma = sigma
        self._noise = np.empty((0, N_CHANNELS))
        self._next = 0
        self.v = np.zeros(N_CHANNELS)

    def _noise_row(self) -> np.ndarray:
        if self._next >= len(self._noise):
            self._noise = self.rng.standard_normal((_NOISE_CHUNK, N_CHANNELS)) * self.sigma
            self._next = 0
        row = self._noise[self._next]
        self._next += 1
        return row

    def read(self, plant, boot_count: int, sat: int = 0) -> np.ndarray:
        """The float64 channel vector (noisy, clipped to range; not yet float32) for satellite ``sat``."""
        v = self.v
        ps = plant.truth_power
        v[_TEMP_CH] = plant.thermal.temps_c[sat, _TEMP_NODES]
        v[S_V_BUS] = ps.v_bus_v[sat]
        v[S_V_BATTERY] = ps.v_battery_v[sat]
        v[S_I_BATTERY] = ps.i_battery_a[sat]
        v[S_I_SOLAR] = ps.i_solar_a[sat]
        v[_RAIL_CH] = plant.truth_rails_w[sat] / max(float(ps.v_bus_v[sat]), 1.0)
        v[S_SUN_PRESENT] = plant.truth_sun_fraction[sat] > 0.5
        isl_state, isl_rx = plant._isl
        v[list(S_ISL_STATE)] = isl_state[sat]
        v[list(S_ISL_RX_DBM)] = isl_rx[sat]
        v[S_GROUND_LOCK] = plant.truth_in_contact[sat] and plant.act.downlink[sat]
        v[list(S_TPU_ONLINE)] = plant.radiation.online[sat]
        v[S_TPU_SDC_COUNT] = plant.radiation.sdc_total[sat] % 65536
        v[S_BOARD_BOOT_COUNT] = boot_count % 65536
        out = v + self._noise_row()
        np.clip(out, _LO, _HI, out=out)
        return out
