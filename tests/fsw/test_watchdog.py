"""Watchdog service, and the flight software run by the real executive."""
import asyncio

from twin.clock import VirtualClock
from twin.executive import Executive
from twin.fsw import FlightSoftware, FswConfig

S = 1_000_000_000


def test_kicks_only_on_ticks_where_every_task_is_healthy(frame):
    fsw = FlightSoftware(FswConfig())
    kicks = []
    for t in range(300):
        fsw.on_frame(frame(t))
        for task in fsw.tasks:
            task.step(t * S)
            fsw.health[task.name] = not (t in (10, 11) and task.name == "thermal") and not (
                t == 20 and task.name == "watchdog")
        kicks.append(fsw.command().watchdog_kick)
    steps = [(b - a) % 256 for a, b in zip(kicks, kicks[1:])]
    assert steps[9] == 0 and steps[10] == 0            # ticks 10 and 11: thermal raised
    assert steps[20] == 0                              # tick 21: the watchdog itself raised on tick 20
    assert sum(steps) == 299 - 3 and set(steps) <= {0, 1}
    assert max(kicks) == 255 and min(kicks) == 0       # wraps modulo 256


def test_a_task_that_stops_running_starves_the_watchdog(frame):
    fsw = FlightSoftware(FswConfig())
    oks = []
    for t in range(10):
        fsw.on_frame(frame(t))
        for task in fsw.tasks:
            if task.name != "links" or t < 5:
                task.step(t * S)
        fsw.command()
        oks.append(fsw.housekeeping().watchdog_ok)
    assert oks[:7] == [True] * 7 and oks[7:] == [False] * 3    # links last ran at t = 4; > 2 periods from t = 7


class NominalBoard:
    """An in-process board that reports the nominal readings of the test helper."""

    info = None

    def __init__(self, make):
        self.make, self.commands = make, []

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        return None

    async def step_to(self, t_ns):
        return self.make(t_ns / S)

    async def command(self, cmd):
        self.commands.append(cmd)


def test_runs_under_the_executive_and_a_task_fault_costs_one_kick(frame):
    fsw = FlightSoftware(FswConfig())
    real = fsw.thermal._step

    def flaky(t_ns):
        if t_ns == 100 * S:
            raise RuntimeError("thermal broke")
        real(t_ns)

    fsw.thermal._step = flaky
    board = NominalBoard(frame)
    ex = Executive(board, fsw, VirtualClock())
    asyncio.run(ex.run(500 * S))
    kicks = [c.watchdog_kick for c in board.commands]
    steps = [(b - a) % 256 for a, b in zip(kicks, kicks[1:])]
    assert steps[99] == 0 and steps.count(0) == 1
    assert fsw.task_faults == 1 and fsw.housekeeping().task_faults == 1
    assert board.commands[-1].fsw_mode == 2 and board.commands[-1].switch_tpu
    assert {s.name: s.restarts for s in ex.stats}["thermal"] == 1
