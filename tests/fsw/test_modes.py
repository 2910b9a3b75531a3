"""Modes and FDIR: start in SAFE, the documented response to each kind of bad reading, deep faults."""
import math

from twin.fsw import DEGRADED, NOMINAL, SAFE, FlightSoftware, FswConfig
from twin.fsw.config import FdirConfig, ThermalConfig

DWELL = FdirConfig().safe_exit_dwell_s
N_INVALID = FdirConfig().invalid_samples


def run(fsw, frame, tick, t0, t1, values=None, **kw):
    out = []
    for t in range(t0, t1):
        out.append(tick(fsw, frame(t, values, **kw)))
    return out


def nominal_fsw(frame, tick):
    fsw = FlightSoftware(FswConfig())
    run(fsw, frame, tick, 0, int(DWELL) + 10)
    assert fsw.modes.mode == NOMINAL
    return fsw


def test_starts_in_safe_and_goes_nominal_only_after_the_dwell(frame, tick):
    fsw = FlightSoftware(FswConfig())
    cmd, hk = tick(fsw, frame(0))
    assert hk.mode == SAFE and cmd.fsw_mode == SAFE and not cmd.switch_tpu and not cmd.switch_optical
    out = run(fsw, frame, tick, 1, int(DWELL) + 2)
    modes = [hk.mode for _, hk in out]
    assert modes[int(DWELL) - 2] == SAFE and modes[-1] == NOMINAL
    assert modes.index(NOMINAL) == int(DWELL) - 1             # t = DWELL: conditions held since t = 0
    cmd, hk = out[-1]
    assert cmd.switch_tpu and cmd.fsw_mode == NOMINAL
    assert [e.what for e in fsw.event_log] == ["mode SAFE -> NOMINAL"]


def test_stays_safe_while_the_soc_is_too_low(frame, tick):
    fsw = FlightSoftware(FswConfig())
    out = run(fsw, frame, tick, 0, 2 * int(DWELL), {"v_battery_v": 24 * 3.70, "v_bus_v": 24 * 3.70})
    assert all(hk.mode == SAFE for _, hk in out)
    assert 0.4 < fsw.soc.soc < 0.55 and not any(cmd.switch_tpu for cmd, _ in out)


def test_nan_tpu_temperature_caps_that_group_after_persistence_then_recovers(frame, tick):
    fsw = nominal_fsw(frame, tick)
    t0 = 400
    thermal_caps, before = [], []
    for t in range(t0, t0 + N_INVALID - 1):
        before.append(tick(fsw, frame(t, {"t_tpu1_c": math.nan})))
        thermal_caps.append(fsw.thermal.cap[1])
    assert all(hk.mode == NOMINAL for _, hk in before)
    assert len(set(thermal_caps)) == 1 and thermal_caps[0] > 0.0   # held, never moved by a bad reading
    cmd, hk = tick(fsw, frame(t0 + N_INVALID - 1, {"t_tpu1_c": math.nan}))
    assert hk.mode == DEGRADED and cmd.tpu_cap[1] == 0.0 and cmd.switch_tpu
    assert min(cmd.tpu_cap[g] for g in (0, 2, 3)) > 0.5
    event = fsw.event_log.find("t_tpu1_c failed")[-1]
    assert "NAN" in event.why and "capped to 0" in event.what
    t1 = t0 + N_INVALID
    out = run(fsw, frame, tick, t1, t1 + FdirConfig().recover_samples + 5)
    modes = [hk.mode for _, hk in out]
    assert modes[FdirConfig().recover_samples - 2] == DEGRADED and modes[-1] == NOMINAL
    caps = [cmd.tpu_cap[1] for cmd, _ in out]
    assert 0.0 < caps[-1] <= 6 * ThermalConfig().tpu_recovery_per_s + 1e-9   # ramping back from 0


def test_stale_thermal_group_degrades_but_never_reaches_a_limit_check(frame, tick):
    fsw = nominal_fsw(frame, tick)
    t0 = 400
    limit = fsw.config.monitor.stale_limit_s
    frozen = {"thermal": t0 - 1}                                # the thermal group stops being sampled
    out = run(fsw, frame, tick, t0, t0 + int(limit), sample_t_s=frozen)
    # once stale, even alarming values are never compared with a limit
    out += run(fsw, frame, tick, t0 + int(limit), t0 + 20, {"t_battery_c": 70.0, "t_tpu0_c": 120.0},
               sample_t_s=frozen)
    cmds = [c for c, _ in out]
    stale_from = next(k for k, (_, hk) in enumerate(out) if hk.invalid_channels > 0)
    assert not cmds[stale_from].charge_enable                  # charging inhibited at once
    cmd, hk = out[-1]
    assert hk.mode == DEGRADED and not cmd.switch_tpu and cmd.tpu_cap == [0.0] * 4
    th = ThermalConfig()
    assert cmd.heater_duty == [th.battery_heater_fallback_duty, th.avionics_heater_fallback_duty]
    assert not fsw.event_log.find("-> SAFE")


def test_stuck_battery_temperature(frame, tick):
    fsw = nominal_fsw(frame, tick)
    n = fsw.config.monitor.stuck_samples
    t0 = 400
    out = run(fsw, frame, tick, t0, t0 + n + N_INVALID + 2, {"t_battery_c": 20.0}, exact=("t_battery_c",))
    enabled = [c.charge_enable for c, _ in out]
    assert all(enabled[:n - 1]) and not enabled[n - 1]         # STUCK on the n-th identical sample
    assert out[n + N_INVALID - 3][1].mode == NOMINAL
    cmd, hk = out[-1]
    assert hk.mode == DEGRADED and cmd.heater_duty[0] == ThermalConfig().battery_heater_fallback_duty
    assert "STUCK" in fsw.event_log.find("t_battery_c failed")[-1].why


def test_out_of_range_tpu_reading_is_contained_but_a_valid_hot_one_means_safe(frame, tick):
    fsw = nominal_fsw(frame, tick)
    out = run(fsw, frame, tick, 400, 420, {"t_tpu2_c": 200.0})   # beyond the sensor's 150 C
    cmd, hk = out[-1]
    assert hk.mode == DEGRADED and cmd.tpu_cap[2] == 0.0 and cmd.switch_tpu
    assert "RANGE" in fsw.event_log.find("t_tpu2_c failed")[-1].why

    fsw = nominal_fsw(frame, tick)
    deep = FdirConfig().deep_samples
    out = run(fsw, frame, tick, 400, 400 + deep, {"t_tpu2_c": 120.0})
    assert [hk.mode for _, hk in out] == [NOMINAL] * (deep - 1) + [SAFE]
    assert not out[-1][0].switch_tpu and not out[-1][0].switch_optical
    assert "t_tpu2_c 120.0 C" in fsw.event_log.find("-> SAFE")[-1].why


def test_battery_temperature_nan_is_contained_but_valid_overheat_means_safe(frame, tick):
    fsw = nominal_fsw(frame, tick)
    out = run(fsw, frame, tick, 400, 420, {"t_battery_c": math.nan})
    assert out[-1][1].mode == DEGRADED and not out[-1][0].charge_enable

    fsw = nominal_fsw(frame, tick)
    out = run(fsw, frame, tick, 400, 405, {"t_battery_c": 58.0})
    assert [hk.mode for _, hk in out][:3] == [NOMINAL, NOMINAL, SAFE]
    # in SAFE the heaters are still controlled: a cold battery gets its heater
    out = run(fsw, frame, tick, 405, 410, {"t_battery_c": 2.0})
    assert out[-1][1].mode == SAFE and out[-1][0].heater_duty[0] == ThermalConfig().battery_heater_duty


def test_board_reboot_means_safe_at_once(frame, tick):
    fsw = nominal_fsw(frame, tick)
    cmd, hk = tick(fsw, frame(400, {"board_boot_count": 2}))
    assert hk.mode == SAFE and not cmd.switch_tpu
    assert fsw.event_log.find("board reboot detected")
    out = run(fsw, frame, tick, 401, 401 + int(DWELL) + 2, {"board_boot_count": 2})
    assert out[-1][1].mode == NOMINAL


def test_lost_battery_sensors_stop_compute_and_hold_the_soc(frame, tick):
    fsw = nominal_fsw(frame, tick)
    soc = fsw.soc.soc
    out = run(fsw, frame, tick, 400, 410, {"i_battery_a": math.inf})
    cmd, hk = out[-1]
    assert hk.mode == DEGRADED and not cmd.switch_tpu and hk.compute_budget_w == 0.0
    assert fsw.soc.soc == soc


def test_repeated_task_faults_mean_safe(frame, tick):
    fsw = nominal_fsw(frame, tick)

    def faulty_tick(t, failing):
        fsw.on_frame(frame(t))
        for task in fsw.tasks:
            task.step(t * 10**9)
            fsw.health[task.name] = task.name != failing
        return fsw.command(), fsw.housekeeping()

    cmd, hk = faulty_tick(400, "thermal")
    assert hk.task_faults == 1 and hk.mode == NOMINAL
    faulty_tick(401, "links")
    cmd, hk = faulty_tick(402, "power")
    assert hk.task_faults == 3 and hk.mode == SAFE and not cmd.switch_tpu
    assert "task faults" in fsw.event_log.find("-> SAFE")[-1].why


def test_reset_returns_to_safe_and_keeps_the_books(frame, tick):
    fsw = nominal_fsw(frame, tick)
    generated, events = fsw.queue.total_generated, fsw.fdir_events
    fsw.reset(400 * 10**9)
    cmd, hk = tick(fsw, frame(400))
    assert hk.mode == SAFE and not cmd.switch_tpu
    assert fsw.queue.total_generated >= generated and hk.fdir_events >= events
