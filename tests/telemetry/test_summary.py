"""build_summary against values worked out by hand on small synthetic runs."""
import json

import numpy as np
import pytest

from twin.hal import (N_CHANNELS, S_GROUND_LOCK, S_I_BATTERY, S_I_RAIL, S_I_SOLAR, S_SUN_PRESENT,
                      S_T_AVIONICS, S_T_BATTERY, S_T_TPU, S_TPU_ONLINE, S_V_BUS, ActuatorCommand,
                      FswHousekeeping, SensorFrame)
from twin.telemetry.records import row_of, rows_to_array
from twin.telemetry.summary import RunMeta, TelemetryLimits, build_summary, format_summary, write_summary

LIMITS = TelemetryLimits(tpu_max_c=85.0, battery_min_discharge_c=-20.0, battery_max_c=45.0,
                         battery_charge_min_c=0.0, avionics_min_c=-30.0, avionics_max_c=70.0,
                         charge_current_threshold_a=0.5)


def meta(**kw):
    base = dict(scenario="eclipse-day", rig="sim", seed=7, epoch_unix_s=1813536000, limits=LIMITS)
    return RunMeta(**{**base, **kw})


def make_rows(t_s, columns, invalid=(), cmd_fields=None, hk_fields=None):
    """Rows at times ``t_s``; ``columns`` maps channel index -> per-row values (others 20.0 or 0.0);
    ``invalid`` lists (row, channel) flagged invalid; cmd_fields/hk_fields map name -> per-row values."""
    rows = []
    for i, t in enumerate(t_s):
        values = [20.0] * N_CHANNELS
        for ch in (S_SUN_PRESENT, S_GROUND_LOCK, S_I_SOLAR, S_I_BATTERY, *S_I_RAIL.values(), *S_TPU_ONLINE):
            values[ch] = 0.0
        for ch, seq in columns.items():
            values[ch] = float(seq[i])
        valid = [True] * N_CHANNELS
        for r, ch in invalid:
            if r == i:
                valid[ch] = False
        cmd = ActuatorCommand(**{k: v[i] for k, v in (cmd_fields or {}).items()})
        hk = FswHousekeeping(**{k: v[i] for k, v in (hk_fields or {}).items()})
        rows.append(row_of(SensorFrame(int(t * 1e9), values, valid, (int(t * 1e9),) * 3), cmd, hk))
    return rows_to_array(rows)


def test_integrals_use_actual_spacing():
    # Rows at 0, 2, 3, 7 s: each row holds until the next, the last one for 4 s like the one before.
    t = [0, 2, 3, 7]
    hold = [2, 1, 4, 4]
    solar = [10, 0, 0, 20]
    rail_a = {"avionics": [1, 1, 1, 1], "tpu": [5, 5, 5, 5], "heater_battery": [0, 2, 2, 0]}
    cols = {S_V_BUS: [100] * 4, S_I_SOLAR: solar, S_SUN_PRESENT: [1, 0, 0, 1], S_GROUND_LOCK: [0, 1, 1, 0],
            **{S_I_RAIL[r]: a for r, a in rail_a.items()}, **{S_TPU_ONLINE[g]: [8, 8, 8, 4] for g in range(4)}}
    caps = [[1.0, 0.5, 0.25, 0.0]] * 4
    rows = make_rows(t, cols, invalid=[(1, S_I_RAIL["tpu"])],
                     cmd_fields={"switch_tpu": [True, True, False, True], "tpu_cap": caps},
                     hk_fields={"soc_est": [0.9, 0.7, 0.75, 0.8], "downlinked_bytes": [0, 5, 9, 12.0],
                                "dropped_bytes": [0, 0, 1, 3.0]})
    s = build_summary(rows, meta(utilization=0.6, wall_seconds=2.2))

    assert s["sim_seconds"] == 11.0 and s["rows"] == 4
    assert s["eclipse_seconds"] == 5.0 and s["eclipse_fraction"] == pytest.approx(5 / 11)
    assert s["ground_contact_seconds"] == 5.0
    assert s["harvested_energy_kwh"] == pytest.approx(100 * (10 * 2 + 20 * 4) / 3.6e6)
    # Row 1's tpu rail reading is invalid: it counts as nothing, and the power integrals were blind 1 s.
    load_a = [1 + 5 + 0, 1 + 0 + 2, 1 + 5 + 2, 1 + 5 + 0]
    assert s["consumed_energy_kwh"] == pytest.approx(sum(100 * a * h for a, h in zip(load_a, hold)) / 3.6e6)
    assert s["power_invalid_seconds"] == 1.0
    # min(0.6, cap) per group = 0.6 + 0.5 + 0.25 + 0 = 1.35 chip-fractions per online chip; rail off at row 2.
    chips_s = 1.35 * (8 * 2 + 8 * 1 + 0 + 4 * 4)
    assert s["compute_delivered_tpu_hours"] == pytest.approx(chips_s / 3600)
    assert s["min_battery_soc"] == pytest.approx(0.7)
    assert s["downlinked_bytes"] == 12 and s["dropped_bytes"] == 3
    assert s["realtime_factor"] == pytest.approx(11 / 2.2)


def test_extremes_ignore_invalid_and_nan_readings():
    cols = {S_T_BATTERY: [10, 99, -50, 30], S_T_TPU[2]: [60, float("nan"), 70, 200]}
    rows = make_rows([0, 1, 2, 3], cols, invalid=[(1, S_T_BATTERY), (2, S_T_BATTERY), (3, S_T_TPU[2])])
    s = build_summary(rows, meta())
    assert (s["min_battery_temp_c"], s["max_battery_temp_c"]) == (10.0, 30.0)
    assert s["max_tpu_temp_c"] == 70.0


def test_limit_excursions_and_seconds():
    t = list(range(10))
    battery = [10, 50, 50, 10, 50, 99, 50, 10, -25, -5]
    charging = [0, 0, 0, 0, 0, 0, 0, 0, 0, 2.0]
    tpu0 = [80, 90, 90, 80, 80, 80, 80, 80, 80, 80]
    tpu1 = [80, 80, 90, 90, 80, 80, 80, 90, 80, 80]
    avionics = [20, 75, 20, -40, -40, 20, 20, 20, 20, 20]
    cols = {S_T_BATTERY: battery, S_I_BATTERY: charging, S_T_TPU[0]: tpu0, S_T_TPU[1]: tpu1,
            S_T_AVIONICS: avionics}
    # Row 5's battery reading is invalid: it neither ends nor starts an excursion.
    rows = make_rows(t, cols, invalid=[(5, S_T_BATTERY)])
    s = build_summary(rows, meta())
    v, sec = s["limit_violations"], s["limit_violation_seconds"]
    assert v == {"tpu_max": 2, "battery_min_discharge": 1, "battery_max": 2, "battery_charge_cold": 1,
                 "avionics_range": 2}
    assert sec == {"tpu_max": 4.0, "battery_min_discharge": 1.0, "battery_max": 4.0,
                   "battery_charge_cold": 1.0, "avionics_range": 3.0}


def test_charging_below_threshold_is_not_a_cold_charge():
    rows = make_rows([0, 1], {S_T_BATTERY: [-5, -5], S_I_BATTERY: [0.4, -3.0]})
    assert build_summary(rows, meta())["limit_violations"]["battery_charge_cold"] == 0


def test_mode_transitions():
    rows = make_rows([0, 1, 2, 3, 4, 5], {}, cmd_fields={"fsw_mode": [0, 0, 2, 2, 1, 2]})
    assert build_summary(rows, meta())["mode_transitions"] == [
        {"t_s": 2.0, "from": "SAFE", "to": "NOMINAL"},
        {"t_s": 4.0, "from": "NOMINAL", "to": "DEGRADED"},
        {"t_s": 5.0, "from": "DEGRADED", "to": "NOMINAL"}]


def test_meta_fields_pass_through():
    s = build_summary(make_rows([0, 1], {}), meta(wall_seconds=4.0, realtime_factor=3.0, loop_overruns=2,
                                                  telemetry_digest="ab" * 32, complete=False,
                                                  extra={"satellites": 1}))
    assert (s["scenario"], s["rig"], s["seed"], s["epoch"]) == ("eclipse-day", "sim", 7, "2027-06-21T00:00:00Z")
    assert (s["wall_seconds"], s["realtime_factor"], s["loop_overruns"]) == (4.0, 3.0, 2)
    assert s["telemetry_digest"] == "ab" * 32 and s["complete"] is False and s["satellites"] == 1
    with pytest.raises(ValueError):
        meta(extra={"sim_seconds": 1})
    with pytest.raises(ValueError):
        meta(utilization=(0.5, 0.5))


def test_empty_run_has_no_data_rather_than_errors():
    s = build_summary(make_rows([], {}), meta())
    assert s["sim_seconds"] == 0.0 and s["eclipse_fraction"] is None and s["max_tpu_temp_c"] is None
    assert s["downlinked_bytes"] is None and s["mode_transitions"] == []
    assert 10 <= len(format_summary(s).splitlines()) <= 15


def test_write_summary_is_strict_json_and_replaces_atomically(tmp_path):
    path = tmp_path / "summary.json"
    path.write_text("old")
    s = build_summary(make_rows([0, 1, 2], {}), meta(extra={"note": float("nan"), "arr": np.float32(1.5)}))
    write_summary(path, s)
    loaded = json.loads(path.read_text())
    assert loaded["note"] is None and loaded["arr"] == 1.5 and loaded["sim_seconds"] == 3.0
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]
    assert path.stat().st_mode & 0o777 == 0o644


def test_format_summary_is_short_and_names_the_run():
    rows = make_rows([0, 1, 2], {S_T_BATTERY: [10, 50, 10]}, cmd_fields={"fsw_mode": [0, 2, 2]})
    text = format_summary(build_summary(rows, meta(wall_seconds=1.0)))
    assert 10 <= len(text.splitlines()) <= 15
    assert "eclipse-day" in text and "battery_max x1" in text and "SAFE->NOMINAL" in text
