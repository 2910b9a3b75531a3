"""RemoteBoard in lockstep over a real pty pair, signed, against the board's side of the protocol.

The board side is the simulated board behind a BoardServer on the other end
of a socat pty pair: the flight software then sees, bit for bit, the frames
it sees on the simulated rig, so the telemetry digest is the same.
"""
import asyncio
import shutil
import signal
import subprocess
import time

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


@pytest.fixture
def pty_pair(tmp_path):
    socat = shutil.which("socat")
    assert socat, "socat is not installed: apt-get install socat (scripts/test.sh does it)"
    a, b = tmp_path / "twin-end", tmp_path / "board-end"
    proc = subprocess.Popen([socat, f"pty,raw,echo=0,link={a}", f"pty,raw,echo=0,link={b}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not (a.exists() and b.exists()) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert a.exists() and b.exists(), "socat did not create the pty pair"
        yield str(a), str(b)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


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
