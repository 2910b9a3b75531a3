"""The executive: rate groups of flight-software tasks on one clock.

Every tick (``period_ns``, 1 s by default) the executive

1. waits for the tick's time on the clock (returns at once on a virtual clock),
2. asks the board for the frame at that time (``Board.step_to``),
3. hands the frame to the flight software and runs, in their fixed order, the
   tasks due this tick (a task of rate r runs every ``1/(r*period)`` ticks),
   each supervised: an exception is counted and reported, the task's
   ``health`` goes False (so the watchdog is not serviced), it is restarted
   with ``reset`` up to ``max_restarts`` times and then disabled; the other
   tasks run on,
4. sends the merged command to the board, quantized as the wire carries it,
5. records frame, command and housekeeping.

A board that fails a step (:class:`~twin.hal.BoardError`) costs a counted
board error and a stale frame, never the loop. On a virtual clock nothing in a
tick suspends, so the executive yields to the event loop itself about every
``yield_every_s`` of wall time (progress, Ctrl-C, other tasks), not per tick.

Task timing (:class:`TaskStats`) counts every call and fault; on a virtual
clock it times the tasks of one tick in ``time_every`` (16 by default: at
~1 us a task, timing every call was a tenth of a fast run), so ``mean_us`` and
``max_ns`` are over the timed calls (``timed``). On a paced or wall clock,
where lateness matters, every call is timed.
"""
from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from twin.clock import Clock
from twin.hal import ActuatorCommand, Board, BoardError, SensorFrame

__all__ = ["Executive", "TaskStats"]

log = logging.getLogger(__name__)


@dataclass
class TaskStats:
    """Execution record of one flight-software task.

    ``calls`` counts every call; ``total_ns`` and ``max_ns`` cover the ``timed``
    ones (all of them, or a sample on a virtual clock: see the module docstring).
    """

    name: str
    rate_hz: float
    every_ticks: int
    calls: int = 0
    timed: int = 0
    total_ns: int = 0
    max_ns: int = 0
    faults: int = 0
    restarts: int = 0
    disabled: bool = False
    last_error: str = ""

    @property
    def mean_us(self) -> float:
        """Mean wall time of a timed call, in microseconds."""
        return self.total_ns / self.timed / 1e3 if self.timed else 0.0


class Executive:
    """Runs a flight software against a board on a clock; see the module docstring.

    ``fsw`` provides ``tasks`` (each with ``name``, ``rate_hz``, ``reset(t_ns)``,
    ``step(t_ns)``), ``health`` (dict), ``reset(t_ns)``, ``on_frame(frame)``,
    ``command()`` and ``housekeeping()``. ``recorder`` has ``record(frame, cmd, hk)``.
    """

    def __init__(self, board: Board, fsw, clock: Clock, recorder=None, *,
                 period_ns: int = 1_000_000_000, max_restarts: int = 3,
                 on_progress: Callable[[int], None] | None = None, yield_every_s: float = 0.05,
                 time_every: int = 16):
        if period_ns <= 0:
            raise ValueError(f"period_ns must be > 0, got {period_ns}")
        if time_every < 1:
            raise ValueError(f"time_every must be >= 1, got {time_every}")
        self.board, self.fsw, self.clock, self.recorder = board, fsw, clock, recorder
        self.period_ns = period_ns
        self.max_restarts = max_restarts
        self.on_progress = on_progress
        self.yield_every_ns = int(yield_every_s * 1e9)
        self.time_every = time_every if clock.virtual else 1
        self.stats: list[TaskStats] = [self._stats_for(t) for t in fsw.tasks]
        self.loop_overruns = 0
        self.board_errors = 0
        self.ticks = 0
        self.t_ns = 0
        self._start_ns = 0
        self._next_tick = 0
        self._frame = SensorFrame.empty(0)
        self.last_command = ActuatorCommand().quantized()

    def _stats_for(self, task) -> TaskStats:
        ticks_per_s = 1e9 / self.period_ns
        every = round(ticks_per_s / task.rate_hz) if task.rate_hz > 0 else 0
        if every < 1 or abs(every - ticks_per_s / task.rate_hz) > 1e-9:
            raise ValueError(f"task {task.name!r}: rate {task.rate_hz} Hz is not the base rate "
                             f"{ticks_per_s:g} Hz divided by a whole number")
        return TaskStats(task.name, task.rate_hz, every)

    async def run(self, duration_ns: int, *, start_ns: int = 0, stop: asyncio.Event | None = None) -> None:
        """Run ticks at ``start_ns, start_ns + period, ...`` up to (excluding) ``start_ns + duration_ns``."""
        self.start(start_ns)
        await self.run_ticks(duration_ns // self.period_ns, stop=stop)

    def start(self, start_ns: int = 0) -> None:
        """Reset the flight software and start the clock at ``start_ns``; ticks then come from :meth:`run_ticks`."""
        fsw = self.fsw
        fsw.reset(start_ns)
        for task in fsw.tasks:
            fsw.health[task.name] = True
        # Everything built so far lives for the whole run: keep the cyclic GC
        # from rescanning it in long pauses (it still collects what the run creates).
        gc.collect()
        gc.freeze()
        self.clock.start(start_ns)
        self._start_ns = start_ns
        self._next_tick = 0
        self._frame = SensorFrame.empty(start_ns)

    async def run_ticks(self, n_ticks: int, *, stop: asyncio.Event | None = None,
                        until: Callable[[], bool] | None = None) -> bool:
        """Run up to ``n_ticks`` more ticks after :meth:`start` (or a previous call).

        ``until`` is checked after every tick: True ends the call early. Returns True
        when ``until`` ended it, False when the ticks ran out or ``stop`` was set.
        """
        fsw, board, clock = self.fsw, self.board, self.clock
        tasks = [(task, task.step, task.name, st) for task, st in zip(fsw.tasks, self.stats)]
        health = fsw.health
        start_ns, period, time_every = self._start_ns, self.period_ns, self.time_every
        frame = self._frame
        last_yield = time.perf_counter_ns()
        perf = time.perf_counter_ns
        first = self._next_tick
        met = False
        for tick in range(first, first + n_ticks):
            t = start_ns + tick * period
            self.t_ns = t
            late = await clock.wait_until(t)
            if late > period:
                self.loop_overruns += 1
            try:
                frame = await board.step_to(t)
            except BoardError as exc:
                frame = self._stale_frame(t, frame, exc)
            fsw.on_frame(frame)
            if tick % time_every:
                for task, step, name, st in tasks:
                    if st.disabled or tick % st.every_ticks:
                        continue
                    st.calls += 1
                    try:
                        step(t)
                    except Exception as exc:  # a fault in one task must not stop the others
                        self._task_fault(task, st, t, exc)
                    else:
                        if health.get(name) is not True:
                            health[name] = True
            else:
                for task, step, name, st in tasks:
                    if st.disabled or tick % st.every_ticks:
                        continue
                    st.calls += 1
                    t0 = perf()
                    try:
                        step(t)
                    except Exception as exc:
                        self._task_fault(task, st, t, exc)
                    else:
                        health[name] = True
                    dt = perf() - t0
                    st.timed += 1
                    st.total_ns += dt
                    if dt > st.max_ns:
                        st.max_ns = dt
            cmd = fsw.command().quantized()
            self.last_command = cmd
            try:
                await board.command(cmd)
            except BoardError as exc:
                self._board_error(exc)
            if self.recorder is not None:
                self.recorder.record(frame, cmd, fsw.housekeeping())
            self.ticks += 1
            self._next_tick = tick + 1
            self._frame = frame
            if until is not None and until():
                met = True
                break
            now = perf()
            if now - last_yield > self.yield_every_ns:
                last_yield = now
                if self.on_progress is not None:
                    self.on_progress(t + period - start_ns)
                if clock.virtual:
                    await asyncio.sleep(0)
                if stop is not None and stop.is_set():
                    break
        if self.on_progress is not None:
            self.on_progress(self.ticks * period)
        return met

    def _stale_frame(self, t: int, last: SensorFrame, exc: BoardError) -> SensorFrame:
        """The frame for a tick whose step failed: counted, and the last frame again."""
        self._board_error(exc)
        # Same readings and sample times at a later frame time: the
        # flight software's monitor sees them go stale.
        return SensorFrame(t, last.values, last.valid, last.sample_t_ns)

    def _board_error(self, exc: BoardError) -> None:
        self.board_errors += 1
        if self.board_errors <= 3 or self.board_errors % 1000 == 0:
            log.warning("board error #%d at t=%.3f s: %s", self.board_errors, self.t_ns / 1e9, exc)

    def _task_fault(self, task, st: TaskStats, t: int, exc: Exception) -> None:
        st.faults += 1
        st.last_error = f"{type(exc).__name__}: {exc}"
        self.fsw.health[task.name] = False
        if st.faults <= 3:
            log.error("task %s raised at t=%.3f s", task.name, t / 1e9, exc_info=exc)
        if st.restarts >= self.max_restarts:
            st.disabled = True
            log.error("task %s disabled after %d restarts", task.name, st.restarts)
            return
        st.restarts += 1
        try:
            task.reset(t)
        except Exception as reset_exc:
            st.disabled = True
            log.error("task %s could not be restarted: %s", task.name, reset_exc)
