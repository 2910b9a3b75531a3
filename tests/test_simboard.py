"""The simulated board behaves as a board: wire resolution, watchdog, safe state, lockstep grid."""
import asyncio

import pytest

from firmware_bridge.messages import quantize_frame
from twin.hal import S_BOARD_BOOT_COUNT, ActuatorCommand, BoardError
from twin.scenarios import load_scenario
from twin.sim.faults import FaultSpec
from twin.sim.simboard import SimBoard

S = 1_000_000_000


def frames(board, seconds, commands=None):
    async def go():
        out = []
        async with board:
            for k in range(seconds):
                out.append(await board.step_to(k * S))
                await board.command(commands(k) if commands else ActuatorCommand(watchdog_kick=k % 256))
        return out
    return asyncio.run(go())


def test_frames_are_exactly_what_the_wire_carries_even_under_faults():
    faults = [FaultSpec(at="3s", kind="nan", target="ground_lock"),
              FaultSpec(at="4s", kind="range", target="tpu0_online", value=300.0),
              FaultSpec(at="5s", kind="range", target="t_battery_c", value=1e39),
              FaultSpec(at="6s", kind="nan", target="t_tpu2_c")]
    board = SimBoard(load_scenario("node"), seed=2, faults=faults)
    for f in frames(board, 12):
        assert f == quantize_frame(f)


def test_watchdog_not_serviced_reboots_the_board_into_its_safe_state():
    sc = load_scenario("node")
    board = SimBoard(sc, seed=1)
    timeout = int(sc.sensors.watchdog_timeout_s)
    boots, rail_on_after_step = [], []

    async def go():
        async with board:
            for k in range(timeout + 20):  # TPU rail on, the watchdog kicked for the first 10 s only
                f = await board.step_to(k * S)
                boots.append(f.values[S_BOARD_BOOT_COUNT])
                rail_on_after_step.append(bool(board.plant.act.switch_tpu[0]))
                await board.command(ActuatorCommand(switch_tpu=True, tpu_cap=[1.0] * 4, watchdog_kick=min(k, 10)))
    asyncio.run(go())
    assert boots[0] == 1 and boots[-1] == 2
    reboot_at = boots.index(2)
    assert 10 + timeout <= reboot_at <= 10 + timeout + 2
    assert rail_on_after_step[reboot_at - 1] and not rail_on_after_step[reboot_at]


def test_steps_must_be_on_the_grid_and_never_go_back():
    board = SimBoard(load_scenario("node"), seed=1)

    async def go():
        async with board:
            await board.step_to(5 * S)
            with pytest.raises(BoardError, match="grid"):
                await board.step_to(5 * S + 1)
            with pytest.raises(BoardError, match="back in time"):
                await board.step_to(2 * S)
    asyncio.run(go())
