"""Supervised asyncio tasks: strong references, bounded restarts, clean shutdown.

``async with Supervisor() as sup: sup.start("progress", make_coro)`` keeps a
strong reference to every task, restarts a task whose coroutine raised (up to
``max_restarts`` times, then leaves it visibly failed in ``failures``), and on
exit cancels and awaits every task it started. A task that returns normally
is done and not restarted.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

__all__ = ["Supervisor", "TaskRecord"]

log = logging.getLogger(__name__)


@dataclass
class TaskRecord:
    name: str
    factory: Callable[[], Awaitable[None]]
    restarts: int = 0
    errors: list[str] = field(default_factory=list)
    failed: bool = False
    task: asyncio.Task | None = None


class Supervisor:
    def __init__(self, max_restarts: int = 3):
        self.max_restarts = max_restarts
        self.records: dict[str, TaskRecord] = {}
        self._closing = False

    async def __aenter__(self) -> "Supervisor":
        self._closing = False
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    def start(self, name: str, factory: Callable[[], Awaitable[None]]) -> TaskRecord:
        """Start ``factory()`` as a supervised task called ``name``."""
        if name in self.records and not self.records[name].failed and self.records[name].task \
                and not self.records[name].task.done():
            raise ValueError(f"a task named {name!r} is already running")
        rec = TaskRecord(name, factory)
        self.records[name] = rec
        self._spawn(rec)
        return rec

    def _spawn(self, rec: TaskRecord) -> None:
        rec.task = asyncio.get_running_loop().create_task(rec.factory(), name=rec.name)
        rec.task.add_done_callback(lambda t, rec=rec: self._on_done(rec, t))

    def _on_done(self, rec: TaskRecord, task: asyncio.Task) -> None:
        if task.cancelled() or self._closing:
            return
        exc = task.exception()
        if exc is None:
            return
        rec.errors.append(f"{type(exc).__name__}: {exc}")
        if rec.restarts < self.max_restarts:
            rec.restarts += 1
            log.warning("task %s failed (%s); restart %d/%d", rec.name, exc, rec.restarts, self.max_restarts)
            self._spawn(rec)
        else:
            rec.failed = True
            log.error("task %s failed %d times, giving up: %s", rec.name, rec.restarts + 1, exc)

    @property
    def failures(self) -> dict[str, list[str]]:
        """Tasks that failed for good, with their errors."""
        return {n: r.errors for n, r in self.records.items() if r.failed}

    async def close(self) -> None:
        """Cancel and await every task (idempotent)."""
        self._closing = True
        tasks = [r.task for r in self.records.values() if r.task is not None and not r.task.done()]
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
