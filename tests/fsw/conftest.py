"""Helpers for the flight-software tests: sensor frames from a dict, one executive-like tick."""
from __future__ import annotations

import math

import pytest

from twin.hal import CHANNELS, GROUPS, SensorFrame, quantize_f32

S = 1_000_000_000

#: Plausible readings of a healthy satellite in sunlight, computing, its battery charging.
NOMINAL = {
    **{f"t_tpu{g}_c": 45.0 for g in range(4)},
    "t_coldplate_c": 30.0, "t_radiator_c": 5.0, "t_battery_c": 20.0, "t_avionics_c": 25.0,
    "t_solar_array_c": 60.0, "v_bus_v": 95.0, "v_battery_v": 95.0, "i_battery_a": 60.0, "i_solar_a": 250.0,
    "i_avionics_a": 4.2, "i_tpu_a": 200.0, "i_optical_a": 2.5, "i_downlink_a": 0.0, "i_heater_battery_a": 0.0,
    "i_heater_avionics_a": 0.0, "sun_present": 1.0,
    **{f"isl{k}_state": 2.0 for k in range(4)}, **{f"isl{k}_rx_dbm": -20.0 for k in range(4)},
    "ground_lock": 0.0, **{f"tpu{g}_online": 24.0 for g in range(4)}, "tpu_sdc_count": 0.0,
    "board_boot_count": 1.0,
}


def make_frame(t_s: float, values: dict | None = None, *, invalid=(), exact=(), sample_t_s: dict | None = None,
               dither: bool = True) -> SensorFrame:
    """A frame at ``t_s`` with ``values`` over :data:`NOMINAL`, quantized to float32 as the wire does.

    Analog readings get a small deterministic dither that never repeats on
    consecutive seconds (as sensor noise), except channels in ``exact``, values
    on a range edge and non-finite values. ``invalid`` names channels the board
    flags invalid; ``sample_t_s`` maps a group name to its sample time (default
    ``t_s``).
    """
    values = {**NOMINAL, **(values or {})}
    unknown = set(values) - {c.name for c in CHANNELS}
    assert not unknown, f"unknown channels {unknown}"
    k = round(t_s)
    out = []
    for i, c in enumerate(CHANNELS):
        v = float(values[c.name])
        if dither and not c.discrete and c.name not in exact and math.isfinite(v) and v not in (c.lo, c.hi):
            v += 1e-3 * (((k * 7919 + i * 104729) % 17) - 8)
        out.append(quantize_f32(v) if math.isfinite(v) else v)
    t_ns = round(t_s * S)
    samples = tuple(round((sample_t_s or {}).get(g, t_s) * S) for g in GROUPS)
    return SensorFrame(t_ns, out, [c.name not in invalid for c in CHANNELS], samples)


def run_tick(fsw, frame: SensorFrame, t_ns: int | None = None):
    """One executive tick without the executive: frame in, every task, command and housekeeping out."""
    t = frame.t_ns if t_ns is None else t_ns
    fsw.on_frame(frame)
    for task in fsw.tasks:
        task.step(t)
    return fsw.command(), fsw.housekeeping()


@pytest.fixture
def frame():
    return make_frame


@pytest.fixture
def tick():
    return run_tick
