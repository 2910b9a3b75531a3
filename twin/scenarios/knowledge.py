"""What the flight software knows of its spacecraft, taken from the scenario.

On a real mission these facts reach the onboard software as configuration:
the battery datasheet, the TPU sizing, the uplinked orbit elements and the
ground-station list. Here they are copied from the physical scenario so the
two cannot drift apart by accident; the flight software's own tunables
(``[fsw.*]`` tables) are left as the scenario set them.
"""
from __future__ import annotations

import dataclasses

from twin.fsw.config import FswConfig
from twin.scenarios.loader import parse_epoch

__all__ = ["onboard_knowledge"]


def onboard_knowledge(sc) -> FswConfig:
    """``sc.fsw`` with the battery, TPU, orbit and station facts of scenario ``sc``."""
    fsw: FswConfig = sc.fsw
    b = sc.battery
    battery = dataclasses.replace(
        fsw.battery, capacity_wh=b.capacity_wh, cells_series=b.cells_series, ocv_soc=tuple(b.ocv_soc),
        ocv_cell_v=tuple(b.ocv_cell_v), r_internal_ohm=b.r_internal_ohm,
        charge_efficiency=b.charge_efficiency, discharge_efficiency=b.discharge_efficiency)
    tpu = dataclasses.replace(
        fsw.tpu, chips_per_group=sc.tpu.chips_per_group, chip_idle_w=sc.tpu.chip_idle_w,
        chip_max_w=sc.tpu.chip_max_w, utilization_demand=sc.tpu.utilization)
    orbit = dataclasses.replace(
        fsw.orbit, altitude_km=sc.orbit.altitude_km, ltan_hours=sc.orbit.ltan_hours,
        epoch_unix_s=parse_epoch(sc.run.epoch), phase_deg=sc.orbit.phase_deg)
    power = dataclasses.replace(fsw.power, max_charge_a=min(fsw.power.max_charge_a, b.max_charge_a),
                                max_discharge_a=min(fsw.power.max_discharge_a, b.max_discharge_a))
    thermal = dataclasses.replace(fsw.thermal, charge_min_c=max(fsw.thermal.charge_min_c, b.t_charge_min_c),
                                  charge_max_c=min(fsw.thermal.charge_max_c, b.t_charge_max_c))
    stations = tuple((s.name, s.lat_deg, s.lon_deg) for s in sc.stations)
    return dataclasses.replace(fsw, battery=battery, tpu=tpu, orbit=orbit, power=power, thermal=thermal,
                               stations=stations, min_elevation_deg=sc.ground.min_elevation_deg)
