"""FDIR row 13: a board silent for ``fdir.link_lost_safe_s`` (every channel group stale) means SAFE.

Frames of a silent board are built as the executive builds them after a
BoardError: the last frame's readings and sample times at a later frame time.
"""
import pytest

from twin.fsw import DEGRADED, NOMINAL, SAFE, FlightSoftware, FswConfig
from twin.fsw.config import FdirConfig, MonitorConfig
from twin.hal import SensorFrame
from twin.params import ParamError

S = 1_000_000_000
DWELL = int(FdirConfig().safe_exit_dwell_s)
LOST_S = 45          # a non-default limit: the test must follow the configuration
T_LAST = 399         # the last frame the board delivered before it fell silent


def silent(last: SensorFrame, t_s: int) -> SensorFrame:
    return SensorFrame(t_s * S, last.values, last.valid, last.sample_t_ns)


def nominal(frame, tick, lost_s=LOST_S):
    fsw = FlightSoftware(FswConfig(fdir=FdirConfig(link_lost_safe_s=lost_s)))
    for t in range(0, T_LAST + 1):
        tick(fsw, frame(t))
    assert fsw.modes.mode == NOMINAL
    return fsw, frame(T_LAST)


def test_fires_when_silent_for_the_configured_time_not_one_sample_earlier(frame, tick):
    fsw, last = nominal(frame, tick)
    modes = [tick(fsw, silent(last, t))[1].mode for t in range(T_LAST + 1, T_LAST + LOST_S)]
    # silent for LOST_S - 1 s: the contained faults (stale sensors) have degraded it, no more
    assert modes[-1] == DEGRADED and SAFE not in modes
    assert not fsw.event_log.find("link lost")
    assert tick(fsw, silent(last, T_LAST + LOST_S))[1].mode == SAFE    # silent for exactly LOST_S s
    lost = fsw.event_log.find("link lost")
    assert len(lost) == 1 and round(lost[0].t_s, 6) == T_LAST + LOST_S and f"{LOST_S} s" in lost[0].why
    assert "link lost" in fsw.event_log.find("-> SAFE")[-1].why
    events = fsw.fdir_events
    cmd, hk = tick(fsw, silent(last, T_LAST + LOST_S + 1))
    assert hk.mode == SAFE and not cmd.switch_tpu and not cmd.switch_optical
    assert hk.fdir_events == events                         # reported once per loss, not every tick
    assert len(fsw.event_log.find("link lost")) == 1


def test_a_shorter_silence_does_not_fire(frame, tick):
    fsw, last = nominal(frame, tick)
    back = T_LAST + LOST_S                                  # silent for LOST_S - 1 s, then a fresh frame
    out = [tick(fsw, silent(last, t)) for t in range(T_LAST + 1, back)]
    out += [tick(fsw, frame(t)) for t in range(back, back + 60)]
    assert SAFE not in [hk.mode for _, hk in out]
    assert out[-1][1].mode == NOMINAL
    assert not fsw.event_log.find("link lost") and not fsw.event_log.find("link restored")


def test_silence_of_some_groups_only_is_not_a_lost_link(frame, tick):
    fsw, _ = nominal(frame, tick)
    frozen = {"thermal": T_LAST, "power": T_LAST}           # the status group still arrives
    out = [tick(fsw, frame(t, sample_t_s=frozen)) for t in range(T_LAST + 1, T_LAST + 3 * LOST_S)]
    assert out[-1][1].mode == DEGRADED and not fsw.event_log.find("link lost")


def test_recovers_by_the_safe_exit_rule_once_frames_are_fresh(frame, tick):
    fsw, last = nominal(frame, tick)
    back = T_LAST + LOST_S + 20
    for t in range(T_LAST + 1, back):
        tick(fsw, silent(last, t))
    assert fsw.modes.mode == SAFE
    out = {t: tick(fsw, frame(t))[1].mode for t in range(back, back + DWELL + 2)}
    restored = fsw.event_log.find("link restored")
    assert len(restored) == 1 and round(restored[0].t_s, 6) == back
    assert f"{back - T_LAST} s" in restored[0].why
    assert out[back + DWELL - 1] == SAFE                    # the SAFE exit dwell, from the first fresh frame
    assert out[back + DWELL + 1] == NOMINAL
    assert len(fsw.event_log.find("link lost")) == 1


def test_a_board_silent_from_boot_is_reported_while_in_safe(frame, tick):
    fsw = FlightSoftware(FswConfig(fdir=FdirConfig(link_lost_safe_s=LOST_S)))
    never = SensorFrame.empty(0)
    hks = [tick(fsw, SensorFrame(t * S, never.values, never.valid, never.sample_t_ns))[1]
           for t in range(LOST_S + 1)]
    assert all(hk.mode == SAFE for hk in hks)
    lost = fsw.event_log.find("link lost")
    assert len(lost) == 1 and round(lost[0].t_s, 6) == LOST_S


def test_the_limit_is_a_parameter_above_the_stale_limit():
    assert FdirConfig().link_lost_safe_s == 30.0
    with pytest.raises(ParamError, match="link_lost_safe_s"):
        FswConfig(monitor=MonitorConfig(stale_limit_s=10.0), fdir=FdirConfig(link_lost_safe_s=10.0))


def test_a_scenario_file_sets_the_limit_within_its_range(tmp_path):
    from twin.scenarios import ScenarioError, load_scenario
    path = tmp_path / "ll.toml"
    path.write_text('extends = "node"\n[fsw.fdir]\nlink_lost_safe_s = 60\n')
    assert load_scenario(str(path)).fsw_config().fdir.link_lost_safe_s == 60.0
    path.write_text('extends = "node"\n[fsw.fdir]\nlink_lost_safe_s = 0.5\n')
    with pytest.raises(ScenarioError, match="link_lost_safe_s"):
        load_scenario(str(path)).fsw_config()
