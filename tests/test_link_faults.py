"""Link faults between the twin and a board, on every rig, scheduled in scenario time.

Over real parts: a pty pair from os.openpty for the per-frame behaviour, the
emulated rigs (socat pty pair, private mosquitto, the emulator process) for the
rest. Expected counts come from the schedule (ticks inside an outage), not from
the code under test.
"""
import asyncio
import os

import numpy as np
import pytest

from firmware_bridge.codec import MavlinkCodec
from firmware_bridge.messages import message_class
from firmware_bridge.transports.faulty import LINK_FAULT_KINDS, FaultyLink, split_frames
from firmware_bridge.transports.serial_link import SerialLink
from hil_rigs.rigs import RigError, open_rig
from twin.run import run_scenario
from twin.scenarios import load_scenario
from twin.sim.faults import FaultSpec

S = 10**9


def scenario_with(faults, duration="60s", seed=2):
    return load_scenario("node", duration=duration, seed=seed, overrides={"faults": faults})


def run_on(rig, faults, duration="60s", **kw):
    scenario = scenario_with(faults, duration)

    async def go():
        async with open_rig(rig, "node", scenario, **kw) as board:
            result = await run_scenario(scenario, rig=rig, board=board)
            return result, board

    return asyncio.run(go())


def assert_one_row_per_tick(result, n):
    rows = result.recorder.rows()
    assert result.summary["complete"] is True
    assert rows["t_ns"].tolist() == [k * S for k in range(n)]


# -- per frame, on a real pty -----------------------------------------------------------------------

def step_replies(n):
    codec = MavlinkCodec()
    return b"".join(codec.encode(message_class("SC_STEP_REPLY")(k, k * S)) for k in range(1, n + 1))


def received_seqs(spec_kw, n=4, expect=None):
    """Write n step replies in one chunk into a pty; read ``expect`` of them through a FaultyLink; their seqs."""
    master, slave = os.openpty()

    async def go():
        link = FaultyLink(SerialLink(os.ttyname(slave)), seed=7)
        link.add(FaultSpec(target="to_twin", **spec_kw))
        codec, seqs = MavlinkCodec(), []
        async with link:
            os.write(master, step_replies(n))
            while len(seqs) < (expect or n):
                seqs += [m.seq for m in codec.feed(await asyncio.wait_for(link.recv(), 10))]
        return seqs, link.stats, codec.counters

    try:
        return asyncio.run(go())
    finally:
        os.close(master)
        os.close(slave)


def test_split_frames_cuts_at_frame_boundaries_and_keeps_every_byte():
    data = b"\x00junk" + step_replies(3) + b"\xfd\x05"  # garbage, three frames, a frame cut short
    pieces = split_frames(data)
    assert b"".join(p for p, _ in pieces) == data
    assert [whole for _, whole in pieces] == [False, True, True, True, False]


def test_duplicate_sends_every_frame_twice():
    seqs, stats, _ = received_seqs({"kind": "duplicate", "value": 1.0}, n=4, expect=8)
    assert seqs == [1, 1, 2, 2, 3, 3, 4, 4] and stats.duplicated == 4


def test_reorder_swaps_each_frame_with_the_next():
    seqs, stats, _ = received_seqs({"kind": "reorder", "value": 1.0})
    assert seqs == [2, 1, 4, 3] and stats.reordered == 2


def test_delayed_frames_all_arrive_in_order():
    seqs, stats, _ = received_seqs({"kind": "delay", "value": 0.2}, n=6)
    assert seqs == [1, 2, 3, 4, 5, 6] and stats.delayed == 6


def test_faults_toward_the_board_apply_per_frame_of_each_send():
    master, slave = os.openpty()

    async def go():
        link = FaultyLink(SerialLink(os.ttyname(slave)), seed=5)
        link.add(FaultSpec(kind="duplicate", value=1.0, target="to_board"))
        link.add(FaultSpec(kind="drop", value=1.0, target="to_twin"))  # the other direction only
        async with link:
            await link.send(step_replies(3))
            got, codec = [], MavlinkCodec()
            while len(got) < 6:
                got += codec.feed(await asyncio.wait_for(asyncio.to_thread(os.read, master, 4096), 10))
        return [m.seq for m in got], link.stats

    try:
        seqs, stats = asyncio.run(go())
    finally:
        os.close(master)
        os.close(slave)
    assert seqs == [1, 1, 2, 2, 3, 3] and stats.duplicated == 3 and stats.dropped == 0


def test_corrupted_frames_are_crc_errors_to_the_codec_while_the_fault_lasts():
    master, slave = os.openpty()
    now = [0]

    async def go():
        link = FaultyLink(SerialLink(os.ttyname(slave)), seed=3, now_ns=lambda: now[0])
        link.add(FaultSpec(kind="corrupt", value=0.5, target="to_twin", duration="10s"))
        codec, got = MavlinkCodec(), []
        async with link:
            os.write(master, step_replies(40))
            while len(got) + link.stats.corrupted < 40:
                got += codec.feed(await asyncio.wait_for(link.recv(), 10))
            now[0] = 10 * S  # the fault is over: what follows arrives intact
            os.write(master, step_replies(41)[-(len(step_replies(41)) - len(step_replies(40))):])
            while not got or got[-1].seq != 41:
                got += codec.feed(await asyncio.wait_for(link.recv(), 10))
        return got, link.stats, codec.counters

    try:
        got, stats, counters = asyncio.run(go())
    finally:
        os.close(master)
        os.close(slave)
    frame_len = len(step_replies(1))
    assert 0 < stats.corrupted < 40
    assert len(got) == 41 - stats.corrupted                            # no corrupted frame got through
    assert counters.bytes_dropped == stats.corrupted * frame_len          # and nothing else was lost
    # Each is rejected by its checksum; one right behind another may instead be stepped over by the
    # codec's resynchronisation (a stray 0xFD in the first announcing a frame past it): bytes_dropped only.
    assert stats.corrupted // 2 <= counters.crc_errors


def test_a_link_without_a_disconnector_refuses_disconnect_and_bad_directions():
    link = FaultyLink(SerialLink("/dev/null-not-opened"))
    assert link.kinds == frozenset(LINK_FAULT_KINDS) - {"disconnect"}
    with pytest.raises(ValueError, match="disconnect"):
        link.add(FaultSpec(kind="disconnect", duration="10s"))
    with pytest.raises(ValueError, match="target"):
        FaultSpec(kind="drop", value=0.1, target="sideways")
    with pytest.raises(ValueError, match="probability"):
        FaultSpec(kind="drop", value=1.5)


# -- the contract every rig keeps -----------------------------------------------------------------

@pytest.mark.parametrize("rig,kinds", [("sim", {"disconnect"}), ("emulated-serial", set(LINK_FAULT_KINDS)),
                                       ("emulated-mqtt", set(LINK_FAULT_KINDS))])
def test_every_rig_board_has_link_faults_with_its_kinds(rig, kinds):
    scenario = scenario_with([], "10s")

    async def go():
        async with open_rig(rig, "node", scenario) as board:
            lf = board.link_faults
            assert lf.kinds == frozenset(kinds)
            lf.add(FaultSpec(kind="disconnect", at="5s", duration="2s"))
            if rig == "sim":
                with pytest.raises(ValueError, match="drop"):
                    lf.add(FaultSpec(kind="drop", value=0.5))

    asyncio.run(go())


def test_a_scenario_link_fault_the_rig_cannot_do_is_a_one_line_rig_error():
    scenario = scenario_with([{"kind": "drop", "value": 0.2}], "10s")

    async def go():
        async with open_rig("sim", "node", scenario):
            pass

    with pytest.raises(RigError) as err:
        asyncio.run(go())
    assert "'drop'" in str(err.value) and "sim" in str(err.value) and "\n" not in str(err.value)


# -- disconnect -------------------------------------------------------------------------------------

OUTAGE = [{"kind": "disconnect", "at": "20s", "duration": "15s"}]
OUTAGE_TICKS = 15  # ticks at 20 .. 34 s


def test_sim_disconnect_silences_the_board_for_its_duration_and_physics_runs_on():
    result, board = run_on("sim", OUTAGE)
    assert_one_row_per_tick(result, 60)
    assert result.summary["board_errors"] == 2 * OUTAGE_TICKS  # the step and the command of each tick
    rows = result.recorder.rows()
    sample = rows["sample_t_ns"]
    down = (rows["t_ns"] >= 20 * S) & (rows["t_ns"] < 35 * S)
    assert (sample[down] == 19 * S).all()                   # stale: the last frame before the outage
    assert (sample[~down] == rows["t_ns"][~down, None]).all()  # fresh before and after


@pytest.mark.parametrize("rig", ["emulated-serial", "emulated-mqtt"])
def test_unplug_or_broker_restart_mid_run_recovers_with_one_row_per_tick(rig):
    result, board = run_on(rig, OUTAGE)
    assert_one_row_per_tick(result, 60)
    link = board.link_faults
    assert link.stats.disconnects == 1
    assert link.stats.refused_while_down >= OUTAGE_TICKS  # every step inside it (and commands sent alone)
    assert link.inner.counters.reconnects >= 1 and link.inner.counters.link_lost >= 1
    assert result.summary["board_errors"] >= OUTAGE_TICKS
    rows = result.recorder.rows()
    down = (rows["t_ns"] >= 20 * S) & (rows["t_ns"] < 35 * S)
    assert (rows["sample_t_ns"][down] < rows["t_ns"][down, None]).all(), "a fresh frame during the outage"
    tail = rows[-10:]
    assert (tail["sample_t_ns"] == tail["t_ns"][:, None]).all(), "frames did not come back after the outage"


# -- frame faults over the emulated rigs --------------------------------------------------------------

@pytest.mark.parametrize("rig", ["emulated-serial", "emulated-mqtt"])
def test_a_run_with_30_percent_of_frames_dropped_completes_with_errors_counted(rig):
    result, board = run_on(rig, [{"kind": "drop", "value": 0.3}], duration="30s", step_timeout_s=0.2, retries=1)
    assert_one_row_per_tick(result, 30)
    assert board.link_faults.stats.dropped > 0
    assert board.link_stats["step_retries"] > 0
    assert result.summary["board_errors"] > 0


def test_corrupted_frames_on_the_serial_rig_are_counted_as_crc_errors():
    result, board = run_on("emulated-serial", [{"kind": "corrupt", "value": 0.2, "target": "to_twin"}],
                           duration="20s", step_timeout_s=0.2, retries=2)
    assert_one_row_per_tick(result, 20)
    corrupted = board.link_faults.stats.corrupted
    assert corrupted > 0 and board.codec.counters.crc_errors >= corrupted // 2


def test_the_same_seed_drops_the_same_frames():
    a = run_on("emulated-serial", [{"kind": "drop", "value": 0.3, "target": "to_board"}], duration="15s",
               step_timeout_s=0.2, retries=3)
    b = run_on("emulated-serial", [{"kind": "drop", "value": 0.3, "target": "to_board"}], duration="15s",
               step_timeout_s=0.2, retries=3)
    assert a[1].link_faults.stats.dropped == b[1].link_faults.stats.dropped > 0
    assert np.array_equal(a[0].recorder.rows()["t_ns"], b[0].recorder.rows()["t_ns"])


def test_reorder_on_a_signed_link_delivers_late_frames_that_are_then_refused_as_replays():
    from firmware_bridge.signing import ReplayTable, SigningClock, SigningPolicy

    key = os.urandom(32)
    sender = MavlinkCodec(signing=SigningPolicy(key, ReplayTable(), SigningClock()), link_id=2)
    data = b"".join(sender.encode(message_class("SC_STEP_REPLY")(k, k * S)) for k in range(1, 7))
    master, slave = os.openpty()

    async def go():
        link = FaultyLink(SerialLink(os.ttyname(slave)), seed=7)
        link.add(FaultSpec(kind="reorder", value=1.0, target="to_twin"))
        codec, seqs = MavlinkCodec(signing=SigningPolicy(key, ReplayTable(), SigningClock()), link_id=1), []
        async with link:
            os.write(master, data)
            while len(seqs) + codec.counters.replays < 6:
                seqs += [m.seq for m in codec.feed(await asyncio.wait_for(link.recv(), 10))]
        return seqs, link.stats, codec.counters

    try:
        seqs, stats, counters = asyncio.run(go())
    finally:
        os.close(master)
        os.close(slave)
    assert stats.reordered == 3
    assert seqs == [2, 4, 6] and counters.replays == 3        # each held-back frame came late, and was refused
    assert counters.reordered == 0 and counters.seq_lost == 2  # the gaps they left (2->4, 4->6)


def test_frames_still_delayed_when_the_link_closes_go_out_at_once():
    master, slave = os.openpty()

    async def go():
        link = FaultyLink(SerialLink(os.ttyname(slave)), seed=1)
        link.add(FaultSpec(kind="delay", value=30.0, target="to_board"))
        async with link:
            await link.send(step_replies(2))  # e.g. the board's safe command, sent on the way out
        got, codec = [], MavlinkCodec()
        os.set_blocking(master, False)
        try:
            while True:
                got += codec.feed(os.read(master, 4096))
        except BlockingIOError:
            pass
        return [m.seq for m in got]

    try:
        assert asyncio.run(go()) == [1, 2]
    finally:
        os.close(master)
        os.close(slave)


def test_a_replug_that_never_comes_up_leaves_the_link_visibly_broken():
    from firmware_bridge.errors import BridgeOperationError

    master, slave = os.openpty()
    now = [0]

    class Unplugger:
        def __init__(self, link):
            self.link = link

        async def unplug(self):
            await self.link.inner.__aexit__(None, None, None)  # the device is gone...

        async def replug(self):
            pass                                               # ...and does not come back

    async def go():
        link = FaultyLink(SerialLink(os.ttyname(slave)), now_ns=lambda: now[0], reconnect_timeout_s=0.3)
        link.disconnector = Unplugger(link)
        link.kinds = frozenset(LINK_FAULT_KINDS)
        link.add(FaultSpec(kind="disconnect", at="1s", duration="1s"))
        async with link:
            now[0] = 1 * S
            with pytest.raises(LinkLost):
                await link.send(step_replies(1))
            now[0] = 2 * S
            with pytest.raises(BridgeOperationError, match="still"):
                await link.send(step_replies(1))
            with pytest.raises(BridgeOperationError):  # and stays broken
                await link.send(step_replies(1))

    from firmware_bridge.errors import LinkLost
    try:
        asyncio.run(go())
    finally:
        os.close(master)
        os.close(slave)
