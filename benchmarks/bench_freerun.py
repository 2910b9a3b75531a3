"""A free-running 100 Hz control loop on the wall clock, beside a plain ``asyncio.sleep`` loop in the same run.

Both loops aim at ``t0 + k * 10 ms`` on ``time.monotonic_ns()`` and record,
per tick, how late they woke (negative: early). The baseline sleeps with
``asyncio.sleep(deadline - now)`` as a naive loop would; ours awaits
:meth:`twin.clock.WallClock.wait_until`. The loops take turns, ``repeat``
times, so a shared machine slows both alike; figures are medians over the
turns. Target (issue 4): p99 lateness <= 1 ms and no early wake-ups.

    python -m benchmarks.bench_freerun [--seconds S] [--repeat N]
"""
from __future__ import annotations

import asyncio
import statistics
import time

from twin.clock import WallClock

__all__ = ["run_freerun_benchmarks"]

PERIOD_NS = 10_000_000
TARGET_P99_MS = 1.0


async def _sleep_loop(n: int) -> list[int]:
    t0, out = time.monotonic_ns(), []
    for k in range(1, n + 1):
        deadline = t0 + k * PERIOD_NS
        delay = deadline - time.monotonic_ns()
        if delay > 0:
            await asyncio.sleep(delay / 1e9)
        out.append(time.monotonic_ns() - deadline)
    return out


async def _clock_loop(n: int) -> list[int]:
    clock, out = WallClock(), []
    clock.start(0)
    try:
        for k in range(1, n + 1):
            await clock.wait_until(k * PERIOD_NS)
            out.append(time.monotonic_ns() - clock.wall_deadline_ns(k * PERIOD_NS))
    finally:
        clock.close()
    return out


def _stats(late_ns: list[int]) -> dict[str, float]:
    s = sorted(late_ns)
    pick = lambda q: s[min(len(s) - 1, int(q * len(s)))] / 1e6  # noqa: E731
    return {"p50": pick(0.5), "p99": pick(0.99), "max": s[-1] / 1e6, "early": sum(x < 0 for x in s)}


def measure(seconds: float = 10.0, repeat: int = 3) -> dict[str, dict[str, float]]:
    """Median over ``repeat`` turns of each loop's p50/p99/max lateness (ms) and early wakes (count)."""
    n = int(seconds * 1e9 / PERIOD_NS)
    turns: dict[str, list[dict]] = {"asyncio.sleep": [], "WallClock": []}
    for _ in range(repeat):
        turns["asyncio.sleep"].append(_stats(asyncio.run(_sleep_loop(n))))
        turns["WallClock"].append(_stats(asyncio.run(_clock_loop(n))))
    return {name: {k: statistics.median(t[k] for t in ts) for k in ts[0]} | {"early_total": sum(t["early"] for t in ts)}
            for name, ts in turns.items()}


def run_freerun_benchmarks(repeat: int = 3, quick: bool = False) -> list[tuple[str, str, str, str, str]]:
    """Rows of (figure, value, baseline, ratio, target) for the report."""
    m = measure(2.0 if quick else 10.0, repeat)
    ours, base = m["WallClock"], m["asyncio.sleep"]
    rows = []
    for q in ("p50", "p99", "max"):
        target = f"<= {TARGET_P99_MS:g} ms" if q == "p99" else ""
        ratio = f"{ours[q] / base[q]:.2f}x" if base[q] > 0 else ""
        rows.append((f"100 Hz wall-clock loop lateness {q}", f"{ours[q]:.3f} ms",
                     f"asyncio.sleep loop {base[q]:.3f} ms", ratio, target))
    rows.append(("100 Hz wall-clock loop early wakes", f"{ours['early_total']:.0f}",
                 f"asyncio.sleep loop {base['early_total']:.0f}", "", "0"))
    return rows


if __name__ == "__main__":
    import argparse

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    for name, st in measure(args.seconds, args.repeat).items():
        print(f"{name:14s} p50 {st['p50']:.3f} ms  p99 {st['p99']:.3f} ms  max {st['max']:.3f} ms  "
              f"early {st['early_total']:.0f}")
