"""MQTT link benchmark: a QoS 1 request/response through a real mosquitto on loopback.

The twin's :class:`MqttLink` sends a 64-byte frame on ``cmd``; a board link in
the same process echoes it on ``tlm``; one round trip is four loopback hops
through the broker plus the two PUBACKs that ``send`` waits for. Baselines,
measured in the same run:

* a raw TCP echo on loopback (TCP_NODELAY, echo server in another process, as
  the broker is): the floor of one request/response between two processes;
* the same MQTT round trip with TCP_NODELAY off on the links and the broker:
  what Nagle plus delayed ACKs cost (fewer samples: each is tens of ms);
* the same round trip with the broker's store on disk instead of tmpfs:
  mosquitto fsyncs its store after every change with the shipped settings.

Machines here are shared: read the ratios, not the absolute times. Alone:
``python -m benchmarks.bench_mqtt [--quick]`` from the repository root.
"""
from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from firmware_bridge.transports.mqtt_link import MqttLink
from tests.bridge.mqtt_broker import PASSWORDS, MosquittoBroker

__all__ = ["run_mqtt_benchmarks"]

TARGET_P50_MS = 1.5
PAYLOAD = bytes(range(64))          # about one MAVLink 2 sensor frame
_ECHO_SERVER = """
import socket, sys
srv = socket.create_server(("127.0.0.1", 0))
print(srv.getsockname()[1], flush=True)
conn, _ = srv.accept()
conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
while data := conn.recv(65536):
    conn.sendall(data)
"""


def _pct(samples: list[float], q: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(q * len(s)))]


async def _mqtt_rtts(port: int, n: int, *, tcp_nodelay: bool = True) -> list[float]:
    def make(role: str) -> MqttLink:
        return MqttLink("127.0.0.1", port, sat_id="bench", role=role, username=role, password=PASSWORDS[role],
                        tcp_nodelay=tcp_nodelay, send_timeout=30.0)
    async with make("board") as board, make("twin") as twin:
        async def echo():
            while True:
                await board.send(await board.recv())
        echoing = asyncio.create_task(echo())
        try:
            samples = []
            for i in range(n + n // 10 + 5):                 # the first tenth warms up
                t0 = time.perf_counter()
                await twin.send(PAYLOAD)
                await twin.recv()
                samples.append(time.perf_counter() - t0)
            return samples[n // 10 + 5:]
        finally:
            echoing.cancel()
            await asyncio.gather(echoing, return_exceptions=True)


def _broker_rtts(tmp: str, n: int, **broker_kw) -> list[float]:
    tcp_nodelay = broker_kw.get("tcp_nodelay", True)
    with MosquittoBroker(tempfile.mkdtemp(dir=tmp), **broker_kw) as broker:
        return asyncio.run(_mqtt_rtts(broker.port, n, tcp_nodelay=tcp_nodelay))


async def _tcp_echo_rtts(port: int, n: int) -> list[float]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    request = bytes(8) + PAYLOAD                           # the same bytes an MQTT payload carries
    samples = []
    for _ in range(n + n // 10 + 5):
        t0 = time.perf_counter()
        writer.write(request)
        await reader.readexactly(len(request))
        samples.append(time.perf_counter() - t0)
    writer.close()
    await writer.wait_closed()
    return samples[n // 10 + 5:]


def _raw_echo_rtts(n: int) -> list[float]:
    server = subprocess.Popen([sys.executable, "-c", _ECHO_SERVER], stdout=subprocess.PIPE)
    try:
        port = int(server.stdout.readline())
        return asyncio.run(_tcp_echo_rtts(port, n))
    finally:
        server.kill()
        server.wait()
        server.stdout.close()


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3f} ms"


def run_mqtt_benchmarks(repeat: int = 1, quick: bool = False) -> list[tuple[str, str, str, str, str]]:
    """Rows of (figure, value, baseline measured in the same run, ratio, target)."""
    n = (500 if quick else 2000) * max(1, repeat)
    n_slow = 20 if quick else 60
    with tempfile.TemporaryDirectory(prefix="bench_mqtt-") as tmp:
        echo = _raw_echo_rtts(n)
        mqtt = _broker_rtts(tmp, n)
        nagle = _broker_rtts(tmp, n_slow, tcp_nodelay=False)
        disk = _broker_rtts(tmp, n_slow * 5, persistence_dir=Path(tmp) / "disk-store")
    rows = []
    for q, name in ((0.5, "p50"), (0.99, "p99")):
        value, base = _pct(mqtt, q), _pct(echo, q)
        rows.append((f"mqtt qos1 round trip {name} (vs raw TCP echo)", _ms(value), _ms(base), f"{value / base:.1f}x",
                     f"<= {TARGET_P50_MS} ms" if name == "p50" else ""))
    for label, samples in (("TCP_NODELAY off", nagle), ("store on disk (fsync)", disk)):
        value, base = _pct(samples, 0.5), _pct(mqtt, 0.5)
        rows.append((f"mqtt qos1 round trip p50, {label} (vs shipped)", _ms(value), _ms(base),
                     f"{value / base:.1f}x", "(why the shipped settings)"))
    return rows


if __name__ == "__main__":
    for row in run_mqtt_benchmarks(quick="--quick" in sys.argv):
        print("  ".join(row))
