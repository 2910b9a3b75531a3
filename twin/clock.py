"""One clock for physics and flight software, in integer nanoseconds.

Three ways to run it (DESIGN.md rule 2):

* :class:`VirtualClock` -- as fast as possible. ``wait_until`` returns at once
  without touching the event loop, so a lockstep run pays no event-loop round
  trip per tick.
* :class:`PacedClock` -- virtual time at ``speed`` times wall time
  (``speed=1`` is real time against a lockstep board).
* :class:`WallClock` -- the wall clock (free-running physical boards).

``wait_until(t_ns)`` returns how late, in wall nanoseconds, the caller is for
``t_ns`` (0 for the virtual clock); the executive counts overruns from it.
"""
from __future__ import annotations

import asyncio
import time

__all__ = ["Clock", "VirtualClock", "PacedClock", "WallClock", "make_clock"]


class Clock:
    """Base class: scenario time ``now_ns`` since the run's epoch."""

    #: True when ``wait_until`` never suspends (the executive then yields to the
    #: event loop itself, every so often).
    virtual: bool = False

    def __init__(self) -> None:
        self._now_ns = 0

    def now_ns(self) -> int:
        return self._now_ns

    def start(self, t_ns: int = 0) -> None:
        """Anchor the clock at scenario time ``t_ns`` (and wall time now)."""
        self._now_ns = t_ns

    async def wait_until(self, t_ns: int) -> int:
        raise NotImplementedError


class VirtualClock(Clock):
    """As fast as possible: time jumps to each requested instant."""

    virtual = True

    async def wait_until(self, t_ns: int) -> int:
        self._now_ns = t_ns
        return 0


class PacedClock(Clock):
    """Virtual time running at ``speed`` x wall time (1.0 = real time)."""

    def __init__(self, speed: float):
        if not speed > 0:
            raise ValueError(f"pace must be > 0, got {speed!r}")
        super().__init__()
        self.speed = speed
        self._wall0 = time.monotonic_ns()
        self._t0 = 0

    def start(self, t_ns: int = 0) -> None:
        super().start(t_ns)
        self._wall0 = time.monotonic_ns()
        self._t0 = t_ns

    def _wall_deadline(self, t_ns: int) -> int:
        return self._wall0 + int((t_ns - self._t0) / self.speed)

    async def wait_until(self, t_ns: int) -> int:
        deadline = self._wall_deadline(t_ns)
        now = time.monotonic_ns()
        if deadline > now:
            # asyncio rounds timeouts up; sleeping the bulk and spinning the
            # last millisecond would be tighter, but costs a core: not here.
            await asyncio.sleep((deadline - now) / 1e9)
            now = time.monotonic_ns()
        self._now_ns = t_ns
        return max(0, now - deadline)


class WallClock(PacedClock):
    """The wall clock: scenario time advances exactly with real time."""

    def __init__(self) -> None:
        super().__init__(1.0)


def make_clock(pace: float | None, realtime: bool = False) -> Clock:
    """The clock for a run: wall clock if ``realtime``, paced if ``pace``, else virtual."""
    if realtime:
        return WallClock()
    if pace:
        return PacedClock(pace)
    return VirtualClock()
