"""Electrical loads on the power rails: TPU groups, avionics, radio, heaters.

All electrical power a load draws ends up as heat in the thermal node it sits
on; :func:`rail_powers` returns both views.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from twin.params import param

__all__ = ["TpuParams", "LoadParams", "tpu_group_power_w"]


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


def tpu_group_power_w(tpu: TpuParams, online: np.ndarray, cap: np.ndarray, rail_on: np.ndarray) -> np.ndarray:
    """Electrical power of each TPU group, (n_sat, n_groups).

    A powered chip draws its idle power plus the dynamic share of
    ``min(utilization, cap)``; the cap is the flight software's power limit.
    """
    load = np.minimum(tpu.utilization, cap)
    per_chip = tpu.chip_idle_w + (tpu.chip_max_w - tpu.chip_idle_w) * load
    return online * per_chip * rail_on[:, None]
