"""Rigs: built-in ``sim``, ``emulated-serial``, ``emulated-mqtt``, and rig files (:mod:`hil_rigs.rigfile`).

``async with open_rig(name, scenario_ref, scenario) as board:`` gives a board
(not yet entered: the executive enters it) and owns everything the rig started:
for ``emulated-serial`` a socat pty pair and the emulator process on one end;
for ``emulated-mqtt`` a private mosquitto on 127.0.0.1 and an ephemeral port
(the shipped config, fresh passwords) and the emulator behind it. Leaving the
context -- normally, on an exception or on Ctrl-C -- stops every process by pid
(SIGTERM, then SIGKILL) and removes the rig's temporary folder; a twin killed
outright takes them along (PR_SET_PDEATHSIG, see :class:`_Processes`). A rig
that fails to come up raises :class:`RigError` with one line saying why.

Every board has ``link_faults`` (``add(spec)``, ``kinds``), holding the
scenario's link faults: on ``sim`` a :class:`~twin.sim.faults.SimLinkFaults`
(``disconnect`` only), on emulated rigs a
:class:`~firmware_bridge.transports.faulty.FaultyLink` whose ``disconnect``
kills socat or stops the broker and starts it again. See ``docs/rigs.md``.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import os
import queue
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

__all__ = ["RIG_NAMES", "RigError", "open_rig", "is_rig_file", "add_scenario_link_faults"]

RIG_NAMES = ("sim", "emulated-serial", "emulated-mqtt")
_READY_S = 60.0
#: An emulator whose twin died holds nothing worth saving (its state is in the rig's temporary folder), and
#: its graceful exit can take seconds when its broker vanishes at the same moment: it is killed outright.
_EMULATOR_DEATH_SIGNAL = signal.SIGKILL


class RigError(RuntimeError):
    """A rig could not be brought up; the message is one line."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_PR_SET_PDEATHSIG = 1
_prctl = None


def _die_with_parent(sig: int) -> None:
    """``preexec_fn``: the child gets ``sig`` when the thread that forked it dies (the rig's spawner thread,
    which lives as long as the rig -- or as the whole twin, when it is killed with SIGKILL)."""
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, sig)


def _load_prctl():
    global _prctl
    if _prctl is None and sys.platform.startswith("linux"):
        import ctypes
        _prctl = ctypes.CDLL(None, use_errno=True).prctl


class _Processes:
    """Processes started by a rig, stopped by pid whatever happens.

    Every process is forked by one spawner thread that lives until :meth:`stop_all`
    and gets PR_SET_PDEATHSIG: when that thread dies the kernel sends it its
    ``death_signal`` (SIGTERM by default; the emulator's is SIGKILL, see
    ``_EMULATOR_DEATH_SIGNAL``), so nothing outlives a twin killed with SIGKILL.
    (The death signal follows the forking *thread*, so forking from
    ``asyncio.to_thread`` workers, which come and go, would not do.) After
    :meth:`stop_all`, :meth:`start` raises :class:`RigError`: a start-up thread
    that outlives a Ctrl-C cannot start anything nobody would stop.
    """

    def __init__(self):
        self.procs: list[subprocess.Popen] = []
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False

    def start(self, argv: list[str], *, death_signal: int = signal.SIGTERM, **kw) -> subprocess.Popen:
        """Start ``argv`` (from any thread) and return its Popen once forked; ``death_signal`` is what it
        gets if the twin dies without stopping it. :class:`RigError` once :meth:`stop_all` has begun."""
        done: concurrent.futures.Future = concurrent.futures.Future()
        with self._lock:
            if self._closed:
                raise RigError(f"the rig is being stopped: not starting {Path(argv[0]).name}")
            if self._thread is None:
                _load_prctl()
                self._thread = threading.Thread(target=self._spawner, name="rig-spawner", daemon=True)
                self._thread.start()
            self._jobs.put((argv, death_signal, kw, done))  # under the lock: always ahead of stop_all's end mark
        return done.result()

    def _spawner(self) -> None:
        while (job := self._jobs.get()) is not None:
            argv, sig, kw, done = job
            try:
                proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, start_new_session=True,
                                        preexec_fn=functools.partial(_die_with_parent, sig), **kw)
            except BaseException as exc:  # noqa: BLE001 -- handed to the caller
                done.set_exception(exc)
                continue
            with self._lock:  # recorded here, not by the caller, so stop_all sees it once this thread is joined
                self.procs.append(proc)
            done.set_result(proc)

    @staticmethod
    def stop(proc: subprocess.Popen, timeout: float = 5.0) -> None:
        """SIGTERM ``proc``, SIGKILL it after ``timeout`` s, reap it."""
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def stop_all(self) -> None:
        """Stop every process started, refuse new ones, end the spawner thread."""
        with self._lock:
            self._closed = True
            procs = list(self.procs)
        self._stop_each(procs)
        with self._lock:
            thread, self._thread = self._thread, None
            if thread is not None:
                self._jobs.put(None)
        if thread is not None:
            thread.join()
        with self._lock:  # forked while the first pass ran (a start queued just before the close)
            late = [p for p in self.procs if p not in procs]
        self._stop_each(late)

    def _stop_each(self, procs: list[subprocess.Popen]) -> None:
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in reversed(procs):
            self.stop(proc)


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


def add_scenario_link_faults(link_faults, scenario, rig: str) -> None:
    """Schedule the scenario file's link faults on a board's ``link_faults``; RigError if the rig cannot."""
    from twin.sim.faults import LINK_FAULTS, unsupported_link_fault
    for spec in scenario.faults:
        if spec.kind not in LINK_FAULTS:
            continue
        problem = unsupported_link_fault(spec.kind, getattr(link_faults, "kinds", None), f"rig {rig}")
        if problem:
            raise RigError(f"the scenario's fault at {spec.at}: {problem}")
        link_faults.add(spec)


def is_rig_file(name: str) -> bool:
    """True when ``name`` names a rig file rather than a built-in rig."""
    return name.endswith(".toml") or os.sep in name


@contextlib.asynccontextmanager
async def open_rig(name: str, scenario_ref: str, scenario, *, step_timeout_s: float | None = None,
                   retries: int | None = None):
    """The board of rig ``name`` (built-in or a rig file) for ``scenario`` (loaded from ``scenario_ref``).

    Every board it yields has ``link_faults``: None or an object with
    ``add(spec)`` and ``kinds`` (the link fault kinds it can inject), already
    holding the scenario's link faults. ``step_timeout_s`` and ``retries``
    override a remote board's lockstep reply timeout (emulated: 2 s) and
    retries (2), e.g. for tests that drop frames on purpose.
    """
    if is_rig_file(name):
        from hil_rigs.rigfile import open_rig_file
        async with open_rig_file(name, scenario, step_timeout_s=step_timeout_s, retries=retries) as board:
            yield board
        return
    if name == "sim":
        from twin.sim.faults import SimLinkFaults
        from twin.sim.simboard import SimBoard
        board = SimBoard(scenario, scenario.run.seed, link_faults=SimLinkFaults())
        add_scenario_link_faults(board.link_faults, scenario, name)
        yield board
        return
    if name not in RIG_NAMES:
        raise RigError(f"unknown rig {name!r} (built-in: {', '.join(RIG_NAMES)}; or a rig file .toml)")
    from firmware_bridge.codec import MavlinkCodec
    from firmware_bridge.keys import create_key_file, load_key
    from firmware_bridge.remote_board import RemoteBoard
    from firmware_bridge.transports.faulty import FaultyLink

    work = Path(tempfile.mkdtemp(prefix=f"twin-{name}-"))
    procs = _Processes()
    try:
        key_file = create_key_file(work / "rig.key")
        emu_log = work / "emulator.log"
        argv = _emulator_argv(scenario_ref, scenario, key_file, work)
        rig = _SerialRig(procs, work) if name == "emulated-serial" else _MqttRig(procs, work)
        transport = await asyncio.to_thread(rig.bring_up, argv, emu_log)
        codec = MavlinkCodec(signing=_policy(load_key(key_file), work), link_id=1)
        link = FaultyLink(transport, seed=scenario.run.seed, disconnector=rig)
        board = RemoteBoard(link, codec, rig=name, step_timeout_s=2.0 if step_timeout_s is None else step_timeout_s,
                            retries=2 if retries is None else retries)
        link.now_ns = lambda: board.t_ns
        board.link_faults = link
        add_scenario_link_faults(link, scenario, name)
        yield board
    finally:
        await asyncio.to_thread(procs.stop_all)
        shutil.rmtree(work, ignore_errors=True)


class _SerialRig:
    """socat's pty pair and the emulator on one end; a disconnect kills socat and starts it again."""

    def __init__(self, procs: _Processes, work: Path):
        self.procs, self.work = procs, work
        self.twin_end, self.board_end = work / "twin-tty", work / "board-tty"
        self.socat: subprocess.Popen | None = None

    def bring_up(self, argv: list[str], emu_log: Path):
        from firmware_bridge.transports.serial_link import SerialLink
        self.start_socat()
        with open(emu_log, "wb") as log:
            proc = self.procs.start([*argv, "--serial", str(self.board_end)], stdout=log, stderr=log,
                                    death_signal=_EMULATOR_DEATH_SIGNAL)
        _wait_ready(proc, "the emulator", emu_log)
        return SerialLink(str(self.twin_end))

    def start_socat(self) -> None:
        exe = shutil.which("socat")
        if exe is None:
            raise RigError("emulated-serial needs socat (apt-get install socat)")
        self.socat = self.procs.start([exe, f"pty,raw,echo=0,link={self.twin_end}",
                                       f"pty,raw,echo=0,link={self.board_end}"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not (self.twin_end.exists() and self.board_end.exists()):
            if self.socat.poll() is not None:
                raise RigError(f"socat exited with code {self.socat.returncode} before creating the pty pair")
            if time.monotonic() > deadline:
                raise RigError("socat did not create the pty pair within 10 s")
            time.sleep(0.02)

    def stop_socat(self) -> None:
        if self.socat is not None:
            _Processes.stop(self.socat)
            self.socat = None
        for link in (self.twin_end, self.board_end):  # socat removes them on SIGTERM; make sure
            with contextlib.suppress(FileNotFoundError):
                link.unlink()

    async def unplug(self) -> None:
        """The cable is pulled: the pty pair disappears, both ends see a hang-up."""
        await asyncio.to_thread(self.stop_socat)

    async def replug(self) -> None:
        """A new pty pair under the same names; both ends reopen them by name."""
        await asyncio.to_thread(self.start_socat)


class _MqttRig:
    """A private mosquitto and the emulator behind it; a disconnect stops the broker and starts it again."""

    def __init__(self, procs: _Processes, work: Path):
        self.procs, self.work = procs, work
        self.broker: subprocess.Popen | None = None
        self.cfg = None

    def bring_up(self, argv: list[str], emu_log: Path):
        from firmware_bridge.broker import BrokerUser, write_broker_files
        from firmware_bridge.transports.mqtt_link import MqttLink
        passwords = {"twin": secrets.token_urlsafe(16), "board": secrets.token_urlsafe(16)}
        self.cfg = write_broker_files(self.work / "broker", _free_port(),
                                      [BrokerUser(n, p, n) for n, p in passwords.items()],
                                      persistence_dir=self.work / "broker-store")
        self.start_broker()
        pw_file = self.work / "board.password"
        pw_file.write_text(passwords["board"])
        pw_file.chmod(0o600)
        with open(emu_log, "wb") as log:
            proc = self.procs.start([*argv, "--mqtt", f"{self.cfg.host}:{self.cfg.port}", "--password-file",
                                     str(pw_file)], stdout=log, stderr=log, death_signal=_EMULATOR_DEATH_SIGNAL)
        _wait_ready(proc, "the emulator", emu_log)
        return MqttLink(self.cfg.host, self.cfg.port, sat_id="sat1", role="twin", username="twin",
                        password=passwords["twin"], clean_start=True)

    def start_broker(self) -> None:
        from firmware_bridge.broker import mosquitto_path, wait_until_listening
        try:
            exe = mosquitto_path()
        except Exception as exc:  # mosquitto_path says what to install
            raise RigError(f"emulated-mqtt needs mosquitto: {exc}") from None
        with open(self.work / "mosquitto.log", "ab") as log:
            self.broker = self.procs.start([exe, "-c", str(self.cfg.conf_path)], stdout=log, stderr=log)
        # A restart on the same port may meet the old listener's socket for a moment: wait_until_listening retries.
        problem = wait_until_listening(self.broker, self.cfg.host, self.cfg.port, 15.0)
        if problem is not None:
            raise RigError(f"mosquitto {problem} (see {self.work / 'mosquitto.log'})")

    def stop_broker(self) -> None:
        if self.broker is not None:
            _Processes.stop(self.broker)
            self.broker = None

    async def unplug(self) -> None:
        """The broker goes away (SIGTERM: it saves its store); both clients lose their connection."""
        await asyncio.to_thread(self.stop_broker)

    async def replug(self) -> None:
        """The broker comes back on the same port with the same store; both clients reconnect."""
        await asyncio.to_thread(self.start_broker)
