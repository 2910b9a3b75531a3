"""Serial round trips over real ptys, each beside a raw pty echo measured in the same run.

* ``1 link``: a ``SerialLink`` on the pty's slave end sends 64 bytes and waits
  for them back from an echo thread on the master end (the board's side of the
  UART, as an emulated board sits on a pty). Baseline: the same echo thread,
  with the client a plain blocking ``os.write``/``os.read`` loop on the slave.
* ``asyncio floor``: the 1-link round trip with no transport at all -- a bare
  ``loop.add_reader`` plus ``os.write`` on the slave -- to show how much of the
  ratio is the event loop's own cost (informational, no target).
* ``2 links``: both ends are ``SerialLink``s (client and echoing board), each on
  its own pty, the two masters joined by a relay thread (what ``socat`` does).
  Baseline: the same relay, with raw blocking loops at both ends.

Figures are medians over ``repeat`` runs of p50 and p99; read the ratios, not
the absolute times (machines here are shared). Target: within 2x of raw.
"""
from __future__ import annotations

import asyncio
import os
import select
import statistics
import sys
import threading
import time
import tty
from contextlib import contextmanager
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from firmware_bridge.transports.serial_link import SerialLink  # noqa: E402

__all__ = ["run_serial_benchmarks"]

PAYLOAD = bytes(range(64))
TARGET_RATIO = 2.0


def _pump(routes: dict[int, int], stop_r: int) -> None:
    """Copy what each master fd reads to its route (itself for an echo) until ``stop_r`` is readable."""
    poller = select.poll()
    for fd in (*routes, stop_r):
        poller.register(fd, select.POLLIN)
    while True:
        for fd, _ in poller.poll():
            if fd == stop_r:
                return
            data = os.read(fd, 65536)
            view = memoryview(data)
            while view:
                view = view[os.write(routes[fd], view):]


@contextmanager
def _ptys(count: int, *, relay: bool):
    """``count`` raw pty pairs and a pump thread (an echo on each master, or a relay joining two)."""
    pairs = [os.openpty() for _ in range(count)]
    for _, slave in pairs:
        tty.setraw(slave)
    masters = [m for m, _ in pairs]
    routes = {masters[0]: masters[1], masters[1]: masters[0]} if relay else {m: m for m in masters}
    stop_r, stop_w = os.pipe()
    pump = threading.Thread(target=_pump, args=(routes, stop_r), name="pty pump", daemon=True)
    pump.start()
    try:
        yield [os.ttyname(s) for _, s in pairs], [s for _, s in pairs]
    finally:
        os.write(stop_w, b"x")
        pump.join()
        for fd in (stop_r, stop_w, *masters, *(s for _, s in pairs)):
            os.close(fd)


def _percentiles(samples_ns: list[int]) -> tuple[float, float]:
    q = statistics.quantiles(samples_ns, n=100, method="inclusive")
    return q[49] / 1000, q[98] / 1000


def _raw_client(fd: int, n: int) -> list[int]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        os.write(fd, PAYLOAD)
        got = 0
        while got < len(PAYLOAD):
            got += len(os.read(fd, 4096))
        out.append(time.perf_counter_ns() - t0)
    return out


def _raw_echo(fd: int, n: int) -> None:
    for _ in range(n):
        got = bytearray()
        while len(got) < len(PAYLOAD):
            got += os.read(fd, 4096)
        os.write(fd, got)


async def _link_client(link: SerialLink, n: int) -> list[int]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        await link.send(PAYLOAD)
        got = 0
        while got < len(PAYLOAD):
            got += len(await link.recv())
        out.append(time.perf_counter_ns() - t0)
    return out


async def _link_echo(link: SerialLink) -> None:
    while True:
        await link.send(await link.recv())


def _one_link(n: int) -> list[int]:
    with _ptys(1, relay=False) as (names, _):
        async def main():
            async with SerialLink(names[0]) as link:
                return await _link_client(link, n)
        return asyncio.run(main())


def _one_floor(n: int) -> list[int]:
    with _ptys(1, relay=False) as (_, slaves):
        fd = slaves[0]
        os.set_blocking(fd, False)

        async def main():
            loop, ready, got, out = asyncio.get_running_loop(), asyncio.Event(), bytearray(), []

            def readable():
                got.extend(os.read(fd, 4096))
                ready.set()
            loop.add_reader(fd, readable)
            try:
                for _ in range(n):
                    t0 = time.perf_counter_ns()
                    os.write(fd, PAYLOAD)
                    while len(got) < len(PAYLOAD):
                        ready.clear()
                        await ready.wait()
                    got.clear()
                    out.append(time.perf_counter_ns() - t0)
            finally:
                loop.remove_reader(fd)
            return out
        samples = asyncio.run(main())
        os.set_blocking(fd, True)
        return samples


def _one_raw(n: int) -> list[int]:
    with _ptys(1, relay=False) as (_, slaves):
        return _raw_client(slaves[0], n)


def _two_links(n: int) -> list[int]:
    with _ptys(2, relay=True) as (names, _):
        async def main():
            async with SerialLink(names[0]) as client, SerialLink(names[1]) as board:
                echo = asyncio.create_task(_link_echo(board), name="bench echo")
                try:
                    return await _link_client(client, n)
                finally:
                    echo.cancel()
                    await asyncio.gather(echo, return_exceptions=True)
        return asyncio.run(main())


def _two_raw(n: int) -> list[int]:
    with _ptys(2, relay=True) as (_, slaves):
        echo = threading.Thread(target=_raw_echo, args=(slaves[1], n), name="raw echo", daemon=True)
        echo.start()
        samples = _raw_client(slaves[0], n)
        echo.join()
        return samples


def _measure(fns: dict, n: int, warmup: int, repeat: int) -> dict[str, tuple[float, float]]:
    """Median p50 and p99 over ``repeat`` rounds; each round runs every variant back to back (same load)."""
    rounds = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            rounds[name].append(_percentiles(fn(n + warmup)[warmup:]))
    return {name: (statistics.median(r[0] for r in rs), statistics.median(r[1] for r in rs))
            for name, rs in rounds.items()}


def run_serial_benchmarks(repeat: int = 3, quick: bool = False) -> list[tuple[str, str, str, str, str]]:
    """Rows of (figure, value, baseline measured in the same run, ratio, target)."""
    n, warmup = (300, 50) if quick else (3000, 200)
    one = _measure({"raw": _one_raw, "floor": _one_floor, "link": _one_link}, n, warmup, repeat)
    two = _measure({"raw": _two_raw, "link": _two_links}, n, warmup, repeat)
    rows = []
    for label, m, key, base, target in (
            ("SerialLink <-> pty echo", one, "link", "raw os.read/os.write, same pty", f"<= {TARGET_RATIO:g}x raw"),
            ("asyncio floor (no transport)", one, "floor", "raw os.read/os.write, same pty", "(context)"),
            ("2 SerialLinks via pty relay", two, "link", "raw loops, same relay", f"<= {TARGET_RATIO:g}x raw")):
        for i, q in enumerate(("p50", "p99")):
            value, ref = m[key][i], m["raw"][i]
            rows.append((f"serial rtt {q}, 64 B, {label}", f"{value:.0f} us", f"{base} {ref:.0f} us",
                         f"{value / ref:.2f}x", target))
    return rows


if __name__ == "__main__":
    for row in run_serial_benchmarks(quick="--quick" in sys.argv):
        print("  ".join(row))
