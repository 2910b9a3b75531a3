"""RemoteBoard in lockstep over a real pty pair, signed, against the board's side of the protocol.

The board side is the simulated board behind a BoardServer on the other end
of a socat pty pair: the flight software then sees, bit for bit, the frames
it sees on the simulated rig, so the telemetry digest is the same.
"""
import asyncio
import os

import pytest

from firmware_bridge.codec import MavlinkCodec
from firmware_bridge.keys import create_key_file, load_key
from firmware_bridge.remote_board import RemoteBoard
from firmware_bridge.signing import ReplayTable, SigningClock, SigningPolicy
from firmware_bridge.transports.serial_link import SerialLink
from hil_rigs.board_server import BoardServer
from twin.run import run_scenario
from twin.scenarios import load_scenario
from twin.sim.simboard import SimBoard


def policy(key, tmp_path, side):
    return SigningPolicy(key, ReplayTable(tmp_path / f"{side}.replay"), SigningClock(tmp_path / f"{side}.clock"))


async def run_remote(scenario, twin_port, board_port, key, tmp_path, serve=True):
    board = SimBoard(scenario, scenario.run.seed)
    server_link = SerialLink(board_port)
    server = BoardServer(board, server_link, MavlinkCodec(signing=policy(key, tmp_path, "board"), link_id=2))
    remote = RemoteBoard(SerialLink(twin_port), MavlinkCodec(signing=policy(key, tmp_path, "twin"), link_id=1),
                         rig="emulated-serial", step_timeout_s=0.5, retries=1)
    async with server_link:
        task = asyncio.create_task(server.serve()) if serve else None
        try:
            return await run_scenario(scenario, board=remote, out_dir=None, plots=False), server
        finally:
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)


def test_lockstep_over_a_signed_serial_link_gives_the_simulated_rig_digest(pty_pair, tmp_path):
    key_file = create_key_file(tmp_path / "rig.key")
    scenario = load_scenario("node", duration="45m")
    sim = asyncio.run(run_scenario(scenario, out_dir=None, plots=False))
    remote, server = asyncio.run(run_remote(scenario, *pty_pair, load_key(key_file), tmp_path))
    assert remote.summary["telemetry_digest"] == sim.summary["telemetry_digest"]
    assert remote.summary["rig"] == "emulated-serial" and remote.executive.board_errors == 0
    assert server.stats["steps"] == 45 * 60 and server.stats["commands"] >= 45 * 60
    assert remote.board.codec.counters.signed_ok > 0 and remote.board.codec.counters.bad_signature == 0
    # The board told its firmware id in SC_BOARD_STATUS; the twin records it with the run.
    assert remote.board.info.firmware_id == server.firmware_id != "unknown"


def test_a_silent_board_costs_counted_timeouts_and_stale_frames_not_the_loop(pty_pair, tmp_path):
    key = load_key(create_key_file(tmp_path / "rig.key"))
    scenario = load_scenario("node", duration="4s")
    remote, _ = asyncio.run(run_remote(scenario, *pty_pair, key, tmp_path, serve=False))
    assert remote.executive.ticks == 4 and remote.executive.board_errors >= 4
    assert remote.board.link_stats["step_timeouts"] == 4


def test_wrong_key_on_the_board_side_is_rejected_and_counted(pty_pair, tmp_path):
    twin_key = load_key(create_key_file(tmp_path / "twin.key"))
    board_key = load_key(create_key_file(tmp_path / "board.key"))
    assert twin_key != board_key
    scenario = load_scenario("node", duration="3s")

    async def go():
        board = SimBoard(scenario, 1)
        link = SerialLink(pty_pair[1])
        server = BoardServer(board, link, MavlinkCodec(signing=policy(board_key, tmp_path, "board"), link_id=2))
        remote = RemoteBoard(SerialLink(pty_pair[0]),
                             MavlinkCodec(signing=policy(twin_key, tmp_path, "twin"), link_id=1),
                             rig="emulated-serial", step_timeout_s=0.3, retries=0)
        async with link:
            task = asyncio.create_task(server.serve())
            try:
                result = await run_scenario(scenario, board=remote, out_dir=None, plots=False)
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        return result, server

    result, server = asyncio.run(go())
    assert server.stats["steps"] == 0 and server.stats["commands"] == 0
    assert server.codec.counters.bad_signature > 0
    assert result.executive.board_errors >= 3


def test_lockstep_through_a_real_mosquitto_gives_the_simulated_rig_digest(tmp_path):
    from firmware_bridge.transports.mqtt_link import MqttLink
    from tests.bridge.mqtt_broker import PASSWORDS, MosquittoBroker

    key = load_key(create_key_file(tmp_path / "rig.key"))
    scenario = load_scenario("node", duration="20m")
    sim = asyncio.run(run_scenario(scenario, out_dir=None, plots=False))

    async def go(port):
        board = SimBoard(scenario, scenario.run.seed)
        board_link = MqttLink("127.0.0.1", port, sat_id="sat1", role="board", username="board",
                              password=PASSWORDS["board"], clean_start=True)
        twin_link = MqttLink("127.0.0.1", port, sat_id="sat1", role="twin", username="twin",
                             password=PASSWORDS["twin"], clean_start=True)
        server = BoardServer(board, board_link, MavlinkCodec(signing=policy(key, tmp_path, "board"), link_id=2))
        remote = RemoteBoard(twin_link, MavlinkCodec(signing=policy(key, tmp_path, "twin"), link_id=1),
                             rig="emulated-mqtt", step_timeout_s=1.0, retries=2)
        async with board_link:
            task = asyncio.create_task(server.serve())
            try:
                return await run_scenario(scenario, board=remote, out_dir=None, plots=False), server
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    with MosquittoBroker(tmp_path) as broker:
        remote, server = asyncio.run(go(broker.port))
    assert remote.summary["telemetry_digest"] == sim.summary["telemetry_digest"]
    assert remote.executive.board_errors == 0 and server.stats["steps"] == 20 * 60


def test_free_running_board_streams_and_the_twin_takes_the_newest_frame_on_the_wall_clock(pty_pair, tmp_path):
    from twin.clock import WallClock

    key = load_key(create_key_file(tmp_path / "rig.key"))
    scenario = load_scenario("node", duration="3s")
    board_period = 100_000_000  # the board samples at 10 Hz on its own clock

    async def go():
        board = SimBoard(scenario, 1, period_ns=board_period)
        link = SerialLink(pty_pair[1])
        server = BoardServer(board, link, MavlinkCodec(signing=policy(key, tmp_path, "board"), link_id=2))
        remote = RemoteBoard(SerialLink(pty_pair[0]), MavlinkCodec(signing=policy(key, tmp_path, "twin"), link_id=1),
                             rig="bench", lockstep=False, step_timeout_s=1.0)
        async with link:
            tasks = [asyncio.create_task(server.stream(board_period)), asyncio.create_task(server.serve())]
            try:
                result = await run_scenario(scenario, board=remote, out_dir=None, plots=False, clock=WallClock())
            finally:
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
        return result, server

    result, server = asyncio.run(go())
    rows = result.recorder.rows()
    assert result.executive.ticks == 3 and result.executive.board_errors <= 1
    assert list(rows["t_ns"]) == [0, 1_000_000_000, 2_000_000_000]  # frames re-timed to the twin's ticks
    ages = rows["t_ns"][:, None] - rows["sample_t_ns"]
    assert (ages >= 0).all() and (ages < 500_000_000).all()  # fresh: the board streams at 10 Hz
    assert server.stats["steps"] >= 20 and server.stats["commands"] >= 2
    assert not result.board.lockstep


# -- commands: the newest one is kept until it is on the wire ------------------------------------------

from firmware_bridge.errors import BridgeOperationError, BridgeTimeout, LinkLost, SecurityError  # noqa: E402
from twin.hal import ActuatorCommand  # noqa: E402

S = 10**9


class FlakySerialLink(SerialLink):
    """A real pty link whose next sends can be made to fail (``fail``) or to wait, then fail (``hold``)."""

    def __init__(self, port):
        super().__init__(port)
        self.fail: list[BaseException] = []
        self.hold: asyncio.Future | None = None

    async def send(self, data):
        if self.hold is not None:
            hold, self.hold = self.hold, None
            raise await hold
        if self.fail:
            raise self.fail.pop(0)
        await super().send(data)


def board_commands(master: int, key: bytes) -> tuple[list, object]:
    """Everything the twin wrote into the pty, read by a signed board codec: its SC_ACTUATOR_COMMANDs, counters."""
    codec = MavlinkCodec(signing=SigningPolicy(key, ReplayTable(), SigningClock()), link_id=2)
    os.set_blocking(master, False)
    msgs = []
    while True:
        try:
            data = os.read(master, 65536)
        except BlockingIOError:
            break
        msgs += codec.feed(data)
    return [m for m in msgs if m.get_type() == "SC_ACTUATOR_COMMAND"], codec.counters


def cmd(mode: int) -> ActuatorCommand:
    return ActuatorCommand(fsw_mode=mode)


@pytest.fixture
def twin_pty():
    master, slave = os.openpty()
    try:
        yield master, os.ttyname(slave)
    finally:
        os.close(master)
        os.close(slave)


def remote_on(port, key):
    link = FlakySerialLink(port)
    codec = MavlinkCodec(signing=SigningPolicy(key, ReplayTable(), SigningClock()), link_id=1)
    return link, RemoteBoard(link, codec, rig="emulated-serial", step_timeout_s=0.05, retries=0)


def test_a_command_whose_flush_failed_while_a_step_went_out_reaches_the_board_freshly_signed(twin_pty):
    master, port = twin_pty
    key = os.urandom(32)

    async def go():
        link, remote = remote_on(port, key)
        async with remote:
            hold = asyncio.get_running_loop().create_future()
            link.hold = hold
            await remote.command(cmd(1))
            await asyncio.sleep(0.01)
            with pytest.raises(BridgeTimeout):
                await remote.step_to(S)
            hold.set_result(BridgeTimeout("no PUBACK", link=link.name))  # the flusher's send fails late
            await asyncio.sleep(0.01)
            with pytest.raises(BridgeTimeout):
                await remote.step_to(2 * S)
            await remote.command(cmd(2))
            with pytest.raises(BridgeTimeout):
                await remote.step_to(3 * S)
        return remote

    remote = asyncio.run(go())
    got, counters = board_commands(master, key)
    assert counters.replays == 0 and counters.bad_signature == 0
    assert [(m.fsw_mode, m.cmd_seq) for m in got] == [(1, 1), (2, 2), (0, 3)]  # the last: the safe command
    assert remote.link_stats["commands_out"] == 3 and remote.link_stats["commands_superseded"] == 0


@pytest.mark.parametrize("error", [BridgeTimeout("no PUBACK"), BridgeOperationError("link fault"),
                                   SecurityError("signing clock"), LinkLost("unplugged"), OSError("EIO")])
def test_a_command_is_kept_on_any_send_error_and_goes_with_the_next_step(twin_pty, error):
    master, port = twin_pty
    key = os.urandom(32)

    async def go():
        link, remote = remote_on(port, key)
        async with remote:
            await remote.command(cmd(7))
            link.fail = [error, error]              # the step request that carries it, then the flusher
            with pytest.raises(type(error)):
                await remote.step_to(S)
            await asyncio.sleep(0.01)
            with pytest.raises(BridgeTimeout):
                await remote.step_to(S)              # no board answers, but the send went through
        return remote

    remote = asyncio.run(go())
    got, counters = board_commands(master, key)
    assert counters.replays == 0
    assert [(m.fsw_mode, m.cmd_seq) for m in got] == [(7, 1), (0, 2)]
    assert remote.link_stats["commands_out"] == 2


def test_during_an_outage_only_the_newest_command_waits_and_the_replaced_ones_are_counted(twin_pty):
    master, port = twin_pty
    key = os.urandom(32)

    async def go():
        link, remote = remote_on(port, key)
        async with remote:
            for k in range(1, 6):                  # five ticks of outage: step and flush both refused
                await remote.command(cmd(k))
                link.fail = [LinkLost("down"), LinkLost("down")]
                with pytest.raises(LinkLost):
                    await remote.step_to(k * S)
                await asyncio.sleep(0.01)
            link.fail = []
            await remote.command(cmd(6))
            with pytest.raises(BridgeTimeout):
                await remote.step_to(6 * S)
            stats = dict(remote.link_stats)
        return stats

    stats = asyncio.run(go())
    got, counters = board_commands(master, key)
    assert [m.fsw_mode for m in got] == [6, 0]       # no burst of stale history, then the safe command
    assert stats["commands_superseded"] == 5 and stats["commands_out"] == 1
    assert counters.replays == 0


def test_a_flusher_that_crashes_is_supervised_and_the_command_is_kept(twin_pty, caplog):
    master, port = twin_pty
    key = os.urandom(32)

    async def go():
        link, remote = remote_on(port, key)
        async with remote:
            link.fail = [RuntimeError("a bug in a transport")]
            await remote.command(cmd(3))
            await asyncio.sleep(0.05)              # the flusher fails, is restarted, sends
        return remote

    remote = asyncio.run(go())
    got, _ = board_commands(master, key)
    assert [m.fsw_mode for m in got][:1] == [3]
    assert "never retrieved" not in caplog.text
    assert any("a bug in a transport" in e for r in remote._sup.records.values() for e in r.errors)
