"""The canonical telemetry record: one row per executive tick.

A row holds the sensor frame the flight software saw, the command it sent and
its housekeeping, with no wall-clock field. Rows are packed little-endian with
no padding (:data:`RECORD_DTYPE`); the SHA-256 of the concatenated rows of a run
is its ``telemetry_digest``, equal on every rig that feeds the flight software
the same frames. Writers (CSV, tlog) consume chunks of rows.
"""
from __future__ import annotations

import numpy as np

from twin.hal import (FSW_HOUSEKEEPING_FIELDS, GROUPS, HEATER_ZONES, N_CHANNELS, N_ISL, N_TPU_GROUPS,
                      ActuatorCommand, FswHousekeeping, SensorFrame)

__all__ = ["RECORD_DTYPE", "HK_DTYPES", "row_of", "rows_to_array"]

#: Housekeeping field types (integers and flags as int32, quantities as float64).
HK_DTYPES = {name: ("<f8" if isinstance(getattr(FswHousekeeping(), name), float) else "<i4")
             for name in FSW_HOUSEKEEPING_FIELDS}

RECORD_DTYPE = np.dtype([
    ("t_ns", "<i8"),
    ("values", "<f4", (N_CHANNELS,)),
    ("valid", "u1", (N_CHANNELS,)),
    ("sample_t_ns", "<i8", (len(GROUPS),)),
    ("heater_duty", "<f4", (len(HEATER_ZONES),)),
    ("switch_tpu", "u1"),
    ("switch_optical", "u1"),
    ("tpu_cap", "<f4", (N_TPU_GROUPS,)),
    ("isl_enable", "u1", (N_ISL,)),
    ("downlink_enable", "u1"),
    ("charge_enable", "u1"),
    ("watchdog_kick", "u1"),
    ("fsw_mode", "u1"),
    *[(f"hk_{name}", dt) for name, dt in HK_DTYPES.items()],
], align=False)


def row_of(frame: SensorFrame, cmd: ActuatorCommand, hk: FswHousekeeping) -> tuple:
    """The tuple for one record row (cheap: no numpy work per tick).

    ``cmd`` must be the quantized command actually sent (its lists are not copied).
    """
    return (frame.t_ns, frame.values, frame.valid, frame.sample_t_ns,
            cmd.heater_duty, cmd.switch_tpu, cmd.switch_optical, cmd.tpu_cap, cmd.isl_enable,
            cmd.downlink_enable, cmd.charge_enable, cmd.watchdog_kick, cmd.fsw_mode,
            *[getattr(hk, name) for name in FSW_HOUSEKEEPING_FIELDS])


def rows_to_array(rows: list[tuple]) -> np.ndarray:
    """Pack row tuples into a structured array of :data:`RECORD_DTYPE`."""
    return np.array(rows, dtype=RECORD_DTYPE)
