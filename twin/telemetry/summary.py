"""The run summary: figures of merit computed from the recorded telemetry alone.

:func:`build_summary` reads only the rows (``RECORD_DTYPE``) and a :class:`RunMeta`,
so the same telemetry gives the same summary on every rig. Conventions:

* Each row stands for the interval until the next row (the command sent on a
  tick applies from that tick on); the last row for as long as the spacing
  before it. Integrals use these actual ``t_ns`` spacings.
* A reading counts only when flagged valid and finite. Invalid readings add
  nothing to integrals (``power_invalid_seconds``: how long the power integrals
  were blind) and are skipped by minima, maxima and limit checks.
* A limit violation is a reading strictly beyond the limit. An excursion is a
  maximal run of violating readings among the rows where the limit's channels
  were readable: an invalid reading neither starts nor ends one.
  ``limit_violation_seconds`` sums the intervals of violating rows.
* ``min_battery_soc`` is the flight software's onboard estimate
  (``hk_soc_est``), not the simulator's truth: it is what any rig can report.

Fields with no data (no valid reading, no rows) are ``None`` (JSON ``null``).
"""
from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from twin.hal import (MODES, N_TPU_GROUPS, RAILS, S_GROUND_LOCK, S_I_BATTERY, S_I_RAIL, S_I_SOLAR,
                      S_SUN_PRESENT, S_T_AVIONICS, S_T_BATTERY, S_T_TPU, S_TPU_ONLINE, S_V_BUS)

__all__ = ["TelemetryLimits", "RunMeta", "SUMMARY_KEYS", "build_summary", "write_summary", "format_summary", "iso_utc"]


@dataclass(frozen=True)
class TelemetryLimits:
    """The hardware limits the summary counts violations of (from the scenario, not the flight software)."""

    tpu_max_c: float
    battery_min_discharge_c: float      # below this the battery must not be discharged (Li-ion ~ -20 C)
    battery_max_c: float
    battery_charge_min_c: float         # below this the battery must not be charged (Li-ion ~ 0 C)
    avionics_min_c: float
    avionics_max_c: float
    charge_current_threshold_a: float = 0.5   # battery current above this counts as charging


@dataclass(frozen=True)
class RunMeta:
    """What the summary needs beyond the telemetry rows.

    ``epoch_unix_s``: the scenario epoch (``t_ns == 0``). ``utilization``: the
    workload's demand on the TPUs, 0..1, one value or one per group.
    ``realtime_factor``: if None, simulated seconds / ``wall_seconds``.
    ``complete``: False when the run was interrupted. ``extra``: more fields
    copied into the summary (their names must not collide with built-in ones).
    """

    scenario: str
    rig: str
    seed: int
    epoch_unix_s: float
    limits: TelemetryLimits
    utilization: float | Sequence[float] = 1.0
    wall_seconds: float | None = None
    realtime_factor: float | None = None
    loop_overruns: int = 0
    telemetry_digest: str = ""
    complete: bool = True
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        clash = sorted(set(self.extra) & SUMMARY_KEYS)
        if clash:
            raise ValueError(f"RunMeta.extra must not redefine summary fields: {clash}")
        util = np.atleast_1d(np.asarray(self.utilization, dtype=np.float64))
        if util.shape not in ((1,), (N_TPU_GROUPS,)) or not np.all((util >= 0.0) & (util <= 1.0)):
            raise ValueError(f"utilization: one value or {N_TPU_GROUPS} in 0..1, got {self.utilization!r}")


SUMMARY_KEYS = frozenset((
    "scenario rig seed epoch complete rows sim_seconds wall_seconds realtime_factor loop_overruns "
    "eclipse_seconds eclipse_fraction harvested_energy_kwh consumed_energy_kwh power_invalid_seconds "
    "min_battery_soc min_battery_temp_c max_battery_temp_c max_tpu_temp_c compute_delivered_tpu_hours "
    "ground_contact_seconds downlinked_bytes dropped_bytes limit_violations limit_violation_seconds "
    "mode_transitions telemetry_digest").split())


def iso_utc(unix_s: float) -> str:
    """ISO 8601 UTC with a ``Z`` (``2027-06-21T00:00:00Z``; milliseconds only if not whole)."""
    dt = datetime.fromtimestamp(unix_s, tz=timezone.utc)
    spec = "seconds" if float(unix_s).is_integer() else "milliseconds"
    return dt.replace(tzinfo=None).isoformat(timespec=spec) + "Z"


def build_summary(rows: np.ndarray, meta: RunMeta) -> dict:
    """The run's summary as a JSON-ready dict (see the module docstring for conventions)."""
    n = len(rows)
    t_ns = rows["t_ns"]
    spacing = np.diff(t_ns).clip(min=0)
    dt = np.append(spacing, spacing[-1:] if n > 1 else np.zeros(n, np.int64)) / 1e9
    x = rows["values"].astype(np.float64)
    ok = (rows["valid"] != 0) & np.isfinite(x)
    sim_s = float(dt.sum())

    def seconds(mask: np.ndarray) -> float:
        return float(dt[mask].sum())

    def reading(ch: int) -> np.ndarray:
        return np.where(ok[:, ch], x[:, ch], 0.0)

    v_bus = reading(S_V_BUS)
    p_in = v_bus * reading(S_I_SOLAR)
    p_load = v_bus * sum(reading(S_I_RAIL[r]) for r in RAILS)
    power_chs = [S_V_BUS, S_I_SOLAR, *(S_I_RAIL[r] for r in RAILS)]
    util = np.broadcast_to(np.asarray(meta.utilization, dtype=np.float64), (N_TPU_GROUPS,))
    chips = sum(reading(S_TPU_ONLINE[g]) * np.minimum(util[g], rows["tpu_cap"][:, g]) for g in range(N_TPU_GROUPS))
    eclipse = seconds(ok[:, S_SUN_PRESENT] & (x[:, S_SUN_PRESENT] == 0))
    wall, rtf = meta.wall_seconds, meta.realtime_factor
    rtf = rtf if rtf is not None else (sim_s / wall if wall else None)
    violations = _limit_violations(x, ok, dt, meta.limits)
    return {
        "scenario": meta.scenario, "rig": meta.rig, "seed": meta.seed, "epoch": iso_utc(meta.epoch_unix_s),
        "complete": meta.complete, "rows": n, "sim_seconds": sim_s,
        "wall_seconds": wall, "realtime_factor": rtf, "loop_overruns": meta.loop_overruns,
        "eclipse_seconds": eclipse, "eclipse_fraction": eclipse / sim_s if sim_s > 0 else None,
        "harvested_energy_kwh": float(p_in @ dt) / 3.6e6,
        "consumed_energy_kwh": float(p_load @ dt) / 3.6e6,
        "power_invalid_seconds": seconds(~ok[:, power_chs].all(axis=1)),
        "min_battery_soc": _extreme(rows["hk_soc_est"], np.isfinite(rows["hk_soc_est"]), np.min),
        "min_battery_temp_c": _extreme(x[:, S_T_BATTERY], ok[:, S_T_BATTERY], np.min),
        "max_battery_temp_c": _extreme(x[:, S_T_BATTERY], ok[:, S_T_BATTERY], np.max),
        "max_tpu_temp_c": _extreme(x[:, S_T_TPU], ok[:, S_T_TPU], np.max),
        "compute_delivered_tpu_hours": float((rows["switch_tpu"] != 0) * chips @ dt) / 3600.0,
        "ground_contact_seconds": seconds(ok[:, S_GROUND_LOCK] & (x[:, S_GROUND_LOCK] == 1)),
        "downlinked_bytes": _last_bytes(rows["hk_downlinked_bytes"]),
        "dropped_bytes": _last_bytes(rows["hk_dropped_bytes"]),
        "limit_violations": {k: c for k, (c, _) in violations.items()},
        "limit_violation_seconds": {k: s for k, (_, s) in violations.items()},
        "mode_transitions": _mode_transitions(t_ns, rows["fsw_mode"]),
        "telemetry_digest": meta.telemetry_digest,
        **meta.extra,
    }


def _extreme(values: np.ndarray, mask: np.ndarray, fn) -> float | None:
    picked = values[mask]
    return float(fn(picked)) if picked.size else None


def _last_bytes(counter: np.ndarray) -> int | None:
    return int(round(float(counter[-1]))) if len(counter) and math.isfinite(counter[-1]) else None


def _excursions(beyond: np.ndarray, observed: np.ndarray, dt: np.ndarray) -> tuple[int, float]:
    seen = beyond[observed]
    count = int(seen[:1].sum()) + int(np.count_nonzero(seen[1:] & ~seen[:-1]))
    return count, float(dt[beyond].sum())


def _limit_violations(x: np.ndarray, ok: np.ndarray, dt: np.ndarray, lim: TelemetryLimits) -> dict:
    tpu_ok = ok[:, S_T_TPU]
    tpu_hot = (tpu_ok & (x[:, S_T_TPU] > lim.tpu_max_c)).any(axis=1)
    tb, tb_ok = x[:, S_T_BATTERY], ok[:, S_T_BATTERY]
    ib, ib_ok = x[:, S_I_BATTERY], ok[:, S_I_BATTERY]
    ta, ta_ok = x[:, S_T_AVIONICS], ok[:, S_T_AVIONICS]
    charging_cold = tb_ok & ib_ok & (ib > lim.charge_current_threshold_a) & (tb < lim.battery_charge_min_c)
    return {
        "tpu_max": _excursions(tpu_hot, tpu_ok.any(axis=1), dt),
        "battery_min_discharge": _excursions(tb_ok & (tb < lim.battery_min_discharge_c), tb_ok, dt),
        "battery_max": _excursions(tb_ok & (tb > lim.battery_max_c), tb_ok, dt),
        "battery_charge_cold": _excursions(charging_cold, tb_ok & ib_ok, dt),
        "avionics_range": _excursions(ta_ok & ((ta < lim.avionics_min_c) | (ta > lim.avionics_max_c)), ta_ok, dt),
    }


def _mode_transitions(t_ns: np.ndarray, mode: np.ndarray) -> list[dict]:
    name = [*MODES, *(f"MODE_{m}" for m in range(len(MODES), 256))]  # fsw_mode is a uint8
    return [{"t_s": int(t_ns[i]) / 1e9, "from": name[mode[i - 1]], "to": name[mode[i]]}
            for i in (np.flatnonzero(mode[1:] != mode[:-1]) + 1).tolist()]


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, np.ndarray)):
        return [_jsonable(v) for v in obj]
    obj = obj.item() if isinstance(obj, np.generic) else obj
    return None if isinstance(obj, float) and not math.isfinite(obj) else obj


def write_summary(path: str | os.PathLike, summary: Mapping[str, Any]) -> None:
    """Write ``summary`` as JSON to ``path`` atomically (temp file in the same directory, then rename).

    Non-finite floats become ``null`` so the file is strict JSON.
    """
    path = Path(path)
    text = json.dumps(_jsonable(dict(summary)), indent=2, allow_nan=False) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o644)  # mkstemp makes it private; the summary is an ordinary output file
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def format_summary(summary: Mapping[str, Any]) -> str:
    """A short human-readable summary (about a dozen lines) for the terminal."""
    g = summary.get

    def num(v: Any, fmt: str, scale: float = 1.0, unit: str = "") -> str:
        return "n/a" if v is None else format(v * scale, fmt) + unit

    state = "complete" if g("complete", True) else "INTERRUPTED"
    secs = g("limit_violation_seconds") or {}
    limits = ", ".join(f"{k} x{c} ({secs.get(k, 0):.0f} s)"
                       for k, c in (g("limit_violations") or {}).items() if c) or "none violated"
    modes = g("mode_transitions") or []
    shown = ", ".join(f"{m['t_s'] / 3600:.2f} h {m['from']}->{m['to']}" for m in modes[:3])
    more = f" (+{len(modes) - 3} more)" if len(modes) > 3 else ""
    return "\n".join([f"Run       {g('scenario')} on {g('rig')}, seed {g('seed')}, epoch {g('epoch')}: {state}",
        f"Time      {num(g('sim_seconds'), '.2f', 1 / 3600, ' h')} simulated in "
        f"{num(g('wall_seconds'), '.1f', 1, ' s')} wall (x{num(g('realtime_factor'), '.1f')}), "
        f"{g('loop_overruns', 0)} loop overruns",
        f"Eclipse   {num(g('eclipse_seconds'), '.1f', 1 / 60, ' min')} "
        f"({num(g('eclipse_fraction'), '.1f', 100, ' %')} of the run)",
        f"Energy    harvested {num(g('harvested_energy_kwh'), '.2f', 1, ' kWh')}, "
        f"consumed {num(g('consumed_energy_kwh'), '.2f', 1, ' kWh')}",
        f"Battery   min SoC {num(g('min_battery_soc'), '.1f', 100, ' %')} (onboard estimate), "
        f"temperature {num(g('min_battery_temp_c'), '.1f')} .. {num(g('max_battery_temp_c'), '.1f', 1, ' C')}",
        f"TPUs      max {num(g('max_tpu_temp_c'), '.1f', 1, ' C')}, "
        f"{num(g('compute_delivered_tpu_hours'), '.1f', 1, ' TPU-hours')} delivered",
        f"Ground    contact {num(g('ground_contact_seconds'), '.1f', 1 / 60, ' min')}, "
        f"downlinked {num(g('downlinked_bytes'), '.3f', 1e-9, ' GB')}, "
        f"dropped {num(g('dropped_bytes'), '.3f', 1e-9, ' GB')}",
        f"Limits    {limits}",
        f"Modes     {len(modes)} transition{'' if len(modes) == 1 else 's'}{': ' + shown + more if modes else ''}",
        f"Digest    {g('telemetry_digest') or 'n/a'}",
    ])
