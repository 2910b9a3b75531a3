"""SC_FAULT_INJECT over a real pty pair: a signed one schedules the fault inside the board, exactly
as the same fault given to the simulated board; unsigned or malformed ones are dropped and counted.

These tests build their own pty pair and board server, so they run the same whatever ``--rig`` says.
"""
import asyncio
import math

import pytest

from firmware_bridge.codec import MavlinkCodec
from firmware_bridge.keys import create_key_file, load_key
from firmware_bridge.messages import FaultInjectFields, fault_inject_message, message_class
from firmware_bridge.remote_board import RemoteBoard
from firmware_bridge.signing import DEFAULT_COMMAND_MESSAGES, ReplayTable, SigningClock, SigningPolicy
from firmware_bridge.transports.serial_link import SerialLink
from hil_rigs.board_server import BoardServer
from twin.hal import CHANNEL_INDEX
from twin.scenarios import load_scenario
from twin.sim.faults import FaultSpec
from twin.sim.simboard import SimBoard

S = 1_000_000_000


def policy(key, tmp_path, side, **kw):
    return SigningPolicy(key, ReplayTable(tmp_path / f"{side}.replay"), SigningClock(tmp_path / f"{side}.clock"), **kw)


async def over_pty(pty_pair, tmp_path, twin_codec, script, *, board_policy_kw=None):
    """Serve a SimBoard on the board end; ``script(remote)`` drives it from the twin end. Returns (result, server)."""
    key = load_key(create_key_file(tmp_path / "rig.key", overwrite=True))
    scenario = load_scenario("node")
    board = SimBoard(scenario, 1)
    link = SerialLink(pty_pair[1])
    kw = {"command_messages": DEFAULT_COMMAND_MESSAGES, **(board_policy_kw or {})}
    server = BoardServer(board, link, MavlinkCodec(signing=policy(key, tmp_path, "board", **kw), link_id=2))
    codec = twin_codec(key)
    remote = RemoteBoard(SerialLink(pty_pair[0]), codec, rig="emulated-serial", step_timeout_s=1.0, retries=1)
    async with link:
        task = asyncio.create_task(server.serve())
        try:
            async with remote:
                result = await script(remote)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    return result, server


def signed(tmp_path):
    return lambda key: MavlinkCodec(signing=policy(key, tmp_path, "twin"), link_id=1)


async def frames(board, times):
    return [await board.step_to(t) for t in times]


def inject(kind, target="", at_ns=0, duration_ns=0, value=0.0):
    return fault_inject_message(FaultInjectFields(kind, target, at_ns, duration_ns, value))


def test_a_signed_fault_injection_acts_inside_the_board_as_on_the_simulated_board(pty_pair, tmp_path):
    times = [k * S for k in range(8)]
    faults = [("nan", "t_battery_c", 2 * S, 3 * S, 0.0), ("offset", "v_bus_v", 3 * S, 0, 7.5),
              ("reboot", "", 4 * S, 0, 0.0)]

    async def script(remote):
        await remote.step_to(0)
        for f in faults:
            await remote.send_message(inject(*f))
        return [await remote.step_to(t) for t in times[1:]]

    got, server = asyncio.run(over_pty(pty_pair, tmp_path, signed(tmp_path), script))
    assert server.stats["faults"] == 3 and server.stats["bad_faults"] == 0

    # Reference: the same faults given to an in-process simulated board up front.
    scenario = load_scenario("node")
    specs = [FaultSpec(at=f"{at // S}s", kind=k, target=tg, duration=f"{d // S}s" if d else "", value=v)
             for k, tg, at, d, v in faults]
    ref = asyncio.run(frames(SimBoard(scenario, 1, faults=specs), times))[1:]
    bat, bus, boot = CHANNEL_INDEX["t_battery_c"], CHANNEL_INDEX["v_bus_v"], CHANNEL_INDEX["board_boot_count"]
    for g, r in zip(got, ref):
        assert g.t_ns == r.t_ns
        assert [x for x in g.values if not math.isnan(x)] == [x for x in r.values if not math.isnan(x)], g.t_ns
        assert g.valid == r.valid
    nan_at = [g.t_ns // S for g in got if math.isnan(g.values[bat])]
    assert nan_at == [2, 3, 4]
    clean = asyncio.run(frames(SimBoard(scenario, 1), times))[1:]
    assert [g.values[bus] - c.values[bus] for g, c in zip(got, clean)][2:] == pytest.approx([7.5] * 5, abs=1e-4)
    assert [g.values[boot] for g in got] == [1, 1, 1, 2, 2, 2, 2]


def test_an_unsigned_fault_injection_is_rejected_even_where_unsigned_telemetry_is_accepted(pty_pair, tmp_path):
    unsigned_codec = MavlinkCodec(link_id=1)

    async def script(remote):
        await remote.step_to(0)
        # The twin's steps stay signed; only the fault injection goes unsigned.
        await remote.transport.send(unsigned_codec.encode(inject("nan", "t_battery_c", 1 * S)))
        return await frames(remote, [S, 2 * S])

    got, server = asyncio.run(over_pty(pty_pair, tmp_path, signed(tmp_path), script,
                                       board_policy_kw={"unsigned_telemetry": "accept"}))
    assert server.stats["faults"] == 0
    assert server.codec.counters.unsigned_rejected >= 1
    assert not any(math.isnan(f.values[CHANNEL_INDEX["t_battery_c"]]) for f in got)


def test_malformed_fault_injections_are_dropped_and_counted_and_the_board_serves_on(pty_pair, tmp_path):
    cls = message_class("SC_FAULT_INJECT")
    bad = [inject("melt", "t_battery_c", S),              # unknown kind
           inject("disconnect", "", S, S),                 # link level: not the board's to apply
           inject("stuck", "t_nowhere_c", S),              # unknown channel
           inject("heater_off", "radiator", S),            # unknown heater zone
           inject("tpu_crash", "tpu1", S, 0, math.nan),    # not a chip count
           inject("string_loss", "", S, 0, 1e30),          # absurd count
           cls(S, 0, 0.0, b"\xff\xfenan", b"t_battery_c"),  # not ASCII
           cls(S, 0, 0.0, b"nan", b"t_bat\x01tery_c")]     # control character

    async def script(remote):
        await remote.step_to(0)
        for m in bad:
            await remote.send_message(m)
        await remote.send_message(inject("nan", "t_avionics_c", 2 * S))
        return await frames(remote, [S, 2 * S, 3 * S])

    got, server = asyncio.run(over_pty(pty_pair, tmp_path, signed(tmp_path), script))
    assert server.stats["bad_faults"] == len(bad) and server.stats["faults"] == 1
    assert server.stats["steps"] == 4
    avi = CHANNEL_INDEX["t_avionics_c"]
    assert [math.isnan(f.values[avi]) for f in got] == [False, True, True]


def test_fault_injection_is_refused_by_a_server_whose_codec_would_take_it_unsigned(pty_pair, tmp_path):
    async def script(remote):
        await remote.step_to(0)
        await remote.send_message(inject("nan", "t_battery_c", S))
        return await frames(remote, [S])

    # A codec whose command class leaves SC_FAULT_INJECT out would take it unsigned: the board must not apply it.
    without = DEFAULT_COMMAND_MESSAGES - {"SC_FAULT_INJECT"}
    got, server = asyncio.run(over_pty(pty_pair, tmp_path, signed(tmp_path), script,
                                       board_policy_kw={"command_messages": without}))
    assert server.stats["faults"] == 0 and server.stats["bad_faults"] == 1
    assert not math.isnan(got[0].values[CHANNEL_INDEX["t_battery_c"]])
