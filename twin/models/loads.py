"""Electrical loads on the power rails: TPU groups, avionics, radio, heaters.

All electrical power a load draws ends up as heat in the thermal node it sits
on; :mod:`twin.sim.plant` books both views. :func:`tpu_group_power` is the
``@njit`` kernel of one group, called by :func:`tpu_group_power_w` and by the
plant's fused per-tick kernel.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from twin.params import param

__all__ = ["TpuParams", "LoadParams", "tpu_group_power_w", "tpu_consts", "tpu_group_power"]

_T_UTILIZATION, _T_IDLE_W, _T_DYNAMIC_W = range(3)  # tpu_consts()


@dataclass(frozen=True)
class TpuParams:
    chips_per_group: int = param(24, "chips", lo=1, hi=255, doc="TPU chips in each of the 4 groups")
    chip_idle_w: float = param(50.0, "W", lo=0, hi=2000, doc="chip power when powered but idle (incl. host share)")
    chip_max_w: float = param(250.0, "W", lo=0, hi=2000, doc="chip power at full utilization (incl. host share)")
    utilization: float = param(1.0, "1", lo=0, hi=1, doc="compute demand: utilization the workload asks for")


@dataclass(frozen=True)
class LoadParams:
    avionics_w: float = param(400.0, "W", lo=0, hi=10000, doc="avionics, attitude control, housekeeping (always on)")
    downlink_w: float = param(150.0, "W", lo=0, hi=5000, doc="ground transmitter while enabled")
    heater_battery_w: float = param(200.0, "W", lo=0, hi=5000, doc="battery heater at 100 % duty")
    heater_avionics_w: float = param(100.0, "W", lo=0, hi=5000, doc="avionics heater at 100 % duty")


def tpu_consts(tpu: TpuParams) -> np.ndarray:
    """The constants :func:`tpu_group_power` takes: utilization, idle and dynamic chip power."""
    return np.array([tpu.utilization, tpu.chip_idle_w, tpu.chip_max_w - tpu.chip_idle_w])


@njit(cache=True, error_model="numpy")
def tpu_group_power(tc, online, cap, rail_on):
    """Electrical power (W) of one TPU group of ``online`` chips; ``tc`` from :func:`tpu_consts`."""
    if not rail_on:
        return 0.0
    per_chip = tc[_T_IDLE_W] + tc[_T_DYNAMIC_W] * min(tc[_T_UTILIZATION], cap)
    return online * per_chip


@njit(cache=True, error_model="numpy")
def _tpu_loop(tc, online, cap, rail_on, out):
    for s in range(out.shape[0]):
        for g in range(out.shape[1]):
            out[s, g] = tpu_group_power(tc, online[s, g], cap[s, g], rail_on[s])


def tpu_group_power_w(tpu: TpuParams, online: np.ndarray, cap: np.ndarray, rail_on: np.ndarray) -> np.ndarray:
    """Electrical power of each TPU group, (n_sat, n_groups).

    A powered chip draws its idle power plus the dynamic share of
    ``min(utilization, cap)``; the cap is the flight software's power limit.
    """
    online = np.array(online, dtype=np.int64)  # copies: one writable C-contiguous type per argument
    out = np.empty(online.shape)
    _tpu_loop(tpu_consts(tpu), online, np.array(np.broadcast_to(cap, online.shape), dtype=np.float64),
              np.array(np.broadcast_to(rail_on, online.shape[:1]), dtype=np.bool_), out)
    return out
