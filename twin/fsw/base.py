"""Building blocks shared by the flight-software tasks: the task shape, debouncing, the event log.

A note on the per-tick code of the tasks: on CPython 3.11 every call of the
builtins ``min()`` and ``max()`` parses a format string and costs many times a
comparison, so that code writes them out. ``max(a, b)`` becomes
``b if b > a else a`` (the builtin's own rule: the first argument unless the
second is strictly greater, so ties, signed zeros and NaN give the same value),
and a test such as ``max(readings) >= limit`` over a few monitored readings
(never NaN) is a plain loop.
"""
from __future__ import annotations

from collections import deque
from typing import Iterator, NamedTuple

__all__ = ["Task", "Debounce", "FdirEvent", "EventLog"]


class Task:
    """A flight-software task as the executive runs it.

    ``name`` and ``rate_hz`` are what the executive schedules by; it calls
    :meth:`step` when the task is due and :meth:`reset` after the task raised.
    Subclasses implement ``_step(t_ns)`` and ``_reset(t_ns)``; one that needs
    the time since its previous step asks :meth:`elapsed_s`. ``t_attempt_ns`` is
    the time of the last step started, kept across resets, so the flight
    software can tell which task failed this tick and the watchdog which task
    stopped running.
    """

    def __init__(self, name: str, rate_hz: float):
        self.name = name
        self.rate_hz = float(rate_hz)
        self.period_s = 1.0 / self.rate_hz
        self.t_attempt_ns = -1
        self._t_prev_ns: int | None = None

    def reset(self, t_ns: int) -> None:
        """Back to the task's initial state (after a fault, or at boot)."""
        self._t_prev_ns = None
        self._reset(t_ns)

    def step(self, t_ns: int) -> None:
        """Run one cycle at time ``t_ns``."""
        self.t_attempt_ns = t_ns
        self._step(t_ns)

    def elapsed_s(self, t_ns: int) -> float:
        """Seconds since the previous call (the nominal period on the first call after a reset)."""
        prev, self._t_prev_ns = self._t_prev_ns, t_ns
        return (t_ns - prev) * 1e-9 if prev is not None and t_ns > prev else self.period_s

    def _reset(self, t_ns: int) -> None:
        raise NotImplementedError

    def _step(self, t_ns: int) -> None:
        raise NotImplementedError


class Debounce:
    """A latched condition: it sets after ``n_set`` samples true in a row, clears after ``n_clear`` false in a row.

    Skipping :meth:`update` on a sample holds both the state and the count
    (what a task does while its input is unknown).
    """

    __slots__ = ("n_set", "n_clear", "active", "count")

    def __init__(self, n_set: int, n_clear: int = 1):
        self.n_set = n_set
        self.n_clear = n_clear
        self.active = False
        self.count = 0

    def update(self, condition: bool) -> bool:
        """Feed one sample; True when the latched state changed on it."""
        if condition == self.active:
            self.count = 0
            return False
        self.count += 1
        if self.count >= (self.n_set if condition else self.n_clear):
            self.active = condition
            self.count = 0
            return True
        return False

    def clear(self) -> None:
        self.active = False
        self.count = 0


class FdirEvent(NamedTuple):
    """One FDIR action: when (seconds of mission time), what was done, and why."""

    t_s: float
    what: str
    why: str


class EventLog:
    """The flight software's record of FDIR actions.

    ``count`` is cumulative and never decreases; the log keeps the last
    ``maxlen`` entries. Iterating yields :class:`FdirEvent` tuples, oldest first.
    """

    def __init__(self, maxlen: int = 10_000):
        self._entries: deque[FdirEvent] = deque(maxlen=maxlen)
        self.count = 0

    def log(self, t_ns: int, what: str, why: str) -> None:
        self._entries.append(FdirEvent(t_ns * 1e-9, what, why))
        self.count += 1

    def __iter__(self) -> Iterator[FdirEvent]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def find(self, text: str) -> list[FdirEvent]:
        """Entries whose ``what`` contains ``text`` (for tests and summaries)."""
        return [e for e in self._entries if text in e.what]
