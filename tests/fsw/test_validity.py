"""Sensor monitor: each failure kind is its own state and never reaches a consumer."""
import math

from twin.fsw.config import MonitorConfig
from twin.fsw.validity import BOARD_INVALID, NAN, OK, RANGE, STALE, STUCK, SensorMonitor
from twin.hal import CHANNEL_INDEX, CHANNELS, N_CHANNELS

S = 1_000_000_000
TB = CHANNEL_INDEX["t_battery_c"]


def monitor_after(frames, config=None):
    config = config or MonitorConfig()
    m = SensorMonitor(config)
    for f in frames:
        m.set_frame(f)
        m.step(f.t_ns)
    return m


def test_nominal_frame_is_all_ok(frame):
    m = monitor_after([frame(0), frame(1)])
    assert m.state == [OK] * N_CHANNELS and m.invalid_count == 0
    assert m.value_or_none(TB) == m.readings[TB] and abs(m.readings[TB] - 20.0) < 0.01


def test_before_any_frame_everything_is_stale():
    m = SensorMonitor(MonitorConfig())
    m.step(0)
    assert m.state == [STALE] * N_CHANNELS and m.value_or_none(TB) is None


def test_nan_range_and_board_flag_each_get_their_state(frame):
    m = monitor_after([frame(0, {"t_battery_c": math.nan, "t_tpu1_c": 150.5, "v_bus_v": -0.5,
                                 "i_battery_a": -math.inf}, invalid=("i_solar_a",))])
    assert m.state[TB] == NAN and m.state[CHANNEL_INDEX["i_battery_a"]] == NAN
    assert m.state[CHANNEL_INDEX["t_tpu1_c"]] == RANGE
    assert m.state[CHANNEL_INDEX["v_bus_v"]] == RANGE
    assert m.state[CHANNEL_INDEX["i_solar_a"]] == BOARD_INVALID
    assert m.invalid_count == 5
    for name in ("t_battery_c", "t_tpu1_c", "v_bus_v", "i_solar_a", "i_battery_a"):
        assert m.value_or_none(CHANNEL_INDEX[name]) is None
    # exactly on the range edge is a valid reading
    m = monitor_after([frame(0, {"t_tpu1_c": 150.0})])
    assert m.state[CHANNEL_INDEX["t_tpu1_c"]] == OK


def test_stale_group_beyond_the_limit_only(frame):
    limit = MonitorConfig().stale_limit_s
    thermal = [i for i, c in enumerate(CHANNELS) if c.group == "thermal"]
    ok = monitor_after([frame(10, sample_t_s={"thermal": 10 - limit})])
    assert all(ok.state[i] == OK for i in thermal)
    m = monitor_after([frame(10, sample_t_s={"thermal": 10 - limit - 0.5})])
    assert all(m.state[i] == STALE for i in thermal)
    assert all(m.state[i] == OK for i, c in enumerate(CHANNELS) if c.group != "thermal")


def test_a_board_that_stops_answering_goes_stale_by_executive_time(frame):
    m = SensorMonitor(MonitorConfig())
    f = frame(0)
    m.set_frame(f)
    for t in range(0, 6):  # the same frame handed over again and again
        m.step(t * S)
    assert m.state[TB] == STALE


def test_stuck_after_n_identical_fresh_samples_and_clears_on_change(frame):
    n = 6
    cfg = MonitorConfig(stuck_samples=n)
    frames = [frame(t, {"t_battery_c": 21.5}, exact=("t_battery_c",)) for t in range(n - 1)]
    m = monitor_after(frames, cfg)
    assert m.state[TB] == OK           # n - 1 identical samples: not yet
    m.set_frame(frame(n - 1, {"t_battery_c": 21.5}, exact=("t_battery_c",)))
    m.step((n - 1) * S)
    assert m.state[TB] == STUCK and m.value_or_none(TB) is None
    m.set_frame(frame(n, {"t_battery_c": 21.6}, exact=("t_battery_c",)))
    m.step(n * S)
    assert m.state[TB] == OK


def test_not_stuck_on_a_range_edge_nor_discrete_nor_without_resampling(frame):
    cfg = MonitorConfig(stuck_samples=3)
    # a rail that is off reads exactly 0 A (the converter clips): not a stuck sensor
    m = monitor_after([frame(t, {"i_heater_battery_a": 0.0}) for t in range(10)], cfg)
    assert m.state[CHANNEL_INDEX["i_heater_battery_a"]] == OK
    assert m.state[CHANNEL_INDEX["tpu0_online"]] == OK  # discrete, constant 24
    # the same sample handed over again (group not resampled, within the stale limit) is not a new sample
    m = SensorMonitor(cfg)
    f = frame(0, {"t_battery_c": 21.5}, exact=("t_battery_c",))
    m.set_frame(f)
    for t in range(3):
        m.step(t * S)
    assert m.state[TB] == OK


def test_exempt_channel_is_never_stuck(frame):
    cfg = MonitorConfig(stuck_samples=3, stuck_exempt=("t_battery_c",))
    m = monitor_after([frame(t, {"t_battery_c": 21.5}, exact=("t_battery_c",)) for t in range(10)], cfg)
    assert m.state[TB] == OK


def test_board_flag_beats_staleness_beats_the_value(frame):
    m = monitor_after([frame(10, {"t_battery_c": math.nan, "t_tpu0_c": math.nan}, invalid=("t_battery_c",),
                             sample_t_s={"thermal": 0})])
    assert m.state[TB] == BOARD_INVALID and m.state[CHANNEL_INDEX["t_tpu0_c"]] == STALE
