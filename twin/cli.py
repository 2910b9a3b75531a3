"""The ``twin`` command line.

``twin run`` runs a scenario on a rig and writes telemetry, a summary and plots;
``twin scenarios`` lists the built-in scenarios. Bad input (unknown scenario,
bad TOML, out-of-range keys, unparsable durations, unwritable output folder)
gives a one-line error and exit code 2, never a traceback.
"""
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import logging
import os
import signal
import sys
from pathlib import Path

__all__ = ["main"]

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class CliError(Exception):
    """A problem with what the user asked for; printed as one line, exit code 2."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="twin", description="Suncatcher flight-software twin")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run a scenario on a rig")
    r.add_argument("--scenario", default="node", help="built-in name or TOML file (default: node)")
    r.add_argument("--epoch", help="start time, ISO 8601 UTC (default: the scenario's)")
    r.add_argument("--duration", help="how long to simulate: 1d, 6h, 90m, 600s (default: the scenario's)")
    r.add_argument("--seed", type=int, help="random seed (default: the scenario's)")
    r.add_argument("--out", help="output folder (default: ./runs/<timestamp>)")
    r.add_argument("--rig", default="sim",
                   help="rig to run on: sim, emulated-serial, emulated-mqtt or a rig file (.toml) (default: sim)")
    r.add_argument("--pace", type=float, help="run paced at this multiple of real time (default: as fast as possible)")
    r.add_argument("--realtime", action="store_true",
                   help="run on the wall clock (a rig file's default unless it says realtime = false)")
    r.add_argument("--mavlink-out", metavar="udp:HOST:PORT",
                   help="also stream HEARTBEAT and telemetry as MAVLink 2 over UDP (e.g. to MAVProxy)")
    r.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    sub.add_parser("scenarios", help="list the built-in scenarios")
    k = sub.add_parser("keygen", help="create a 32-byte MAVLink 2 signing key file for a rig (mode 0600)")
    k.add_argument("path", help="key file to create")
    k.add_argument("--force", action="store_true", help="overwrite an existing key file")
    return p


def _out_dir(arg: str | None) -> Path:
    out = Path(arg) if arg else Path("runs") / dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CliError(f"output folder {out}: cannot create it ({exc.strerror or exc})") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise CliError(f"output folder {out}: not writable")
    probe = out / ".twin-write-test"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise CliError(f"output folder {out}: not writable ({exc.strerror or exc})") from None
    return out


def _cmd_scenarios() -> int:
    from twin.scenarios import list_scenarios
    for name, description in list_scenarios():
        print(f"{name:<22} {description}")
    return 0


def _cmd_keygen(args) -> int:
    from firmware_bridge.errors import BridgeInitError
    from firmware_bridge.keys import create_key_file
    try:
        path = create_key_file(args.path, overwrite=args.force)
    except BridgeInitError as exc:
        raise CliError(str(exc)) from None
    except OSError as exc:
        raise CliError(f"key file {args.path}: {exc.strerror or exc}") from None
    print(f"signing key written to {path} (keep it secret; give the same file to the board's rig)")
    return 0


def _cmd_run(args) -> int:
    from twin.clock import make_clock
    from twin.scenarios import ScenarioError, load_scenario
    from twin.telemetry.summary import format_summary

    try:
        scenario = load_scenario(args.scenario, epoch=args.epoch, duration=args.duration, seed=args.seed)
    except ScenarioError as exc:
        raise CliError(str(exc)) from None
    if args.pace is not None and not args.pace > 0:
        raise CliError(f"--pace must be > 0, got {args.pace}")
    from hil_rigs.rigs import RIG_NAMES, RigError, is_rig_file
    realtime = args.realtime
    if is_rig_file(args.rig):
        from hil_rigs.rigfile import load_rig_file
        try:
            rig_file = load_rig_file(args.rig)
        except RigError as exc:
            raise CliError(f"rig file {exc}") from None
        realtime = realtime or (rig_file.realtime and args.pace is None)
    elif args.rig not in RIG_NAMES:
        raise CliError(f"unknown rig {args.rig!r} (built-in: {', '.join(RIG_NAMES)}; or a rig file .toml)")
    observers = []
    if args.mavlink_out:
        from firmware_bridge.transports.udp_out import MavlinkUdpOut
        try:
            observers.append(MavlinkUdpOut(args.mavlink_out))
        except ValueError as exc:
            raise CliError(f"--mavlink-out: {exc}") from None
    out = _out_dir(args.out)
    args.observers = observers
    result = asyncio.run(_run_with_progress(scenario, args, out, make_clock(args.pace, realtime)))
    print(format_summary(result.summary))
    print(f"outputs: {out}/ ({', '.join(p.name for p in result.files if p.exists())})")
    return 0 if result.summary.get("complete") else EXIT_INTERRUPTED


async def _run_with_progress(scenario, args, out, clock):
    from twin.run import run_scenario
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
    bar = None
    total_s = scenario.duration_ns / 1e9
    if not args.quiet and sys.stderr.isatty() or os.environ.get("TWIN_PROGRESS") == "1":
        from tqdm import tqdm
        bar = tqdm(total=round(total_s), unit="sim-s", unit_scale=True, desc=scenario.name,
                   mininterval=0.25, file=sys.stderr)

    def progress(elapsed_ns: int) -> None:
        if bar is not None:
            bar.update(round(elapsed_ns / 1e9) - bar.n)

    print(f"running {scenario.name} on {args.rig}: {total_s:g} s from {scenario.run.epoch}, seed {scenario.run.seed}",
          file=sys.stderr)
    from firmware_bridge.errors import BridgeInitError
    from hil_rigs.rigs import RigError, open_rig
    try:
        async with open_rig(args.rig, args.scenario, scenario) as board:
            return await run_scenario(scenario, rig=args.rig, out_dir=out, clock=clock, plots=not args.no_plots,
                                      on_progress=progress, stop=stop, observers=args.observers, board=board)
    except (RigError, BridgeInitError) as exc:  # a rig or bench that does not come up: one line
        raise CliError(f"rig {args.rig}: {exc}") from None
    finally:
        clock.close()  # a wall or paced clock holds a timer fd
        if bar is not None:
            bar.close()
        if stop.is_set():
            print("interrupted: telemetry truncated, summary marked incomplete", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = _parser().parse_args(argv)
    try:
        if args.command == "scenarios":
            return _cmd_scenarios()
        if args.command == "keygen":
            return _cmd_keygen(args)
        return _cmd_run(args)
    except CliError as exc:
        print(f"twin: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("twin: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
