"""Sensor monitor: is each channel's reading usable this tick?

Every channel gets one state per step, checked in this order:

=============  ==========================================================
OK             usable
BOARD_INVALID  the board flags the reading as failed (``frame.valid``)
STALE          its group was sampled more than ``stale_limit_s`` ago (or never)
NAN            not a finite number (NaN or infinite)
RANGE          outside the channel table's lo..hi
STUCK          an analog reading bit-identical over ``stuck_samples`` fresh
               samples in a row (real sensors always show noise); a reading
               sitting exactly on its range edge is a clipped converter, not
               a stuck one, and channels in ``stuck_exempt`` are never stuck
=============  ==========================================================

Consumers read values only through :meth:`SensorMonitor.value_or_none`, so an
invalid reading never reaches a limit check. Staleness is judged against the
executive's time, not the frame's, so a board that stops answering goes stale;
when every group is stale the board is silent, and ``silent_ns`` says for how
long (the age of its newest sample) for FDIR's link-lost rule.
"""
from __future__ import annotations

from itertools import compress
from math import isfinite
from operator import eq, itemgetter, le, ne

from twin.hal import CHANNEL_INDEX, CHANNELS, GROUPS, N_CHANNELS, SensorFrame

from .base import Task
from .config import MonitorConfig

__all__ = ["SensorMonitor", "OK", "BOARD_INVALID", "STALE", "NAN", "RANGE", "STUCK", "STATE_NAMES"]

OK, BOARD_INVALID, STALE, NAN, RANGE, STUCK = range(6)
STATE_NAMES = ("OK", "BOARD_INVALID", "STALE", "NAN", "RANGE", "STUCK")
_NAN = float("nan")


class SensorMonitor(Task):
    """Validity of every channel; the first task of each tick.

    The flight software hands it each frame with :meth:`set_frame` (or sets
    ``frame``). After a step: ``state`` holds one state per channel,
    ``readings`` the value of each OK channel and None for every other
    (consumers index it directly in their per-tick code; :meth:`value_or_none`
    is the same as a method), and ``invalid_count`` how many channels are not
    OK. Both lists are read-only: on a tick where every channel is OK they are
    a shared all-OK list and the frame's own ``values``. ``silent_ns`` is the
    age of the frame's newest sample when every group is stale, else 0.
    """

    def __init__(self, config: MonitorConfig, rate_hz: float = 1.0):
        super().__init__("monitor", rate_hz)
        self.config = config
        self._stale_ns = int(config.stale_limit_s * 1e9)
        self._stuck_n = config.stuck_samples - 1
        exempt = {CHANNEL_INDEX[n] for n in config.stuck_exempt}
        # Equal limits share one float object: the range check reads fewer objects every tick.
        limits: dict[float, float] = {}
        self._lo = tuple(limits.setdefault(float(c.lo), float(c.lo)) for c in CHANNELS)
        self._hi = tuple(limits.setdefault(float(c.hi), float(c.hi)) for c in CHANNELS)
        self._group = tuple(GROUPS.index(c.group) for c in CHANNELS)
        analog = tuple(i for i, c in enumerate(CHANNELS) if not c.discrete and i not in exempt)
        self._analog = analog
        self._analog_of = itemgetter(*analog)
        self._analog_j = range(len(analog))
        self._analog_edges = tuple((self._lo[i], self._hi[i]) for i in analog)
        self._analog_group = tuple(self._group[i] for i in analog)
        self._n_groups = len(GROUPS)
        self._all_ok = [OK] * N_CHANNELS  # the state of every all-OK tick, shared: never mutated
        self.frame: SensorFrame | None = None
        self._reset(0)

    def _reset(self, t_ns: int) -> None:
        self.state = [STALE] * N_CHANNELS
        self.readings: list[float | None] = [None] * N_CHANNELS
        self.invalid_count = N_CHANNELS
        self.silent_ns = 0
        self._last_analog = (_NAN,) * len(self._analog)
        self._repeats: dict[int, int] = {}
        self._last_sample_ns: tuple = (None,) * len(GROUPS)

    def set_frame(self, frame: SensorFrame) -> None:
        self.frame = frame

    def _step(self, t_ns: int) -> None:
        frame = self.frame
        if frame is None:
            return
        samples, values = frame.sample_t_ns, frame.values
        last_samples, self._last_sample_ns = self._last_sample_ns, tuple(samples)
        if samples.count(t_ns) == self._n_groups:  # the usual frame: every group sampled now, none stale
            any_stale, all_fresh = False, t_ns not in last_samples
            self.silent_ns = 0
        else:
            any_stale = t_ns - min(samples) > self._stale_ns
            all_fresh = all(map(ne, samples, last_samples))
            newest_age = t_ns - max(samples)
            self.silent_ns = newest_age if newest_age > self._stale_ns else 0
        # Fast path: every reading flagged valid (count(True) compares by identity first: cheap),
        # fresh, finite and in range (NaN fails <=). The state and readings lists are then shared.
        if (any_stale or frame.valid.count(True) != N_CHANNELS
                or not (all(map(le, self._lo, values)) and all(map(le, values, self._hi)))):
            state, readings, bad = self._classify(t_ns, samples, values, frame.valid)
        else:
            state, readings, bad = self._all_ok, values, 0
        cur = self._analog_of(values)
        if all_fresh:  # the usual tick, written out: compare every analog reading with its last sample
            last, self._last_analog = self._last_analog, cur
            old, edges = self._repeats, self._analog_edges
            repeats: dict[int, int] = {}
            for j in compress(self._analog_j, map(eq, cur, last)):
                if cur[j] not in edges[j]:
                    repeats[j] = old.get(j, 0) + 1
            self._repeats = repeats
        else:
            repeats = self._count_repeats(cur, list(map(ne, samples, last_samples)))
        if repeats:
            analog, stuck_n = self._analog, self._stuck_n
            for j, n in repeats.items():
                i = analog[j]
                if n >= stuck_n and state[i] == OK:
                    if state is self._all_ok:
                        state, readings = [OK] * N_CHANNELS, list(values)
                    state[i] = STUCK
                    readings[i] = None
                    bad += 1
        self.state, self.readings, self.invalid_count = state, readings, bad

    def _classify(self, t_ns: int, samples, values: list[float], valid: list[bool]) -> tuple[list, list, int]:
        """(state, readings, count not OK) of every channel before the stuck check."""
        state = [OK] * N_CHANNELS
        readings = list(values)
        bad = 0
        stale = [t_ns - s > self._stale_ns for s in samples]
        for i, (v, ok, lo, hi, g) in enumerate(zip(values, valid, self._lo, self._hi, self._group)):
            if not ok:
                s = BOARD_INVALID
            elif stale[g]:
                s = STALE
            elif lo <= v <= hi:
                continue
            elif not isfinite(v):
                s = NAN
            else:
                s = RANGE
            state[i] = s
            readings[i] = None
            bad += 1
        return state, readings, bad

    def _count_repeats(self, cur: tuple, fresh: list[bool]) -> dict[int, int]:
        """Update the bit-identical repeat counts of the analog readings ``cur``, some groups not resampled.

        ``fresh`` says per group whether it was; the others hold their counts and their last values.
        """
        last, edges, old = self._last_analog, self._analog_edges, self._repeats
        repeats: dict[int, int] = {}
        kept = list(last)
        for j, g in enumerate(self._analog_group):
            if not fresh[g]:
                if j in old:
                    repeats[j] = old[j]
                continue
            if cur[j] == last[j] and cur[j] not in edges[j]:
                repeats[j] = old.get(j, 0) + 1
            kept[j] = cur[j]
        self._last_analog = tuple(kept)
        self._repeats = repeats
        return repeats

    def value_or_none(self, ch: int) -> float | None:
        """The reading of channel ``ch`` if it is OK this tick, else None."""
        return self.readings[ch]

    def ok(self, ch: int) -> bool:
        return self.state[ch] == OK

    def describe(self, ch: int) -> str:
        """``name STATE`` for event logs."""
        return f"{CHANNELS[ch].name} {STATE_NAMES[self.state[ch]]}"
