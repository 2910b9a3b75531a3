"""Watchdog service: the board's watchdog is kicked only while every task is healthy and alive.

The last task of each tick. It kicks (increments ``kick``, modulo 256) when
every entry of the executive's ``health`` map is True and every task has
started a step within two of its periods (a task the executive disabled, or one
that stopped being scheduled, starves the watchdog and the board resets).
Health of tasks that run after it in a tick is the previous tick's.
"""
from __future__ import annotations

import math

from .base import Task

__all__ = ["WatchdogService"]


class WatchdogService(Task):
    """Outputs ``kick`` (0..255) and ``ok`` (kicked on its last step)."""

    def __init__(self, health: dict[str, bool], tasks: list[Task], rate_hz: float = 1.0):
        super().__init__("watchdog", rate_hz)
        self.health = health
        self._healthy = health.values()  # a live view
        self.tasks = tasks
        self.kick = 0
        self._reset(0)

    def _reset(self, t_ns: int) -> None:
        # The kick counter is not reset: the board sees a kick as a change of value.
        self.ok = False
        # Whole nanoseconds: for the integer times it is compared with, the same test as the exact limit.
        self._quickest_limit_ns = math.floor(2e9 * min((task.period_s for task in self.tasks), default=self.period_s))
        self._oldest_attempt_ns: int | float = -math.inf  # none read yet

    def _step(self, t_ns: int) -> None:
        ok = all(self._healthy)
        # Attempt times only grow between resets: while the oldest one read last is recent enough,
        # every task's still is, and the tasks need not be read again.
        if ok and t_ns - self._oldest_attempt_ns > self._quickest_limit_ns:
            oldest = self.t_attempt_ns
            for task in self.tasks:  # min() written out (see twin.fsw.base)
                if task.t_attempt_ns < oldest:
                    oldest = task.t_attempt_ns
            self._oldest_attempt_ns = oldest
            if t_ns - oldest > self._quickest_limit_ns:
                for task in self.tasks:
                    if task is not self and t_ns - task.t_attempt_ns > 2e9 * task.period_s:
                        ok = False
                        break
        if ok:
            self.kick = (self.kick + 1) & 0xFF
        self.ok = ok
