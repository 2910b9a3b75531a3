"""Telemetry rows as a MAVLink 2 telemetry log (``.tlog``), readable by pymavlink and ground tools.

The standard tlog layout: every frame is preceded by its time, 8 bytes
big-endian, microseconds since the Unix epoch. Here that time is scenario
time (``epoch_unix_s`` + the row's ``t_ns``), never the wall clock, so the same
run gives the same file.

Per row, in this order: HEARTBEAT (MAV_TYPE_SPACECRAFT_ORBITER, custom_mode =
fsw_mode, so generic tools recognise the vehicle), SC_THERMAL_FRAME,
SC_POWER_FRAME, SC_STATUS_FRAME, SC_ACTUATOR_COMMAND (``cmd_seq`` = row number
in the file), SC_FSW_HOUSEKEEPING; one sequence counter runs over all frames,
as one pymavlink ``MAVLink`` sending them would. The content of every message
is what :mod:`firmware_bridge.messages` makes of the row's frame, command and
housekeeping; frames are built column-wise for a whole chunk at once
(:func:`firmware_bridge.codec.pack_columns`), since pymavlink's per-message
pack would cost seconds per simulated day. Each chunk is flushed, so a crash
leaves a file that is readable up to its last complete frame.
"""
from __future__ import annotations

import os
from typing import Iterator

import numpy as np

from firmware_bridge.codec import pack_columns
from firmware_bridge.dialect import load_dialect
from firmware_bridge.messages import (COMMAND_MESSAGE, FRAME_GROUPS, HOUSEKEEPING_MESSAGE, check_dialect,
                                      message_class)
from twin.hal import FSW_HOUSEKEEPING_FIELDS, FswHousekeeping

from .records import RECORD_DTYPE

__all__ = ["TlogWriter", "FRAMES_PER_ROW"]

FRAMES_PER_ROW = 1 + len(FRAME_GROUPS) + 2  # heartbeat, frames, command, housekeeping
_MAVLINK_VERSION = 3  # HEARTBEAT.mavlink_version, as pymavlink's heartbeat_encode fills it
_HK_BOOL = {name for name in FSW_HOUSEKEEPING_FIELDS if isinstance(getattr(FswHousekeeping(), name), bool)}
_UINT_MAX = {"uint8_t": 0xFF, "uint16_t": 0xFFFF, "uint32_t": 0xFFFF_FFFF}


def _unit_interval(x: np.ndarray) -> np.ndarray:
    """min(1, max(0, x)) elementwise with Python's semantics (NaN -> 0), as ActuatorCommand.quantized does."""
    x = np.where(x > 0, x, 0)
    return np.where(x < 1, x, 1)


class TlogWriter:
    """Writes chunks of :data:`~twin.telemetry.records.RECORD_DTYPE` rows to a new tlog at ``path``.

    Usable as a context manager; :meth:`close` is idempotent.
    """

    def __init__(self, path: str | os.PathLike, epoch_unix_s: float, *, src_system: int = 1, src_component: int = 1):
        self._epoch_us = epoch_unix_s * 10**6 if isinstance(epoch_unix_s, int) else round(epoch_unix_s * 1e6)
        self._ids = {"src_system": src_system, "src_component": src_component}
        self._mod = load_dialect()
        check_dialect()  # the columns below are named after the HAL
        self._seq = 0
        self.rows_written = 0
        self._file = open(path, "wb")

    def __enter__(self) -> "TlogWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._file.close()

    def write_chunk(self, rows: np.ndarray) -> None:
        """Append ``rows`` (a 1-D array of RECORD_DTYPE) and flush."""
        if not isinstance(rows, np.ndarray) or rows.dtype != RECORD_DTYPE or rows.ndim != 1:
            raise TypeError("rows must be a 1-D numpy array of RECORD_DTYPE")
        n = len(rows)
        if n == 0:
            return
        if (rows["t_ns"] < 0).any() or (rows["sample_t_ns"] < 0).any():
            raise ValueError("negative t_ns or sample_t_ns: the wire carries uint64")
        stamp = (self._epoch_us + rows["t_ns"] // 1000).astype(">u8").view(np.uint8).reshape(n, 8)
        blocks = []
        for k, (cls, columns) in enumerate(self._messages(rows)):
            seq = (self._seq + k + FRAMES_PER_ROW * np.arange(n)) % 256
            frames, lengths = pack_columns(cls, columns, seq, **self._ids)
            blocks.append((np.concatenate([stamp, frames], axis=1), 8 + lengths))
        data = np.concatenate([b for b, _ in blocks], axis=1)
        keep = np.concatenate([np.arange(b.shape[1]) < lengths[:, None] for b, lengths in blocks], axis=1)
        self._file.write(data[keep].tobytes())  # row-major: row by row, frame by frame
        self._file.flush()
        self._seq = (self._seq + FRAMES_PER_ROW * n) % 256
        self.rows_written += n

    def _messages(self, rows: np.ndarray) -> Iterator[tuple[type, dict]]:
        mod = self._mod
        yield message_class("HEARTBEAT"), {
            "type": mod.MAV_TYPE_SPACECRAFT_ORBITER, "autopilot": mod.MAV_AUTOPILOT_GENERIC,
            "base_mode": mod.MAV_MODE_FLAG_CUSTOM_MODE_ENABLED, "custom_mode": rows["fsw_mode"],
            "system_status": mod.MAV_STATE_ACTIVE, "mavlink_version": _MAVLINK_VERSION}
        for g, spec in enumerate(FRAME_GROUPS):
            values = rows["values"][:, spec.channels]
            valid = rows["valid"][:, spec.channels] != 0
            columns = {"t_ns": rows["t_ns"], "sample_t_ns": rows["sample_t_ns"][:, g]}
            for j, (name, hi) in enumerate(zip(spec.fields, spec.discrete_max)):
                x = values[:, j]
                if hi is None:
                    columns[name] = x
                else:
                    finite = np.isfinite(x)
                    valid[:, j] &= finite
                    columns[name] = np.clip(np.rint(np.where(finite, x, 0)), 0, hi)
            columns["valid"] = (valid.astype(np.uint32) << np.arange(valid.shape[1], dtype=np.uint32)).sum(axis=1)
            yield message_class(spec.message), columns
        yield message_class(COMMAND_MESSAGE), {
            "cmd_seq": (self.rows_written + np.arange(len(rows), dtype=np.int64)) & 0xFFFF_FFFF,
            "t_ns": rows["t_ns"],
            "heater_duty": _unit_interval(rows["heater_duty"]), "tpu_cap": _unit_interval(rows["tpu_cap"]),
            **{name: rows[name] != 0 for name in ("switch_tpu", "switch_optical", "isl_enable",
                                                  "downlink_enable", "charge_enable")},
            "watchdog_kick": rows["watchdog_kick"], "fsw_mode": rows["fsw_mode"]}
        hk_cls = message_class(HOUSEKEEPING_MESSAGE)
        columns = {"t_ns": rows["t_ns"]}
        for name, wire in zip(FSW_HOUSEKEEPING_FIELDS, hk_cls.fieldtypes[1:]):
            col = rows[f"hk_{name}"]
            if name in _HK_BOOL:
                columns[name] = col != 0
            elif wire in _UINT_MAX:
                columns[name] = col.astype(np.int64).clip(0, _UINT_MAX[wire])
            elif wire == "float":
                with np.errstate(over="ignore"):
                    columns[name] = col.astype(np.float32)
            else:
                columns[name] = col
        yield hk_cls, columns
