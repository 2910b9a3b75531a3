"""Thermal control: heater hysteresis, charge inhibit, TPU throttling on a first-order plant written here."""
import math
from types import SimpleNamespace

from twin.fsw.base import EventLog
from twin.fsw.config import MonitorConfig, ThermalConfig
from twin.fsw.thermal import ThermalController
from twin.fsw.validity import SensorMonitor

S = 1_000_000_000


def controller(cfg=None, **failed):
    cfg = cfg or ThermalConfig()
    faults = SimpleNamespace(tpu_temp_failed=[False] * 4, battery_temp_failed=False, avionics_temp_failed=False)
    for k, v in failed.items():
        setattr(faults, k, v)
    m = SensorMonitor(MonitorConfig())
    return ThermalController(cfg, m, faults, EventLog()), m, faults


def step(th, m, frame, t, values, **kw):
    m.set_frame(frame(t, values, **kw))
    m.step(t * S)
    th.step(t * S)


def test_battery_heater_hysteresis(frame):
    th, m, _ = controller()
    temps = [15, 12, 10, 8, 6, 5.5, 4.9, 6, 8, 9.9, 10.0, 10.2, 8, 6, 4.8]
    duty = []
    for t, temp in enumerate(temps):
        step(th, m, frame, t, {"t_battery_c": temp})
        duty.append(th.heater_duty[0])
    # on below 5 C, held on through the band, off above 10 C, held off through the band
    expected = [0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 0, 0, 0, 1]
    assert duty == [float(e) for e in expected]


def test_avionics_heater_and_fallback_duty(frame):
    th, m, f = controller()
    step(th, m, frame, 0, {"t_avionics_c": -8.0})
    assert th.heater_duty[1] == 1.0
    step(th, m, frame, 1, {"t_avionics_c": math.nan})     # transient invalid reading: hold
    assert th.heater_duty[1] == 1.0
    f.avionics_temp_failed = True                         # FDIR declared the sensor failed
    step(th, m, frame, 2, {"t_avionics_c": math.nan})
    assert th.heater_duty[1] == ThermalConfig().avionics_heater_fallback_duty


def test_charge_inhibited_outside_range_and_on_invalid_reading(frame):
    cfg = ThermalConfig()
    th, m, _ = controller(cfg)
    seq = ([20.0] * 6 + [-0.5] + [20.0] * 6 + [45.5] + [44.5] * 8 + [30.0] * 6 + [math.nan] + [30.0] * 6)
    enabled = []
    for t, temp in enumerate(seq):
        step(th, m, frame, t, {"t_battery_c": temp})
        enabled.append(th.charge_enable)
    n = cfg.charge_ok_samples
    assert enabled[:6] == [False] * (n - 1) + [True] * (6 - n + 1)   # verified after n samples at boot
    assert enabled[6] is False                                      # -0.5 C: at once
    assert enabled[7 + n - 1] is True
    assert enabled[13] is False                                     # 45.5 C: at once
    assert not any(enabled[14:22])                                  # 44.5 C is in range but within the margin
    assert enabled[22 + n - 1] is True
    assert enabled[28] is False                                     # NaN: at once, never compared
    assert enabled[29 + n - 1] is True
    assert [e.what for e in th.events] == ["charging inhibited", "charging enabled"] * 3


def test_throttling_starts_before_the_limit_and_holds_the_group_under_it(frame):
    """Plant: C dT/dt = P(cap) - G (T - T_sink); at full power it would settle at 135 C."""
    cfg = ThermalConfig()
    th, m, _ = controller(cfg)
    c_j_k, g_w_k, t_sink = 2000.0, 100.0, 35.0
    p_idle, p_max = 1200.0, 10000.0

    def power(cap):
        return p_idle + (p_max - p_idle) * cap

    assert t_sink + power(1.0) / g_w_k > cfg.tpu_limit_c + 30
    temp, caps, temps = [t_sink] * 4, [], []
    cap = [0.0] * 4
    for t in range(3600):
        if t == 2400:
            t_sink = 0.0                       # the radiator cools: the cap may come back, slowly
        step(th, m, frame, t, {f"t_tpu{g}_c": temp[g] for g in range(4)})
        cap = list(th.cap)
        for g in range(4):
            temp[g] += (power(cap[g]) - g_w_k * (temp[g] - t_sink)) / c_j_k
        caps.append(cap[0])
        temps.append(temp[0])
    first_throttle = next(k for k, c in enumerate(caps) if 0 < k and c < caps[k - 1] - 1e-9)
    assert cfg.tpu_throttle_start_c <= temps[first_throttle - 1] < cfg.tpu_limit_c
    assert max(temps) < cfg.tpu_limit_c
    assert min(caps[600:2400]) > 0.2                                 # still computing, not switched off
    rises = [b - a for a, b in zip(caps, caps[1:])]
    assert max(rises) <= cfg.tpu_recovery_per_s + 1e-9                # recovery is rate limited
    assert caps[-1] > caps[2399]


def test_invalid_tpu_reading_holds_the_cap_and_failed_sensor_zeroes_it(frame):
    th, m, f = controller()
    for t in range(200):
        step(th, m, frame, t, {"t_tpu2_c": 45.0})
    full = th.cap[2]
    step(th, m, frame, 200, {"t_tpu2_c": 85.0})
    throttled = th.cap[2]
    assert throttled < full
    step(th, m, frame, 201, {"t_tpu2_c": math.nan})
    assert th.cap[2] == throttled
    f.tpu_temp_failed[2] = True
    step(th, m, frame, 202, {"t_tpu2_c": math.nan})
    assert th.cap[2] == 0.0
    f.tpu_temp_failed[2] = False
    step(th, m, frame, 203, {"t_tpu2_c": 45.0})
    assert th.cap[2] <= ThermalConfig().tpu_recovery_per_s + 1e-12
