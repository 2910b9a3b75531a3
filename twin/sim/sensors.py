"""Simulated sensors: truth -> noisy readings at the resolution the wire carries.

Every analog channel gets seeded Gaussian noise (a real sensor never repeats
itself bit for bit; the flight software's stuck-sensor check relies on that),
is clipped to what its converter can output, and is rounded to float32 exactly
as the wire rounds it, so the flight software sees identical numbers on the
simulated rig and on an emulated rig. A read is one ``@njit`` kernel call
(:func:`_read`); the noise is drawn ahead in blocks from the seeded generator.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from twin.hal import (CHANNELS, N_CHANNELS, RAILS, S_BOARD_BOOT_COUNT, S_GROUND_LOCK, S_I_BATTERY, S_I_RAIL,
                      S_I_SOLAR, S_ISL_RX_DBM, S_ISL_STATE, S_SUN_PRESENT, S_T_AVIONICS, S_T_BATTERY, S_T_COLDPLATE,
                      S_T_RADIATOR, S_T_SOLAR_ARRAY, S_T_TPU, S_TPU_ONLINE, S_TPU_SDC_COUNT, S_V_BATTERY, S_V_BUS)
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
# Channel layout baked into the kernel as constants; a closure, so numba's cache key follows it.
_LAYOUT = (tuple(_TEMP_NODES), tuple(_TEMP_CH), S_V_BUS, S_V_BATTERY, S_I_BATTERY, S_I_SOLAR, tuple(_RAIL_CH),
           S_SUN_PRESENT, tuple(S_ISL_STATE), tuple(S_ISL_RX_DBM), S_GROUND_LOCK, tuple(S_TPU_ONLINE),
           S_TPU_SDC_COUNT, S_BOARD_BOOT_COUNT, tuple(float(x) for x in _LO), tuple(float(x) for x in _HI))


@dataclass(frozen=True)
class SensorParams:
    temp_noise_c: float = param(0.05, "degC", lo=0, hi=10, doc="temperature sensor noise (1 sigma)")
    voltage_noise_v: float = param(0.01, "V", lo=0, hi=5, doc="voltage sensor noise (1 sigma)")
    current_noise_a: float = param(0.02, "A", lo=0, hi=10, doc="current sensor noise (1 sigma)")
    rx_power_noise_db: float = param(0.1, "dB", lo=0, hi=10, doc="optical receive power noise (1 sigma)")
    watchdog_timeout_s: float = param(30.0, "s", lo=1, hi=3600, doc="board resets if not serviced for this long")


def _build_read(layout: tuple):
    (temp_nodes, temp_ch, ch_v_bus, ch_v_battery, ch_i_battery, ch_i_solar, rail_ch, ch_sun, isl_state_ch,
     isl_rx_ch, ch_ground_lock, tpu_online_ch, ch_sdc, ch_boot, lo, hi) = layout

    @njit(cache=True, error_model="numpy")
    def read(sat, boot_count, temps_c, v_bus_v, v_battery_v, i_battery_a, i_solar_a, rails_w, sun_fraction,
             isl_state, isl_rx_dbm, in_contact, downlink, online, sdc_total, noise, row, truth, out):
        """Fill ``truth`` with satellite ``sat``'s channels, then ``out = clip(truth + noise[row])``."""
        v = truth
        for j in range(len(temp_ch)):
            v[temp_ch[j]] = temps_c[sat, temp_nodes[j]]
        v[ch_v_bus] = v_bus_v[sat]
        v[ch_v_battery] = v_battery_v[sat]
        v[ch_i_battery] = i_battery_a[sat]
        v[ch_i_solar] = i_solar_a[sat]
        v_rail = max(v_bus_v[sat], 1.0)
        for r in range(len(rail_ch)):
            v[rail_ch[r]] = rails_w[sat, r] / v_rail
        v[ch_sun] = 1.0 if sun_fraction[sat] > 0.5 else 0.0
        for k in range(len(isl_state_ch)):
            v[isl_state_ch[k]] = isl_state[sat, k]
            v[isl_rx_ch[k]] = isl_rx_dbm[sat, k]
        v[ch_ground_lock] = 1.0 if in_contact[sat] and downlink[sat] else 0.0
        for g in range(len(tpu_online_ch)):
            v[tpu_online_ch[g]] = online[sat, g]
        v[ch_sdc] = sdc_total[sat] % 65536
        v[ch_boot] = boot_count % 65536
        for c in range(v.shape[0]):
            x = v[c] + noise[row, c]
            if x < lo[c]:
                x = lo[c]
            elif x > hi[c]:  # NaN passes through, as with np.clip
                x = hi[c]
            out[c] = x

    return read


_read = _build_read(_LAYOUT)


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

    def read(self, plant, boot_count: int, sat: int = 0) -> np.ndarray:
        """The float64 channel vector (noisy, clipped to range; not yet float32) for satellite ``sat``.

        ``self.v`` keeps the noise-free values of the last read.
        """
        if not 0 <= sat < plant.n_sat:  # the kernel does not check bounds
            raise IndexError(f"satellite {sat} out of range for {plant.n_sat}")
        row = self._next
        if row >= len(self._noise):
            self._noise = self.rng.standard_normal((_NOISE_CHUNK, N_CHANNELS)) * self.sigma
            row = 0
        self._next = row + 1
        ps = plant.truth_power
        isl_state, isl_rx = plant._isl
        out = np.empty(N_CHANNELS)
        _read(int(sat), int(boot_count), plant.thermal.temps_c, ps.v_bus_v, ps.v_battery_v, ps.i_battery_a,
              ps.i_solar_a, plant.truth_rails_w, plant.truth_sun_fraction, isl_state, isl_rx,
              plant.truth_in_contact, plant.act.downlink, plant.radiation.online, plant.radiation.sdc_total,
              self._noise, row, self.v, out)
        return out
