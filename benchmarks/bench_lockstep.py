"""Lockstep through the real board emulator, beside the raw transport measured in the same run.

The board is ``python -m hil_rigs.emulator`` in its own process, as a rig
starts it: on one end of a socat pty pair, or behind a private mosquitto on
loopback. The twin side is :class:`RemoteBoard` over :class:`SerialLink` or
:class:`MqttLink`, signed; one step is ``step_to(t)`` then ``command(cmd)``,
as the executive does per tick. Baselines, each through the same kind of
link with a separate echo process and the same message sizes (the request a
step sends, the reply a board gives):

* serial: a raw ``os.read``/``os.write`` echo over a socat pty pair;
* MQTT: a QoS 1 publish of the request and the reply published back, by two
  :class:`MqttLink` s (the echo in its own process), through the same broker.

Reported: p50/p99 per step, steps/s (at 1 Hz control, the factor over real
time) and a breakdown of one step's CPU time by part, measured in-process on
the same code (``breakdown``). Machines here are shared: read ratios.

    python -m benchmarks.bench_lockstep [--steps N] [--repeat R] [--quick]
"""
from __future__ import annotations

import asyncio
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

__all__ = ["run_lockstep_benchmarks", "breakdown"]

SERIAL_TARGET = "p50 <= 2x raw; >= 1,000 steps/s"
MQTT_TARGET = ">= 500 steps/s"
_ECHO = """
import os, sys, tty
fd = os.open(sys.argv[1], os.O_RDWR | os.O_NOCTTY)
tty.setraw(fd)
req, rep = int(sys.argv[2]), bytes(int(sys.argv[3]))
print("ready", flush=True)
while True:
    got = 0
    while got < req:
        data = os.read(fd, 65536)
        if not data:
            sys.exit(0)
        got += len(data)
    os.write(fd, rep)
"""
_MQTT_ECHO = """
import asyncio, sys
from firmware_bridge.transports.mqtt_link import MqttLink
async def main(port, pw, size):
    async with MqttLink("127.0.0.1", port, sat_id="raw", role="board", username="board", password=pw) as link:
        print("ready", flush=True)
        reply = bytes(size)
        while True:
            await link.recv()
            await link.send(reply)
asyncio.run(main(int(sys.argv[1]), sys.argv[2], int(sys.argv[3])))
"""


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system) process ``pid`` has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU time per step of each process on the path (twin, board, link), from /proc: robust to a shared machine."""

    def __init__(self, pids: dict[str, int]):
        self.pids = {"twin": os.getpid(), **pids}
        self.start = {name: _cpu_s(pid) for name, pid in self.pids.items()}

    def per_step_us(self, steps: int) -> dict[str, float]:
        return {name: (_cpu_s(pid) - self.start[name]) / steps * 1e6 for name, pid in self.pids.items()}


def _pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


def _wait_line(proc: subprocess.Popen, word: str, what: str, log: Path | None = None) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        if log is not None and word in log.read_text(errors="replace"):
            return
        if log is None:
            line = proc.stdout.readline()
            if word in line:
                return
        time.sleep(0.02)
    raise RuntimeError(f"{what} not ready")


@contextmanager
def _procs():
    started: list[subprocess.Popen] = []
    try:
        yield started
    finally:
        for p in reversed(started):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in reversed(started):
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def _pty_pair(procs: list, tmp: Path, tag: str) -> tuple[str, str]:
    a, b = tmp / f"{tag}-twin", tmp / f"{tag}-board"
    procs.append(subprocess.Popen([shutil.which("socat"), f"pty,raw,echo=0,link={a}", f"pty,raw,echo=0,link={b}"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    deadline = time.monotonic() + 10
    while not (a.exists() and b.exists()) and time.monotonic() < deadline:
        time.sleep(0.02)
    return str(a), str(b)


def _emulator(procs: list, tmp: Path, key_file: Path, where: list[str]) -> None:
    log = tmp / f"emulator-{len(procs)}.log"
    with open(log, "wb") as out:
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "hil_rigs.emulator", "--parent-pid", str(os.getpid()), "--key", str(key_file),
             "--scenario", "node", "--seed", "1", *where], stdout=out, stderr=out, stdin=subprocess.DEVNULL))
    _wait_line(procs[-1], "emulator ready", "the emulator", log)


def _wire_sizes() -> tuple[int, int]:
    """Bytes of one step's request (step request + command) and reply (3 frame messages + step reply), signed."""
    from firmware_bridge.codec import MavlinkCodec
    from firmware_bridge.messages import (
        command_to_message,
        frame_to_messages,
        message_class,
    )
    from firmware_bridge.signing import ReplayTable, SigningClock, SigningPolicy
    from twin.hal import ActuatorCommand, SensorFrame
    codec = MavlinkCodec(signing=SigningPolicy(bytes(32), ReplayTable(), SigningClock()))
    t = 10**9
    req = codec.encode(message_class("SC_STEP_REQUEST")(1, t)) + codec.encode(command_to_message(ActuatorCommand(), 1))
    frame = SensorFrame.empty(t)
    rep = b"".join(codec.encode(m) for m in frame_to_messages(frame)) + codec.encode(
        message_class("SC_STEP_REPLY")(1, t))
    return len(req), len(rep)


async def _steps(remote, n: int, warmup: int) -> list[float]:
    from twin.hal import ActuatorCommand
    cmd, times = ActuatorCommand(), []
    async with remote:
        for k in range(n + warmup):
            t0 = time.perf_counter()
            await remote.step_to(k * 1_000_000_000)
            await remote.command(cmd)
            times.append(time.perf_counter() - t0)
    return times[warmup:]


def _twin_codec(key: bytes):
    from firmware_bridge.codec import MavlinkCodec
    from firmware_bridge.signing import ReplayTable, SigningClock, SigningPolicy
    return MavlinkCodec(signing=SigningPolicy(key, ReplayTable(), SigningClock()), link_id=1)


def serial_round(tmp: Path, key_file: Path, n: int, warmup: int) -> tuple[list[float], list[float], dict]:
    """(raw echo times, lockstep step times) in seconds over fresh socat pairs, and CPU us per step by process."""
    import tty

    from firmware_bridge.keys import load_key
    from firmware_bridge.remote_board import RemoteBoard
    from firmware_bridge.transports.serial_link import SerialLink
    req, rep = _wire_sizes()
    with _procs() as procs:
        twin_end, board_end = _pty_pair(procs, tmp, "raw")
        procs.append(subprocess.Popen([sys.executable, "-c", _ECHO, board_end, str(req), str(rep)],
                                      stdout=subprocess.PIPE, text=True))
        _wait_line(procs[-1], "ready", "the echo")
        fd = os.open(twin_end, os.O_RDWR | os.O_NOCTTY)
        tty.setraw(fd)
        msg, raw = bytes(req), []
        for _ in range(n + warmup):
            t0 = time.perf_counter()
            os.write(fd, msg)
            got = 0
            while got < rep:
                got += len(os.read(fd, 65536))
            raw.append(time.perf_counter() - t0)
        os.close(fd)
    with _procs() as procs:
        twin_end, board_end = _pty_pair(procs, tmp, "lock")
        _emulator(procs, tmp, key_file, ["--serial", board_end])
        remote = RemoteBoard(SerialLink(twin_end), _twin_codec(load_key(key_file)), rig="bench", step_timeout_s=2.0)
        meter = CpuMeter({"board": procs[-1].pid, "socat": procs[0].pid})
        steps = asyncio.run(_steps(remote, n, warmup))
        cpu = meter.per_step_us(n + warmup)
    return raw[warmup:], steps, cpu


async def _mqtt_raw(port: int, password: str, req: int, n: int, warmup: int) -> list[float]:
    from firmware_bridge.transports.mqtt_link import MqttLink
    out, msg = [], bytes(req)
    async with MqttLink("127.0.0.1", port, sat_id="raw", role="twin", username="twin", password=password) as link:
        for _ in range(n + warmup):
            t0 = time.perf_counter()
            await link.send(msg)
            await link.recv()
            out.append(time.perf_counter() - t0)
    return out[warmup:]


def mqtt_round(tmp: Path, key_file: Path, n: int, warmup: int) -> tuple[list[float], list[float], dict]:
    """(raw QoS 1 echo times, lockstep step times) in seconds through one private mosquitto, CPU us per step."""
    from firmware_bridge.keys import load_key
    from firmware_bridge.remote_board import RemoteBoard
    from firmware_bridge.transports.mqtt_link import MqttLink
    from tests.bridge.mqtt_broker import PASSWORDS, MosquittoBroker
    req, rep = _wire_sizes()
    with MosquittoBroker(Path(tempfile.mkdtemp(dir=tmp))) as broker, _procs() as procs:
        procs.append(subprocess.Popen(
            [sys.executable, "-c", _MQTT_ECHO, str(broker.port), PASSWORDS["board"], str(rep)],
            stdout=subprocess.PIPE, text=True))
        _wait_line(procs[-1], "ready", "the MQTT echo")
        raw = asyncio.run(_mqtt_raw(broker.port, PASSWORDS["twin"], req, n, warmup))
        pw = tmp / "board.password"
        pw.write_text(PASSWORDS["board"])
        _emulator(procs, tmp, key_file, ["--mqtt", f"127.0.0.1:{broker.port}", "--password-file", str(pw)])
        link = MqttLink("127.0.0.1", broker.port, sat_id="sat1", role="twin", username="twin",
                        password=PASSWORDS["twin"], clean_start=True)
        meter = CpuMeter({"board": procs[-1].pid, "mosquitto": broker.proc.pid})
        steps = asyncio.run(_steps(RemoteBoard(link, _twin_codec(load_key(key_file)), rig="bench",
                                               step_timeout_s=2.0), n, warmup))
        cpu = meter.per_step_us(n + warmup)
    return raw, steps, cpu


def breakdown(n: int = 2000) -> dict[str, float]:
    """Mean CPU time (us) of each part of one signed lockstep step, run in-process on the same code."""
    from firmware_bridge.codec import MavlinkCodec
    from firmware_bridge.messages import (
        command_to_message,
        frame_to_messages,
        message_class,
        message_to_command,
        messages_to_frame,
    )
    from firmware_bridge.signing import ReplayTable, SigningClock, SigningPolicy
    from twin.hal import ActuatorCommand
    from twin.scenarios import load_scenario
    from twin.sim.simboard import SimBoard

    def policy():
        return SigningPolicy(bytes(range(32)), ReplayTable(), SigningClock())
    twin, board_codec, twin_rx = (MavlinkCodec(signing=policy(), link_id=i) for i in (1, 2, 1))
    request, reply, cmd = message_class("SC_STEP_REQUEST"), message_class("SC_STEP_REPLY"), ActuatorCommand()
    board = SimBoard(load_scenario("node"), 1)
    loop = asyncio.new_event_loop()
    out: dict[str, float] = {}

    def timed(name: str, fn, count: int = n):
        t0 = time.perf_counter_ns()
        results = [fn(k) for k in range(count)]
        out[name] = (time.perf_counter_ns() - t0) / count / 1e3
        return results

    timed("twin: encode step request (signed)", lambda k: twin.encode(request(k, k * 10**9)))
    timed("twin: command_to_message + encode (signed)", lambda k: twin.encode(command_to_message(cmd, k)))
    wire = [twin.encode(request(k, k * 10**9)) + twin.encode(command_to_message(cmd, k)) for k in range(n)]
    msgs = timed("board: decode request + command", lambda k: board_codec.feed(wire[k]))
    timed("board: message_to_command", lambda k: message_to_command(msgs[k][1]))
    frames = timed("board: physics step (SimBoard.step_to)",
                   lambda k: loop.run_until_complete(board.step_to((k + 1) * 10**9)), min(n, 500))
    groups = timed("board: frame_to_messages", lambda k: frame_to_messages(frames[k % len(frames)]))
    replies = timed("board: encode 3 frames + reply (signed)",
                    lambda k: b"".join(board_codec.encode(m) for m in groups[k]) + board_codec.encode(reply(k, 0)))
    decoded = timed("twin: decode reply (4 messages)", lambda k: twin_rx.feed(replies[k]))
    timed("twin: messages_to_frame", lambda k: messages_to_frame(decoded[k][:3]))
    sig = policy()
    timed("  of which: one signature (SHA-256)", lambda k: sig.signature(replies[0][:60]))
    loop.close()
    return out


def _rows(name: str, raw: list[float], steps: list[float], cpu: dict, raw_name: str, target: str) -> list[tuple]:
    p50, p99 = _pct(steps, 0.5) * 1e3, _pct(steps, 0.99) * 1e3
    r50, r99 = _pct(raw, 0.5) * 1e3, _pct(raw, 0.99) * 1e3
    rate, raw_rate = 1.0 / statistics.mean(steps), 1.0 / statistics.mean(raw)
    return [(f"lockstep step, {name}, p50", f"{p50:.3f} ms", f"{raw_name} {r50:.3f} ms", f"{p50 / r50:.1f}x", target),
            (f"lockstep step, {name}, p99", f"{p99:.3f} ms", f"{raw_name} {r99:.3f} ms", f"{p99 / r99:.1f}x", ""),
            (f"lockstep steps/s, {name}", f"{rate:,.0f}/s", f"{raw_name} {raw_rate:,.0f}/s",
             f"{rate:,.0f}x real time at 1 Hz", ""),
            (f"lockstep CPU per step, {name}", " ".join(f"{k} {v:.0f} us" for k, v in cpu.items()),
             "", f"busiest allows {1e6 / max(cpu.values()):,.0f}/s", "")]


def measure(n: int = 2000, repeat: int = 3, mqtt: bool = True) -> dict[str, tuple[list[float], list[float]]]:
    """Per rig, (raw, steps, cpu) of the round whose step p50 is the median of ``repeat`` rounds."""
    from firmware_bridge.keys import create_key_file
    warmup = max(20, n // 20)
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        key_file = create_key_file(tmp / "rig.key")
        rounds = {"serial": [], "mqtt": []}
        for _ in range(repeat):
            rounds["serial"].append(serial_round(tmp, key_file, n, warmup))
            if mqtt:
                rounds["mqtt"].append(mqtt_round(tmp, key_file, n, warmup))
        for name, rs in rounds.items():
            if rs:
                rs.sort(key=lambda r: _pct(r[1], 0.5))
                out[name] = rs[len(rs) // 2]
    return out


def run_lockstep_benchmarks(n: int = 2000, quick: bool = False,
                            repeat: int = 3) -> list[tuple[str, str, str, str, str]]:
    """Rows of (figure, value, baseline, ratio, target) for the report."""
    m = measure(300 if quick else n, 1 if quick else repeat)
    rows = _rows("emulator on a pty", *m["serial"], "raw pty echo (process)", SERIAL_TARGET)
    rows += _rows("emulator via mosquitto", *m["mqtt"], "raw MqttLink QoS 1 echo (process)", MQTT_TARGET)
    parts = breakdown(300 if quick else 2000)
    total = sum(v for k, v in parts.items() if not k.startswith(" "))
    for name, us in parts.items():
        rows.append((f"step CPU {name}", f"{us:.1f} us", f"sum of parts {total:.0f} us",
                     f"{us / total:.0%}" if not name.startswith(" ") else "", ""))
    return rows


if __name__ == "__main__":
    import argparse

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--serial-only", action="store_true")
    args = p.parse_args()
    if args.serial_only:
        m = measure(args.steps, args.repeat, mqtt=False)
        for row in _rows("emulator on a pty", *m["serial"], "raw pty echo (process)", SERIAL_TARGET):
            print(" | ".join(row))
        for k, v in breakdown().items():
            print(f"{k:45s} {v:8.1f} us")
    else:
        for row in run_lockstep_benchmarks(args.steps, args.quick, args.repeat):
            print(" | ".join(row))
