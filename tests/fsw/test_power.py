"""Power: staged load shedding on the SoC, the water-filling cap level, starved compute, the latched-rail guard."""
import math
import random

from twin.fsw import NOMINAL, FlightSoftware, FswConfig
from twin.fsw.base import EventLog
from twin.fsw.config import PowerConfig
from twin.fsw.power import cap_level
from twin.fsw.shedding import LoadShedder, RailGuard

S = 1_000_000_000


def feed(shedder, socs):
    stages = []
    for t, soc in enumerate(socs):
        stages.append(shedder.update(t * S, soc))
    return stages


def test_stages_follow_a_falling_soc_in_order():
    cfg = PowerConfig()
    shedder = LoadShedder(cfg, EventLog())
    socs = [0.9 - 0.0002 * t for t in range(3000)]        # 0.9 -> 0.3 over 50 min
    stages = feed(shedder, socs)
    entries = {k: stages.index(k) for k in (1, 2, 3)}
    assert entries[1] < entries[2] < entries[3]
    assert sorted(set(stages)) == [0, 1, 2, 3] and stages == sorted(stages)
    for k, threshold, n in ((1, cfg.shed1_soc, cfg.shed1_samples), (2, cfg.shed2_soc, cfg.shed2_samples),
                            (3, cfg.shed3_soc, cfg.shed3_samples)):
        first_below = next(t for t, s in enumerate(socs) if s < threshold)
        assert entries[k] == first_below + n - 1           # after exactly n samples below
    assert [e.what for e in shedder.events] == ["shed stage 0 -> 1", "shed stage 1 -> 2", "shed stage 2 -> 3"]


def test_a_deep_drop_reaches_the_deep_stage_first_and_fastest():
    cfg = PowerConfig()
    shedder = LoadShedder(cfg, EventLog())
    stages = feed(shedder, [0.9] * 10 + [0.35] * 100)
    assert stages.index(3) == 10 + cfg.shed3_samples - 1 and 1 not in stages and 2 not in stages


def test_clears_one_stage_at_a_time_after_hysteresis_persistence_and_dwell():
    cfg = PowerConfig()
    shedder = LoadShedder(cfg, EventLog())
    stages = feed(shedder, [0.9] * 5 + [0.45] * 40 + [0.9] * 2000)
    t3 = stages.index(2)
    assert 1 not in stages[:t3]
    drops = [t for t in range(1, len(stages)) if stages[t] < stages[t - 1]]
    assert [stages[t] for t in drops] == [1, 0]
    assert drops[0] - t3 >= cfg.shed_min_dwell_s and drops[1] - drops[0] >= cfg.shed_min_dwell_s


def test_no_flapping_with_a_noisy_soc_around_a_threshold():
    cfg = PowerConfig()
    rng = random.Random(7)
    for centre in (cfg.shed1_soc, cfg.shed1_soc + cfg.shed_hysteresis):
        shedder = LoadShedder(cfg, EventLog())
        socs = [centre + 0.03 * math.sin(2 * math.pi * t / 900) + rng.gauss(0, 0.02) for t in range(6 * 3600)]
        stages = feed(shedder, socs)
        changes = [t for t in range(1, len(stages)) if stages[t] != stages[t - 1]]
        assert len(changes) <= 2, (centre, changes)


def test_soc_unknown_holds_and_the_first_known_soc_sets_the_stage_at_once():
    shedder = LoadShedder(PowerConfig(), EventLog())
    assert feed(shedder, [None] * 5) == [0] * 5
    assert shedder.update(5 * S, 0.45) == 2                # after a restart: no persistence before shedding


def test_cap_level_water_fills_against_a_bisection():
    rng = random.Random(3)
    idle, top = 50.0, 250.0

    def power(level, ceilings, chips):
        return sum(n * (idle + (top - idle) * min(level, c)) for c, n in zip(ceilings, chips))

    for _ in range(200):
        ceilings = [rng.choice([0.0, 1.0, rng.random()]) for _ in range(4)]
        chips = [rng.randint(0, 24) for _ in range(4)]
        budget = rng.uniform(0, 30000)
        level = cap_level(budget, ceilings, chips, idle, top)
        if budget <= power(0.0, ceilings, chips):
            assert level == 0.0
        elif budget >= power(1.0, ceilings, chips):
            assert level == 1.0
        else:
            lo, hi = 0.0, 1.0
            for _ in range(60):
                mid = 0.5 * (lo + hi)
                lo, hi = (mid, hi) if power(mid, ceilings, chips) < budget else (lo, mid)
            assert abs(power(level, ceilings, chips) - budget) < 1e-6 * budget + 1e-6


def test_rail_guard_cycles_a_latched_rail_a_bounded_number_of_times():
    events = EventLog()
    guard = RailGuard("TPU", min_a=1.0, samples=5, limit=2, events=events)
    cycles = []
    for t in range(100):
        guard.update(t * S, was_on=not guard.cycle_now, current_a=0.0, expect_current=True)
        cycles.append(guard.cycle_now)
    assert sum(cycles) == 2 and guard.failed
    assert [e.what for e in events] == ["TPU rail power-cycled"] * 2 + ["TPU rail given up"]
    healthy = RailGuard("TPU", 1.0, 5, 2, EventLog())
    for t in range(100):
        healthy.update(t * S, True, 50.0, True)
        assert not healthy.cycle_now
    idle = RailGuard("TPU", 1.0, 5, 2, EventLog())   # no chips online: no current expected
    for t in range(100):
        idle.update(t * S, True, 0.0, False)
        assert not idle.cycle_now


def test_compute_goes_off_when_the_budget_cannot_cover_idle_chips_and_back_when_power_returns(frame, tick):
    fsw = FlightSoftware(FswConfig())
    for t in range(400):
        tick(fsw, frame(t))
    assert fsw.modes.mode == NOMINAL and fsw.power.tpu_on
    n = fsw.config.power.starve_samples
    idle_a = 96 * 50.0 / 95.0
    lost = [tick(fsw, frame(t, {"i_battery_a": -70.0, "i_tpu_a": idle_a}))[0] for t in range(400, 400 + n + 40)]
    off_at = next(k for k, c in enumerate(lost) if not c.switch_tpu)
    assert n <= off_at < n + 30 and not lost[-1].switch_optical       # budget ran down, then n samples below idle
    assert fsw.event_log.find("compute off")
    # rail off: a little spare power is not enough to pay for idle chips...
    weak = [tick(fsw, frame(t, {"i_battery_a": 60.0, "i_tpu_a": 0.0}))[0] for t in range(500, 500 + 2 * n)]
    assert not any(c.switch_tpu for c in weak)
    # ...plenty is, after the same persistence
    back = [tick(fsw, frame(t, {"i_battery_a": 120.0, "i_tpu_a": 0.0}))[0] for t in range(700, 700 + 2 * n)]
    on_at = next(k for k, c in enumerate(back) if c.switch_tpu)
    assert on_at == n - 1 and fsw.event_log.find("compute on")
