"""Lockstep round trips through RemoteBoard, beside the raw transport measured in the same run.

* serial: step request -> three frame messages + reply, signed, over a socat
  pty pair, against a raw echo of a same-sized message over the same pair;
* MQTT: the same through a private mosquitto on loopback, against a raw QoS 1
  publish/echo through the same broker.
Reports p50/p99 per step and steps/s (at 1 Hz control, steps/s is the factor
over real time).
"""
from __future__ import annotations

import asyncio
import os
import shutil
import signal
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path

__all__ = ["run_lockstep_benchmarks"]


def _pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def _pty_pair(tmp: Path):
    a, b = tmp / "a", tmp / "b"
    proc = subprocess.Popen([shutil.which("socat"), f"pty,raw,echo=0,link={a}", f"pty,raw,echo=0,link={b}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not (a.exists() and b.exists()) and time.monotonic() < deadline:
        time.sleep(0.02)
    return proc, str(a), str(b)


def _raw_echo(a: str, b: str, n: int, size: int) -> list[float]:
    import termios
    import tty
    fa, fb = os.open(a, os.O_RDWR | os.O_NOCTTY), os.open(b, os.O_RDWR | os.O_NOCTTY)
    for fd in (fa, fb):
        tty.setraw(fd)
        termios.tcflush(fd, termios.TCIOFLUSH)
    stop = False

    def echo():
        while not stop:
            data = os.read(fb, 65536)
            os.write(fb, data)

    th = threading.Thread(target=echo, daemon=True)
    th.start()
    msg = b"x" * size
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        os.write(fa, msg)
        got = 0
        while got < size:
            got += len(os.read(fa, 65536))
        times.append(time.perf_counter() - t0)
    stop = True
    os.write(fa, b"!")
    th.join(timeout=1)
    os.close(fa)
    os.close(fb)
    return times


async def _remote_steps(make_links, n: int, tmp: Path) -> list[float]:
    from firmware_bridge.codec import MavlinkCodec
    from firmware_bridge.keys import create_key_file, load_key
    from firmware_bridge.remote_board import RemoteBoard
    from firmware_bridge.signing import ReplayTable, SigningClock, SigningPolicy
    from hil_rigs.board_server import BoardServer
    from twin.hal import ActuatorCommand
    from twin.scenarios import load_scenario
    from twin.sim.simboard import SimBoard

    key = load_key(create_key_file(tmp / f"k{time.monotonic_ns()}"))

    def policy(side):
        return SigningPolicy(key, ReplayTable(), SigningClock())

    twin_link, board_link = make_links()
    server = BoardServer(SimBoard(load_scenario("node"), 1), board_link, MavlinkCodec(signing=policy("b"), link_id=2))
    remote = RemoteBoard(twin_link, MavlinkCodec(signing=policy("t"), link_id=1), rig="bench", step_timeout_s=2.0)
    times = []
    async with board_link:
        task = asyncio.create_task(server.serve())
        async with remote:
            cmd = ActuatorCommand()
            for k in range(n + 20):
                t0 = time.perf_counter()
                await remote.step_to(k * 1_000_000_000)
                await remote.command(cmd)
                if k >= 20:
                    times.append(time.perf_counter() - t0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return times


def _rows(name, steps, raw, raw_name, target):
    p50, p99 = _pct(steps, 0.5) * 1e3, _pct(steps, 0.99) * 1e3
    r50, r99 = _pct(raw, 0.5) * 1e3, _pct(raw, 0.99) * 1e3
    rate = 1.0 / statistics.mean(steps)
    return [(f"lockstep step, {name}, p50", f"{p50:.3f} ms", f"{raw_name} {r50:.3f} ms", f"{p50 / r50:.1f}x", ""),
            (f"lockstep step, {name}, p99", f"{p99:.3f} ms", f"{raw_name} {r99:.3f} ms", f"{p99 / r99:.1f}x", ""),
            (f"lockstep steps/s, {name}", f"{rate:,.0f}/s", f"raw round trips {1 / statistics.mean(raw):,.0f}/s",
             f"{rate * 1:.0f}x real time at 1 Hz", target)]


def run_lockstep_benchmarks(n: int = 2000, quick: bool = False) -> list[tuple[str, str, str, str, str]]:
    from firmware_bridge.transports.serial_link import SerialLink
    n = 300 if quick else n
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        proc, a, b = _pty_pair(tmp)
        try:
            raw = _raw_echo(a, b, n, 200)  # a step reply (3 signed frames + reply) is ~200 bytes
            steps = asyncio.run(_remote_steps(lambda: (SerialLink(a), SerialLink(b)), n, tmp))
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=5)
        rows += _rows("serial (pty)", steps, raw, "raw pty echo", ">= 1,000/s")
        try:
            from firmware_bridge.transports.mqtt_link import MqttLink
            from tests.bridge.mqtt_broker import PASSWORDS, MosquittoBroker
        except ImportError as exc:  # run from the repo root
            rows.append(("lockstep, MQTT", "not run", str(exc), "", ""))
            return rows
        with MosquittoBroker(tmp / "mq") as broker:
            def links():
                return (MqttLink("127.0.0.1", broker.port, sat_id="b", role="twin", username="twin",
                                 password=PASSWORDS["twin"], clean_start=True),
                        MqttLink("127.0.0.1", broker.port, sat_id="b", role="board", username="board",
                                 password=PASSWORDS["board"], clean_start=True))
            steps = asyncio.run(_remote_steps(links, n, tmp))
        rows += _rows("MQTT (mosquitto)", steps, raw, "raw pty echo", ">= 500/s")
    return rows
