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

The wall and paced clocks never return before the target and aim to return
within a fraction of a millisecond after it. Stock asyncio cannot: its
selector timeout is rounded up to whole milliseconds (so a 100 Hz loop is
~1 ms late on every tick), and uvloop fires timers up to ~1 ms early. On
Linux they arm a ``timerfd`` (CLOCK_MONOTONIC, absolute deadline, the same
clock as ``time.monotonic_ns``) watched by the event loop, whose expiry the
kernel never signals early; elsewhere they sleep until ~2 ms before the
target and then yield to the loop until it has passed.
"""
from __future__ import annotations

import asyncio
import ctypes
import os
import sys
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
        """Return once scenario time ``t_ns`` is reached (never before), with how late (wall ns) that is."""
        raise NotImplementedError

    def close(self) -> None:
        """Release what the clock holds (a timer fd); idempotent, and the clock stays usable."""


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
        self._timer: _WallTimer | None = None

    def start(self, t_ns: int = 0) -> None:
        super().start(t_ns)
        self._wall0 = time.monotonic_ns()
        self._t0 = t_ns

    def wall_deadline_ns(self, t_ns: int) -> int:
        """The ``time.monotonic_ns()`` instant at which scenario time ``t_ns`` is reached."""
        return self._wall0 + int((t_ns - self._t0) / self.speed)

    async def wait_until(self, t_ns: int) -> int:
        deadline = self.wall_deadline_ns(t_ns)
        now = time.monotonic_ns()
        if deadline > now:
            timer = self._timer
            if timer is None or timer.busy:
                timer = _WallTimer()
                if self._timer is None:
                    self._timer = timer
            try:
                now = await timer.sleep_until(deadline)
            finally:
                if timer is not self._timer:
                    timer.close()
        self._now_ns = t_ns
        return max(0, now - deadline)

    def close(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.close()


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


class _TimerSpec(ctypes.Structure):
    _fields_ = [("interval_s", ctypes.c_long), ("interval_ns", ctypes.c_long),
                ("value_s", ctypes.c_long), ("value_ns", ctypes.c_long)]


_CLOCK_MONOTONIC, _TFD_TIMER_ABSTIME = 1, 1
_COARSE_NS = 2_000_000   # fallback: sleep on asyncio until this far before the deadline, then yield


def _libc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.timerfd_create.argtypes = (ctypes.c_int, ctypes.c_int)
        libc.timerfd_settime.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.POINTER(_TimerSpec), ctypes.c_void_p)
        return libc
    except (OSError, AttributeError):
        return None


_LIBC = _libc()


class _WallTimer:
    """Sleep until a ``time.monotonic_ns()`` instant: a timerfd on the running loop, or sleep-then-yield."""

    def __init__(self) -> None:
        self.busy = False
        self._fd = -1
        if _LIBC is not None:
            self._fd = _LIBC.timerfd_create(_CLOCK_MONOTONIC, os.O_NONBLOCK | os.O_CLOEXEC)

    async def sleep_until(self, deadline_ns: int) -> int:
        """Return ``time.monotonic_ns()`` once it is >= ``deadline_ns``."""
        self.busy = True
        try:
            if self._fd >= 0 and self._arm(deadline_ns):
                await self._wait_fd()
            now = time.monotonic_ns()
            while now < deadline_ns:  # the fallback, and a guard should the timer be refused
                ahead = deadline_ns - now
                await asyncio.sleep((ahead - _COARSE_NS) / 1e9 if ahead > _COARSE_NS else 0)
                now = time.monotonic_ns()
            return now
        finally:
            self.busy = False

    def _arm(self, deadline_ns: int) -> bool:
        spec = _TimerSpec(0, 0, *divmod(deadline_ns, 1_000_000_000))
        return _LIBC.timerfd_settime(self._fd, _TFD_TIMER_ABSTIME, ctypes.byref(spec), None) == 0

    async def _wait_fd(self) -> None:
        loop, fd = asyncio.get_running_loop(), self._fd
        fired = loop.create_future()
        loop.add_reader(fd, lambda: fired.done() or fired.set_result(None))
        try:
            await fired
        finally:
            loop.remove_reader(fd)
            try:
                os.read(fd, 8)  # consume the expiry count
            except BlockingIOError:  # cancelled before it fired: disarm
                _LIBC.timerfd_settime(fd, 0, ctypes.byref(_TimerSpec()), None)

    def close(self) -> None:
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)

    def __del__(self) -> None:
        self.close()
