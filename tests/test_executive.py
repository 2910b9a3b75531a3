"""The executive: rate groups, supervision, board errors, clocks."""
import asyncio
import time

import pytest

from twin.clock import PacedClock, VirtualClock
from twin.executive import Executive
from twin.hal import ActuatorCommand, BoardError, BoardInfo, FswHousekeeping, SensorFrame
from twin.supervisor import Supervisor


class CountingBoard:
    """A minimal in-process board: reports its step count as every channel value."""

    info = BoardInfo("test", "in-process", "test-1", True)

    def __init__(self, fail_at=()):
        self.steps, self.commands, self.fail_at = [], [], set(fail_at)

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        return None

    async def step_to(self, t_ns):
        if t_ns in self.fail_at:
            raise BoardError("link lost")
        self.steps.append(t_ns)
        frame = SensorFrame.empty(t_ns)
        frame.values = [float(len(self.steps))] * len(frame.values)
        return frame

    async def command(self, cmd):
        self.commands.append(cmd)


class Task:
    def __init__(self, name, rate_hz, log, fail_on=()):
        self.name, self.rate_hz, self.log, self.fail_on = name, rate_hz, log, set(fail_on)
        self.resets = 0

    def reset(self, t_ns):
        self.resets += 1

    def step(self, t_ns):
        if t_ns in self.fail_on:
            raise RuntimeError(f"{self.name} broke")
        self.log.append((t_ns, self.name))


class Fsw:
    def __init__(self, tasks):
        self.tasks, self.health, self.frames = tasks, {}, []

    def reset(self, t_ns):
        pass

    def on_frame(self, frame):
        self.frames.append(frame)

    def command(self):
        return ActuatorCommand(tpu_cap=[0.123456789] * 4, watchdog_kick=all(self.health.values()))

    def housekeeping(self):
        return FswHousekeeping()


class ListRecorder:
    def __init__(self):
        self.rows = []

    def record(self, frame, cmd, hk):
        self.rows.append((frame, cmd, hk))


S = 1_000_000_000


def run(executive, seconds):
    asyncio.run(executive.run(seconds * S))


def test_tasks_run_at_their_rates_in_declared_order():
    log = []
    fsw = Fsw([Task("fast", 1.0, log), Task("slow", 0.2, log), Task("last", 1.0, log)])
    ex = Executive(CountingBoard(), fsw, VirtualClock())
    run(ex, 10)
    assert [n for t, n in log if t == 0] == ["fast", "slow", "last"]
    assert [t // S for t, n in log if n == "slow"] == [0, 5]
    assert sum(1 for _, n in log if n == "fast") == 10
    assert ex.stats[0].calls == 10 and ex.stats[1].calls == 2


def test_rate_that_does_not_divide_the_base_rate_is_refused():
    with pytest.raises(ValueError, match="rate 0.3"):
        Executive(CountingBoard(), Fsw([Task("odd", 0.3, [])]), VirtualClock())


def test_failing_task_is_restarted_bounded_then_disabled_and_others_keep_running():
    log = []
    bad = Task("bad", 1.0, log, fail_on={k * S for k in range(2, 10)})
    good = Task("good", 1.0, log)
    fsw = Fsw([bad, good])
    rec = ListRecorder()
    ex = Executive(CountingBoard(), fsw, VirtualClock(), rec, max_restarts=3)
    run(ex, 12)
    st = {s.name: s for s in ex.stats}
    assert st["bad"].restarts == 3 and st["bad"].disabled and st["bad"].faults == 4
    assert bad.resets == 3
    assert sum(1 for _, n in log if n == "good") == 12
    assert fsw.health["bad"] is False and fsw.health["good"] is True
    # the command of a tick where a task failed carries no watchdog kick
    kicks = [cmd.watchdog_kick for _, cmd, _ in rec.rows]
    assert kicks[:2] == [1, 1] and kicks[2] == 0


def test_board_error_gives_a_stale_frame_and_the_loop_goes_on():
    board = CountingBoard(fail_at={3 * S})
    fsw = Fsw([Task("t", 1.0, [])])
    ex = Executive(board, fsw, VirtualClock())
    run(ex, 6)
    assert ex.board_errors == 1 and len(fsw.frames) == 6
    stale = fsw.frames[3]
    assert stale.t_ns == 3 * S and stale.sample_t_ns == fsw.frames[2].sample_t_ns
    assert stale.age_ns(0) == S


def test_commands_are_sent_quantized_to_float32():
    board = CountingBoard()
    ex = Executive(board, Fsw([Task("t", 1.0, [])]), VirtualClock())
    run(ex, 2)
    import struct
    expected = struct.unpack("<f", struct.pack("<f", 0.123456789))[0]
    assert board.commands[0].tpu_cap == [expected] * 4 and expected != 0.123456789


def test_virtual_clock_never_suspends():
    coro = VirtualClock().wait_until(5 * S)
    with pytest.raises(StopIteration):
        coro.send(None)


def test_virtual_run_does_not_yield_to_the_loop_every_tick():
    spins = 0

    async def spinner():
        nonlocal spins
        while True:
            spins += 1
            await asyncio.sleep(0)

    async def main():
        task = asyncio.create_task(spinner())
        ex = Executive(CountingBoard(), Fsw([Task("t", 1.0, [])]), VirtualClock(), yield_every_s=10.0)
        await ex.run(2000 * S)
        task.cancel()

    asyncio.run(main())
    assert spins < 20


def test_paced_clock_is_not_faster_than_its_pace():
    ex = Executive(CountingBoard(), Fsw([Task("t", 10.0, [])]), PacedClock(10.0), period_ns=S // 10)
    t0 = time.monotonic()
    asyncio.run(ex.run(S // 2))  # 5 ticks of 0.1 s at x10: at least 0.04 s of wall time
    assert time.monotonic() - t0 >= 0.04
    assert ex.ticks == 5


def test_supervisor_restarts_bounded_and_cancels_on_exit():
    starts = 0

    async def flaky():
        nonlocal starts
        starts += 1
        raise RuntimeError("boom")

    async def forever():
        await asyncio.sleep(3600)

    async def main():
        async with Supervisor(max_restarts=2) as sup:
            sup.start("flaky", flaky)
            rec = sup.start("forever", forever)
            for _ in range(20):
                await asyncio.sleep(0)
            assert sup.failures == {"flaky": ["RuntimeError: boom"] * 3}
        assert rec.task.cancelled()

    asyncio.run(main())
    assert starts == 3


def test_virtual_runs_count_every_call_and_time_a_sample_paced_runs_time_all():
    log = []
    fsw = Fsw([Task("every", 1.0, log), Task("fifth", 0.2, log)])
    ex = Executive(CountingBoard(), fsw, VirtualClock(), time_every=4)
    run(ex, 40)
    every, fifth = ex.stats
    assert every.calls == 40 and fifth.calls == 8
    assert every.timed == 10                      # ticks 0, 4, ..., 36
    assert fifth.timed == 2                       # its ticks that are also timed ticks: 0 and 20
    assert every.total_ns > 0 and every.max_ns > 0 and every.mean_us == every.total_ns / 10 / 1e3
    ex = Executive(CountingBoard(), Fsw([Task("t", 10.0, [])]), PacedClock(100.0), period_ns=S // 10,
                   time_every=4)
    asyncio.run(ex.run(S // 2))
    assert ex.stats[0].calls == ex.stats[0].timed == 5


def test_a_task_that_recovers_after_a_fault_is_healthy_again_on_untimed_ticks():
    log = []
    fsw = Fsw([Task("t", 1.0, log, fail_on={5 * S})])
    ex = Executive(CountingBoard(), fsw, VirtualClock(), ListRecorder(), time_every=16)
    ex.start(0)
    asyncio.run(ex.run_ticks(6))
    assert fsw.health["t"] is False               # tick 5 raised, and tick 5 is not a timed tick
    asyncio.run(ex.run_ticks(1))
    assert fsw.health["t"] is True and ex.stats[0].faults == 1 and ex.stats[0].calls == 7


def test_quantized_commands_match_the_wire_when_lists_repeat_or_change_in_place():
    import struct

    def f32(x):
        x = 0.0 if not x > 0.0 else min(x, 1.0)     # clamp to [0, 1], NaN and -0.0 to 0.0
        return struct.unpack("<f", struct.pack("<f", x))[0]

    caps = [0.3, 0.3, 0.3, 0.3]
    sequence = [[0.3] * 4, caps, caps, [0.1, 2.0, -0.0, float("nan")], [0.1, 2.0, -0.0, float("nan")], [0.0] * 4]
    outs = []
    for k, c in enumerate(sequence):
        if k == 2:
            caps[1] = 0.7                             # the same list object, changed since the last call
        cmd = ActuatorCommand(heater_duty=[c[0], c[1]], tpu_cap=c, isl_enable=[k % 2, 1, 0, 1])
        q = cmd.quantized()
        assert q.tpu_cap == [f32(x) for x in c] and q.heater_duty == [f32(c[0]), f32(c[1])]
        assert q.isl_enable == [bool(k % 2), True, False, True]
        assert all(type(x) is float for x in q.tpu_cap) and all(type(x) is bool for x in q.isl_enable)
        outs.append(q)
    assert str(outs[3].tpu_cap[2]) == "0.0"           # not -0.0
    outs[0].tpu_cap[0] = 99.0                         # a caller changing its copy changes no later result
    assert ActuatorCommand(tpu_cap=[0.3] * 4).quantized().tpu_cap == [f32(0.3)] * 4
