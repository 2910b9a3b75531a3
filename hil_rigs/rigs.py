"""Built-in rigs: ``sim``, ``emulated-serial``, ``emulated-mqtt``.

``async with open_rig(name, scenario_ref, scenario) as board:`` gives a board
(not yet entered: the executive enters it) and owns everything the rig started:
for ``emulated-serial`` a socat pty pair and the emulator process on one end;
for ``emulated-mqtt`` a private mosquitto on 127.0.0.1 and an ephemeral port
(the shipped config, fresh passwords) and the emulator behind it. Leaving the
context -- normally, on an exception or on Ctrl-C -- stops every process by pid
(SIGTERM, then SIGKILL) and removes the rig's temporary folder. A rig that
fails to come up raises :class:`RigError` with one line saying why.
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["RIG_NAMES", "RigError", "open_rig"]

RIG_NAMES = ("sim", "emulated-serial", "emulated-mqtt")
_READY_S = 60.0


class RigError(RuntimeError):
    """A rig could not be brought up; the message is one line."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Processes:
    """Processes started by a rig, stopped by pid whatever happens."""

    def __init__(self):
        self.procs: list[subprocess.Popen] = []

    def start(self, argv: list[str], **kw) -> subprocess.Popen:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, start_new_session=True, **kw)
        self.procs.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in reversed(self.procs):
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _wait_ready(proc: subprocess.Popen, what: str, log: Path) -> None:
    deadline = time.monotonic() + _READY_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            last = (log.read_text(errors="replace").strip().splitlines() or ["(no output)"])[-1]
            raise RigError(f"{what} exited with code {proc.returncode}: {last}")
        if "emulator ready" in log.read_text(errors="replace"):
            return
        time.sleep(0.05)
    raise RigError(f"{what} not ready after {_READY_S:g} s (see {log})")


def _emulator_argv(scenario_ref: str, scenario, key: Path, state: Path) -> list[str]:
    return [sys.executable, "-m", "hil_rigs.emulator", "--parent-pid", str(os.getpid()), "--key", str(key),
            "--state-dir", str(state),
            "--scenario", scenario_ref, "--epoch", scenario.run.epoch, "--seed", str(scenario.run.seed)]


def _policy(key: bytes, state: Path):
    from firmware_bridge.signing import ReplayTable, SigningClock, SigningPolicy
    return SigningPolicy(key, ReplayTable(state / "twin.replay"), SigningClock(state / "twin.clock"))


@contextlib.asynccontextmanager
async def open_rig(name: str, scenario_ref: str, scenario):
    """The board of rig ``name`` for ``scenario`` (loaded from ``scenario_ref``, a name or file)."""
    if name == "sim":
        from twin.sim.simboard import SimBoard
        yield SimBoard(scenario, scenario.run.seed)
        return
    if name not in RIG_NAMES:
        raise RigError(f"unknown rig {name!r} (built-in: {', '.join(RIG_NAMES)})")
    from firmware_bridge.codec import MavlinkCodec
    from firmware_bridge.keys import create_key_file, load_key
    from firmware_bridge.remote_board import RemoteBoard

    work = Path(tempfile.mkdtemp(prefix=f"twin-{name}-"))
    procs = _Processes()
    try:
        key_file = create_key_file(work / "rig.key")
        emu_log = work / "emulator.log"
        argv = _emulator_argv(scenario_ref, scenario, key_file, work)
        if name == "emulated-serial":
            transport = await asyncio.to_thread(_serial_rig, procs, work, argv, emu_log)
        else:
            transport = await asyncio.to_thread(_mqtt_rig, procs, work, argv, emu_log)
        codec = MavlinkCodec(signing=_policy(load_key(key_file), work), link_id=1)
        yield RemoteBoard(transport, codec, rig=name, step_timeout_s=2.0, retries=2)
    finally:
        await asyncio.to_thread(procs.stop_all)
        shutil.rmtree(work, ignore_errors=True)


def _serial_rig(procs: _Processes, work: Path, argv: list[str], emu_log: Path):
    from firmware_bridge.transports.serial_link import SerialLink
    socat = shutil.which("socat")
    if socat is None:
        raise RigError("emulated-serial needs socat (apt-get install socat)")
    twin_end, board_end = work / "twin-tty", work / "board-tty"
    procs.start([socat, f"pty,raw,echo=0,link={twin_end}", f"pty,raw,echo=0,link={board_end}"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not (twin_end.exists() and board_end.exists()):
        if time.monotonic() > deadline:
            raise RigError("socat did not create the pty pair within 10 s")
        time.sleep(0.02)
    with open(emu_log, "wb") as log:
        proc = procs.start([*argv, "--serial", str(board_end)], stdout=log, stderr=log)
    _wait_ready(proc, "the emulator", emu_log)
    return SerialLink(str(twin_end))


def _mqtt_rig(procs: _Processes, work: Path, argv: list[str], emu_log: Path):
    from firmware_bridge.broker import BrokerUser, mosquitto_path, wait_until_listening, write_broker_files
    from firmware_bridge.transports.mqtt_link import MqttLink
    try:
        exe = mosquitto_path()
    except Exception as exc:  # mosquitto_path says what to install
        raise RigError(f"emulated-mqtt needs mosquitto: {exc}") from None
    passwords = {"twin": secrets.token_urlsafe(16), "board": secrets.token_urlsafe(16)}
    cfg = write_broker_files(work / "broker", _free_port(), [BrokerUser(n, p, n) for n, p in passwords.items()],
                             persistence_dir=work / "broker-store")
    with open(work / "mosquitto.log", "wb") as log:
        broker = procs.start([exe, "-c", str(cfg.conf_path)], stdout=log, stderr=log)
    problem = wait_until_listening(broker, cfg.host, cfg.port, 15.0)
    if problem is not None:
        raise RigError(f"mosquitto {problem} (see {work / 'mosquitto.log'})")
    pw_file = work / "board.password"
    pw_file.write_text(passwords["board"])
    pw_file.chmod(0o600)
    with open(emu_log, "wb") as log:
        proc = procs.start([*argv, "--mqtt", f"{cfg.host}:{cfg.port}", "--password-file", str(pw_file)],
                           stdout=log, stderr=log)
    _wait_ready(proc, "the emulator", emu_log)
    return MqttLink(cfg.host, cfg.port, sat_id="sat1", role="twin", username="twin", password=passwords["twin"],
                    clean_start=True)
