"""A telemetry sink writing one CSV row per tick, for spreadsheets and quick analysis.

Columns, in order:

* ``t_s``: seconds since the scenario epoch (from ``t_ns``), ``utc``: ISO 8601
  UTC time to the millisecond (``2027-06-21T00:00:01.000Z``);
* one column per channel of :data:`~twin.hal.CHANNELS`, named after it;
* ``board_invalid_channels``: the channels the board flagged invalid on that
  tick, ``;``-separated (empty when all are valid);
* the command: ``heater_duty_<zone>``, ``switch_tpu``, ``switch_optical``,
  ``tpu_cap<g>``, ``isl_enable<k>``, ``downlink_enable``, ``charge_enable``,
  ``watchdog_kick``, ``fsw_mode``;
* the housekeeping: ``hk_<field>`` for every field of :class:`~twin.hal.FswHousekeeping`.

float32 values are written with 9 significant digits (``%.9g``), which reads
back to the same float32; float64 housekeeping values with ``repr`` (exact);
NaN as ``nan``. The CSV is a convenience view: the tlog is the archival record.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import numpy as np

from twin.hal import CHANNELS, HEATER_ZONES, N_ISL, N_TPU_GROUPS

from .records import HK_DTYPES, RECORD_DTYPE

__all__ = ["CsvSink", "csv_columns"]

# Formatting floats dominates the cost; most columns (discrete channels,
# switches, counters, caps) hold each value for many ticks, so a column with
# fewer runs than this fraction of its length is formatted once per run.
_RUN_FRACTION = 0.25
_F32 = "%.9g".__mod__  # 9 significant digits: enough for any float32 to read back exactly
_NAMES = np.array([c.name for c in CHANNELS], dtype=object)
_BITS = np.int64(1) << np.arange(len(CHANNELS), dtype=np.int64)


def csv_columns() -> list[str]:
    """The CSV header, in column order."""
    cols = ["t_s", "utc", *(c.name for c in CHANNELS), "board_invalid_channels"]
    cols += [f"heater_duty_{z}" for z in HEATER_ZONES] + ["switch_tpu", "switch_optical"]
    cols += [f"tpu_cap{g}" for g in range(N_TPU_GROUPS)] + [f"isl_enable{k}" for k in range(N_ISL)]
    cols += ["downlink_enable", "charge_enable", "watchdog_kick", "fsw_mode"]
    return cols + [f"hk_{name}" for name in HK_DTYPES]


class CsvSink:
    """Writes chunks of ``RECORD_DTYPE`` rows to ``path`` as CSV (header once, then rows appended).

    ``epoch_unix_s`` is the scenario epoch (``t_ns == 0``) as Unix seconds, for
    the ``utc`` column. The file is created (truncated) on construction and
    flushed after every chunk, so an interrupted run keeps what was recorded.
    """

    def __init__(self, path: str | os.PathLike, epoch_unix_s: float):
        self.path = Path(path)
        whole = int(np.floor(epoch_unix_s))
        self._epoch = np.datetime64(whole, "s").astype("M8[ns]") + np.timedelta64(
            int(round((epoch_unix_s - whole) * 1e9)), "ns")
        self._f = open(self.path, "w", encoding="utf-8", newline="")
        self._f.write(",".join(csv_columns()) + "\n")
        self._f.flush()

    def write_chunk(self, rows: np.ndarray) -> None:
        """Append ``rows`` (a ``RECORD_DTYPE`` array) as CSV lines."""
        if self._f is None:
            raise ValueError(f"CsvSink({self.path}) is closed")
        if rows.dtype != RECORD_DTYPE:
            raise TypeError(f"expected RECORD_DTYPE rows, got {rows.dtype}")
        if len(rows) == 0:
            return
        cols = _string_columns(rows, self._epoch)
        self._f.write("\n".join(map(",".join, zip(*cols))) + "\n")
        self._f.flush()

    def close(self) -> None:
        """Close the file. Idempotent."""
        if self._f is not None:
            f, self._f = self._f, None
            f.close()


def _string_columns(rows: np.ndarray, epoch: np.datetime64) -> list[list[str]]:
    done: dict[tuple, list[str]] = {}

    def fmt(col: np.ndarray, f: Callable[[Any], str]) -> list[str]:
        # Identical columns are common (TPU groups under one cap, twin sensors): format them once.
        key = (f, col.dtype.str, col.tobytes())
        if key not in done:
            done[key] = _fmt(col, f)
        return done[key]

    t_ns = rows["t_ns"]
    cols = [_fmt(t_ns / 1e9, repr),
            np.datetime_as_string(epoch + t_ns.astype("m8[ns]"), unit="ms", timezone="UTC").tolist()]
    cols += [fmt(v, _F32) for v in rows["values"].T]
    cols.append(_invalid_names(rows["valid"]))
    cols += [fmt(v, _F32) for v in rows["heater_duty"].T]
    cols += [fmt(rows[n], str) for n in ("switch_tpu", "switch_optical")]
    cols += [fmt(v, _F32) for v in rows["tpu_cap"].T]
    cols += [fmt(v, str) for v in rows["isl_enable"].T]
    cols += [fmt(rows[n], str) for n in ("downlink_enable", "charge_enable", "watchdog_kick", "fsw_mode")]
    cols += [fmt(rows[f"hk_{n}"], repr if dt == "<f8" else str) for n, dt in HK_DTYPES.items()]
    return cols


def _fmt(col: np.ndarray, fmt: Callable[[Any], str]) -> list[str]:
    """Format one column to strings; a value held for many ticks is formatted once per run."""
    n = len(col)
    starts = np.flatnonzero(col[1:] != col[:-1]) + 1
    if len(starts) < _RUN_FRACTION * n:
        starts = np.concatenate(([0], starts))
        text = np.array([fmt(v) for v in col[starts].tolist()], dtype=object)
        return np.repeat(text, np.diff(np.append(starts, n))).tolist()
    return list(map(fmt, col.tolist()))


def _invalid_names(valid: np.ndarray) -> list[str]:
    bad = valid == 0
    if not bad.any():
        return [""] * len(valid)
    code = bad.astype(np.int64) @ _BITS
    patterns, inverse = np.unique(code, return_inverse=True)
    text = np.array([";".join(_NAMES[(p & _BITS) != 0]) for p in patterns.tolist()], dtype=object)
    return text[inverse].tolist()
