"""A board flooding telemetry at 10x the normal rate over a real pty pair.

The board is a separate process (this module run with ``python -m``: a BoardServer on
a SimBoard, signed, streaming every 1 ms) on one end of a socat pty pair; the
twin's RemoteBoard on the other end runs a 100 Hz control loop on the wall
clock, taking the newest frame and sending a command each tick. What must
hold, none of it timed:

* every command reaches the board, sequence numbers 1..N contiguous, none twice;
* every frame the board sent reaches the twin (a pty loses nothing) and is
  either used or dropped *and counted*: frames_in == used + dropped + pending;
* memory stays flat: the tracemalloc peak over the second half of the run is
  not above the first half's by more than a small bound.
"""
from __future__ import annotations

import asyncio
import json
import signal
import sys
import tracemalloc
from pathlib import Path


HANG_GUARD_S = 120            # turns a hang into a failure; never a speed assertion
CONTROL_HZ = 100
FLOOD_HZ = 10 * CONTROL_HZ    # the board streams at 10x the rate the twin consumes
WARMUP, HALF = 100, 150       # control ticks
MEMORY_SLACK = 256 * 1024     # bytes the second half's peak may exceed the first half's by
REPO = Path(__file__).resolve().parents[2]


def _policy(key: bytes):
    from firmware_bridge.signing import ReplayTable, SigningClock, SigningPolicy
    return SigningPolicy(key, ReplayTable(), SigningClock())


async def _twin(device: str, key: bytes, board: asyncio.subprocess.Process) -> dict:
    from firmware_bridge.codec import MavlinkCodec
    from firmware_bridge.remote_board import RemoteBoard
    from firmware_bridge.transports.serial_link import SerialLink
    from twin.clock import WallClock
    from twin.hal import ActuatorCommand

    remote = RemoteBoard(SerialLink(device), MavlinkCodec(signing=_policy(key), link_id=1), rig="flood",
                         lockstep=False, step_timeout_s=30.0)
    clock, cmd, peaks, tick = WallClock(), ActuatorCommand(), [], 0
    async with remote:
        await remote.command(cmd)  # the board starts streaming when its first command comes
        await remote.step_to(0)
        clock.start(0)

        async def ticks(n: int) -> None:
            nonlocal tick
            for _ in range(n):
                tick += 1
                t = tick * 1_000_000_000 // CONTROL_HZ
                await clock.wait_until(t)
                await remote.step_to(t)
                await remote.command(cmd)

        await ticks(WARMUP)
        tracemalloc.start()
        try:
            for _ in range(2):
                tracemalloc.reset_peak()
                await ticks(HALF)
                peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
            clock.close()
        report = json.loads(await board.stdout.readline())  # the board saw command N and stopped streaming
        codec = remote.codec.counters
        # All it sent before the report: arrived, or counted lost. The board keeps its heartbeat going,
        # as boards do, so a loss at the very end still shows as a gap (and a pty pushes its tail on).
        while codec.frames_ok + codec.seq_lost < report["frames_out"]:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0)
        stats, codec = dict(remote.link_stats), remote.codec.counters
        board.send_signal(signal.SIGTERM)
    return {"board": report, "stats": stats, "codec": codec, "peaks": peaks, "pending": remote.frame_pending}


def test_flood_at_10x_commands_all_arrive_telemetry_drops_are_counted_memory_flat(pty_pair, tmp_path):
    from firmware_bridge.keys import create_key_file, load_key

    key_file = create_key_file(tmp_path / "rig.key")
    n_commands = 1 + WARMUP + 2 * HALF

    async def main():
        board = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.bridge.test_flood", pty_pair[1], str(key_file), str(FLOOD_HZ),
            str(n_commands), stdout=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL, cwd=REPO)
        try:
            assert (await board.stdout.readline()).strip() == b"ready"
            async with asyncio.timeout(HANG_GUARD_S):
                return await _twin(pty_pair[0], load_key(key_file), board)
        finally:
            if board.returncode is None:
                board.kill()
            await board.wait()

    r = asyncio.run(main())
    board, stats, codec = r["board"], r["stats"], r["codec"]
    # Commands: every one arrived, in order, once.
    assert stats["commands_out"] == n_commands
    assert board["cmd_seqs"] == list(range(1, n_commands + 1))
    # Telemetry: every message the board sent was accepted or, lost below the codec, counted
    # (the wait above ends only then; what is beyond are the heartbeats sent since).
    assert board["frames_out"] <= codec.frames_ok + codec.seq_lost < board["frames_out"] + 256
    assert codec.crc_errors == codec.bad_signature == codec.replays == 0
    # Every frame that arrived was used or dropped and counted; a frame that lost a part is counted too.
    assert stats["frames_in"] == stats["frames_used"] + stats["frames_dropped"] + r["pending"]
    assert stats["assembly_errors"] == 0
    if codec.seq_lost == 0:
        assert stats["frames_in"] == board["frames_sent"]
    else:
        assert stats["frames_in"] < board["frames_sent"]
    assert stats["frames_dropped"] > stats["frames_used"]  # 10x more came than the loop could take
    # Memory: flat under the flood.
    first, second = r["peaks"]
    assert second <= first + MEMORY_SLACK, (first, second)


# -- the board: run as a script in its own process --------------------------------------------------

async def _board_main(device: str, key_file: str, rate_hz: float, n_commands: int) -> None:
    from firmware_bridge.codec import MavlinkCodec
    from firmware_bridge.keys import load_key
    from firmware_bridge.messages import message_class
    from firmware_bridge.transports.serial_link import SerialLink
    from hil_rigs.board_server import BoardServer
    from twin.scenarios import load_scenario
    from twin.sim.simboard import SimBoard

    class RecordingServer(BoardServer):
        """Records every command's sequence number; stops streaming once command ``n_commands`` came."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.cmd_seqs: list[int] = []
            self.done, self.first = asyncio.Event(), asyncio.Event()

        async def _handle(self, msg) -> None:
            if msg.get_type() == "SC_ACTUATOR_COMMAND":
                self.cmd_seqs.append(msg.cmd_seq)
                self.first.set()
                if msg.cmd_seq >= n_commands:
                    self.done.set()
            await super()._handle(msg)

    period = round(1e9 / rate_hz)
    link = SerialLink(device)
    server = RecordingServer(SimBoard(load_scenario("node"), 1, period_ns=period), link,
                             MavlinkCodec(signing=_policy(load_key(Path(key_file))), link_id=2))
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with link:
        serving = asyncio.create_task(server.serve())
        print("ready", flush=True)
        await server.first.wait()
        streaming = asyncio.create_task(server.stream(period))
        await server.done.wait()
        streaming.cancel()
        await asyncio.gather(streaming, return_exceptions=True)
        print(json.dumps({"cmd_seqs": server.cmd_seqs, "frames_sent": server.stats["steps"],
                          "bytes_out": link.counters.bytes_out, "frames_out": server.codec.counters.frames_out}),
              flush=True)
        heartbeat = message_class("HEARTBEAT")(18, 8, 0, 0, 4, 3)
        while not stop.is_set():
            await link.send(server.codec.encode(heartbeat))
            await asyncio.sleep(0.01)
        serving.cancel()
        await asyncio.gather(serving, return_exceptions=True)


if __name__ == "__main__":
    asyncio.run(_board_main(sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])))
