"""The board emulator: a separate process that is, to the twin, a board.

It speaks only the firmware_bridge protocol (signed MAVLink 2) on a serial
device or through an MQTT broker, backed by the same physics as the simulated
board, in lockstep (answers step requests) or free-running (streams frames on
the wall clock); a signed SC_FAULT_INJECT schedules a fault inside it. Usage::

    python -m hil_rigs.emulator --serial /dev/pts/7 --key rig.key --scenario node --seed 1
    python -m hil_rigs.emulator --mqtt 127.0.0.1:1883 --user board --password-file pw --key rig.key

SIGTERM or SIGINT stops it cleanly (exit 0), and so does the death of the
process that started it. A bad argument or an unusable
device, broker or key file: one line on stderr and exit code 2.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

__all__ = ["main"]

_CLOSE_S = 2.0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m hil_rigs.emulator", description=__doc__.split("\n\n")[0])
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--serial", metavar="DEVICE", help="serial device (e.g. one end of a pty pair)")
    where.add_argument("--mqtt", metavar="HOST:PORT", help="MQTT broker")
    p.add_argument("--sat-id", default="sat1", help="satellite id in the MQTT topics (default sat1)")
    p.add_argument("--user", default="board", help="MQTT user (default board)")
    p.add_argument("--password-file", type=Path, help="file holding the MQTT password")
    p.add_argument("--key", type=Path, required=True, help="32-byte signing key file (twin keygen)")
    p.add_argument("--state-dir", type=Path, help="where to keep the replay table and signing clock")
    p.add_argument("--scenario", default="node", help="scenario whose spacecraft to emulate (default node)")
    p.add_argument("--epoch", help="start time, ISO 8601 UTC (default: the scenario's)")
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    p.add_argument("--free-running", type=float, metavar="HZ", help="stream frames at HZ instead of lockstep")
    p.add_argument("--parent-pid", type=int, help="exit when this process (the rig) is gone")
    return p


def _parent_alive(pid: int | None) -> bool:
    return pid is None or os.getppid() == pid


async def _serve(args) -> None:
    from firmware_bridge.codec import MavlinkCodec
    from firmware_bridge.keys import load_key
    from firmware_bridge.signing import ReplayTable, SigningClock, SigningPolicy
    from hil_rigs.board_server import BoardServer
    from twin.scenarios import load_scenario
    from twin.sim.simboard import SimBoard

    scenario = load_scenario(args.scenario, epoch=args.epoch, seed=args.seed)
    period_ns = round(1e9 / args.free_running) if args.free_running else scenario.period_ns
    board = SimBoard(scenario, args.seed, period_ns=period_ns)
    state = args.state_dir
    replay = ReplayTable(state / "board.replay" if state else None)
    clock = SigningClock(state / "board.clock" if state else None)
    policy = SigningPolicy(load_key(args.key), replay, clock)  # commands (fault injection too) only signed
    codec = MavlinkCodec(signing=policy, link_id=2)
    if args.serial:
        from firmware_bridge.transports.serial_link import SerialLink
        link = SerialLink(args.serial)
    else:
        from firmware_bridge.transports.mqtt_link import MqttLink
        host, _, port = args.mqtt.rpartition(":")
        password = args.password_file.read_text().strip() if args.password_file else None
        link = MqttLink(host, int(port), sat_id=args.sat_id, role="board", username=args.user,
                        password=password, clean_start=True)
    server = BoardServer(board, link, codec, firmware_id=f"emulator {scenario.name} seed {args.seed}")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async def orphan_watch() -> None:
        # A rig that was killed outright cannot stop us: do not outlive it.
        while _parent_alive(args.parent_pid):
            await asyncio.sleep(0.5)
        stop.set()

    await link.__aenter__()
    try:
        tasks = [asyncio.create_task(server.serve(), name="serve"), asyncio.create_task(orphan_watch())]
        if args.free_running:
            tasks.append(asyncio.create_task(server.stream(period_ns), name="stream"))
        print("emulator ready", flush=True)
        await stop.wait()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        # A broker that died with the rig can stall a polite disconnect: do not hang on it.
        try:
            async with asyncio.timeout(_CLOSE_S):
                await link.__aexit__(None, None, None)
        except TimeoutError:
            logging.getLogger(__name__).warning("link not closed within %g s; exiting anyway", _CLOSE_S)
    replay.close()
    clock.close()


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="emulator %(levelname)s %(name)s: %(message)s")
    args = _parser().parse_args(argv)
    if not _parent_alive(args.parent_pid):
        return 0
    from firmware_bridge.errors import BridgeError
    from twin.scenarios import ScenarioError
    try:
        asyncio.run(_serve(args))
    except (BridgeError, ScenarioError, OSError) as exc:
        print(f"emulator: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
