"""FDIR row 13 over a whole run: the link to the board lost for a minute, then back."""
import asyncio

import numpy as np
import pytest

from twin.hal import MODES, BoardError
from twin.run import run_scenario
from twin.scenarios import load_scenario
from twin.sim.simboard import SimBoard

S = 1_000_000_000
LOST_AT_S, LOST_FOR_S = 600, 60
DURATION_S = 1500


class UnpluggedBoard:
    """A SimBoard behind a cable pulled for ``[start_s, end_s)`` of scenario time.

    The board runs on (its physics steps, its watchdog counts); the twin gets a
    BoardError for every step and every command in the window.
    """

    def __init__(self, inner: SimBoard, start_s: int, end_s: int):
        self.inner, self.start_ns, self.end_ns = inner, start_s * S, end_s * S
        self.info = inner.info
        self._t_ns = 0

    def _unplugged(self) -> bool:
        return self.start_ns <= self._t_ns < self.end_ns

    async def __aenter__(self):
        await self.inner.__aenter__()
        return self

    async def __aexit__(self, *exc):
        await self.inner.__aexit__(*exc)

    async def step_to(self, t_ns):
        self._t_ns = t_ns
        frame = await self.inner.step_to(t_ns)
        if self._unplugged():
            raise BoardError("serial device unplugged")
        return frame

    async def command(self, cmd):
        if self._unplugged():
            raise BoardError("serial device unplugged")
        await self.inner.command(cmd)


@pytest.fixture(scope="module")
def unplugged_run():
    sc = load_scenario("node", duration=f"{DURATION_S}s")
    board = UnpluggedBoard(SimBoard(sc, sc.run.seed), LOST_AT_S, LOST_AT_S + LOST_FOR_S)
    return asyncio.run(run_scenario(sc, out_dir=None, plots=False, board=board))


def test_a_lost_link_means_safe_within_the_configured_time(unplugged_run):
    result = unplugged_run
    limit = result.fsw.config.fdir.link_lost_safe_s
    rows = result.recorder.rows()
    modes = rows["fsw_mode"]
    assert modes[LOST_AT_S - 1] == MODES.index("NOMINAL")          # it was computing when the cable went
    first_safe = LOST_AT_S + int(np.argmax(modes[LOST_AT_S:] == MODES.index("SAFE")))
    assert modes[first_safe] == MODES.index("SAFE")
    # silence counts from the last sample (tick LOST_AT_S - 1), so SAFE comes at LOST_AT_S - 1 + limit
    assert LOST_AT_S + limit - 1 <= first_safe <= LOST_AT_S + limit + 2
    assert (modes[first_safe:LOST_AT_S + LOST_FOR_S] == MODES.index("SAFE")).all()
    log = result.summary["fdir_log"]
    lost = [e for e in log if e[1] == "link lost"]
    assert len(lost) == 1 and round(lost[0][0]) == first_safe and f"{limit:g} s" in lost[0][2]
    assert any(e[1] == "mode DEGRADED -> SAFE" and "link lost" in e[2] for e in log)
    restored = [e for e in log if e[1] == "link restored"]
    assert len(restored) == 1 and round(restored[0][0]) == LOST_AT_S + LOST_FOR_S


def test_no_telemetry_is_lost_while_the_board_is_silent(unplugged_run):
    result = unplugged_run
    rows = result.recorder.rows()
    assert len(rows) == DURATION_S and result.summary["complete"]
    assert (rows["t_ns"] == np.arange(DURATION_S, dtype=np.int64) * S).all()
    silent = rows[LOST_AT_S:LOST_AT_S + LOST_FOR_S]
    assert (silent["sample_t_ns"] == (LOST_AT_S - 1) * S).all()      # the last frame, handed over again
    assert result.executive.board_errors == 2 * LOST_FOR_S          # every step and every command refused
    assert (rows["sample_t_ns"][LOST_AT_S + LOST_FOR_S:] == rows["t_ns"][LOST_AT_S + LOST_FOR_S:, None]).all()


def test_fresh_frames_lead_out_of_safe_by_the_exit_rule(unplugged_run):
    result = unplugged_run
    rows = result.recorder.rows()
    modes = rows["fsw_mode"]
    back = LOST_AT_S + LOST_FOR_S
    dwell = result.fsw.config.fdir.safe_exit_dwell_s
    left = back + int(np.argmax(modes[back:] != MODES.index("SAFE")))
    assert modes[left] == MODES.index("NOMINAL")
    assert left >= back + dwell                                      # never before the SAFE exit dwell
    # the board's own watchdog expired while no command arrived: it rebooted, and FDIR saw that too
    assert any(e[1] == "board reboot detected" for e in result.summary["fdir_log"])
