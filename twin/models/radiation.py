"""Radiation events on the TPUs: silent data corruptions and chip crashes.

Each powered, running chip sees two independent Poisson processes whose rates
follow from the dose rate and the per-chip sensitivities measured for Trillium
(REFERENCE.md, Radiation)::

    sdc rate   = dose_rad_per_year / rad_per_sdc   * rate_multiplier  per chip per year
    crash rate = dose_rad_per_year / rad_per_crash * rate_multiplier  per chip per year

(a year is 365.25 days). A crashed chip (SEFI) is offline for ``chip_reboot_s``
and then runs again; an SDC changes nothing but the count.

Implementation: events are rare and the model is stepped every second, so no
random number is drawn per step. Each (kind, satellite, group) holds the time
of its next event, drawn ahead as an exponential waiting time at the group's
current rate (number of powered running chips times the per-chip rate). When
that number changes the remaining waiting time is rescaled (the unused unit
hazard is kept: exact for a Poisson process with a piecewise-constant rate), so
a step costs a few comparisons. Rate changes take effect at step boundaries:
a power switch or a chip back from a reboot counts from the start of the step
in which it happens, a crash from the start of the next step (within one step a
crashed chip may still see an SDC). If more crashes fall in one step
than a group has running chips, the excess is dropped.

The per-step bookkeeping (reboots, rescaling, "is anything due") is the
``@njit`` kernel :func:`radiation_advance`; drawing the events that fell due
(rare) stays in Python with the seeded ``rng``, in :meth:`RadiationModel.finish_step`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from twin.params import param

__all__ = ["RadiationParams", "RadiationModel", "YEAR_S", "radiation_advance"]

YEAR_S = 365.25 * 86400.0
_SDC, _CRASH = 0, 1
_NEXT_REBOOT, _T_NEXT = 0, 1  # RadiationModel clock entries


@dataclass(frozen=True)
class RadiationParams:
    """Dose rate and per-chip single-event sensitivities."""

    dose_rad_per_year: float = param(150.0, "rad(Si)/yr", lo=0.0, doc="ionizing dose rate behind ~10 mm Al")
    rad_per_sdc: float = param(17.0, "rad(Si)", lo=0.0, lo_open=True, doc="dose per silent data corruption, per chip")
    rad_per_crash: float = param(5000.0, "rad(Si)", lo=0.0, lo_open=True, doc="dose per chip crash (SEFI), per chip")
    chip_reboot_s: float = param(60.0, "s", lo=0.0, doc="time a crashed chip stays offline")
    rate_multiplier: float = param(1.0, "1", lo=0.0, doc="scales both event rates (stress scenarios)")


@njit(cache=True, error_model="numpy")
def _reboot(t_s, online, down_until, clock):
    next_reboot = np.inf
    n_sat, n_groups, chips = down_until.shape
    for s in range(n_sat):
        for g in range(n_groups):
            down = 0
            for c in range(chips):
                if down_until[s, g, c] <= t_s:
                    down_until[s, g, c] = -np.inf
                elif down_until[s, g, c] > -np.inf:
                    down += 1
                    next_reboot = min(next_reboot, down_until[s, g, c])
            online[s, g] = chips - down
    clock[_NEXT_REBOOT] = next_reboot


@njit(cache=True, error_model="numpy")
def _rescale(t_change, powered, online, n_eff, rate, hazard, next_event, lam, clock):
    # Groups whose running count changed keep their unused unit hazard, spent at the new rate.
    t_next = np.inf
    for s in range(n_eff.shape[0]):
        for g in range(n_eff.shape[1]):
            n = online[s, g] if powered[s, g] else 0
            for kind in range(2):
                if n != n_eff[s, g]:
                    r = rate[kind, s, g]
                    left = max((next_event[kind, s, g] - t_change) * r if r > 0 else hazard[kind, s, g], 0.0)
                    new_rate = lam[kind] * n
                    next_event[kind, s, g] = t_change + left / new_rate if new_rate > 0 else np.inf
                    hazard[kind, s, g] = left
                rate[kind, s, g] = lam[kind] * n
                t_next = min(t_next, next_event[kind, s, g])
            n_eff[s, g] = n
    clock[_T_NEXT] = t_next


@njit(cache=True, error_model="numpy")
def radiation_advance(t_s, dt_s, powered, online, arrays):
    """Bookkeeping of a step over [t_s, t_s + dt_s); True if an event falls due in it.

    ``powered`` (n_sat, n_groups) bool; ``online`` and ``arrays`` are
    :class:`RadiationModel`'s ``online`` and ``kernel_arrays``. Reboots chips
    whose time is up and rescales the waiting times of groups whose running
    count changed; draws nothing (call :meth:`RadiationModel.finish_step` next).
    """
    down_until, n_eff, rate, hazard, next_event, lam, clock = arrays
    t_end = t_s + dt_s
    if t_end >= clock[_NEXT_REBOOT]:
        _reboot(t_end, online, down_until, clock)
    for s in range(n_eff.shape[0]):
        for g in range(n_eff.shape[1]):
            if (online[s, g] if powered[s, g] else 0) != n_eff[s, g]:
                _rescale(t_s, powered, online, n_eff, rate, hazard, next_event, lam, clock)
                return t_end >= clock[_T_NEXT]
    return t_end >= clock[_T_NEXT]


class RadiationModel:
    """SDCs and crashes of ``chips_per_group`` chips in each of ``n_groups`` groups on ``n_sat`` satellites.

    ``online`` (n_sat, n_groups) int: chips running (not crashed), powered or
    not; read it, do not write it. ``sdc_total`` (n_sat,) int: cumulative SDCs
    (including injected ones). Random draws come only from ``rng``, so a seed
    fixes every event given the same sequence of calls. ``kernel_arrays`` is
    the state :func:`radiation_advance` works on (updated in place);
    ``has_pending`` says injected events wait to be reported.
    """

    def __init__(self, params: RadiationParams, n_sat: int, n_groups: int, chips_per_group: int,
                 rng: np.random.Generator):
        if n_sat < 1 or n_groups < 1 or chips_per_group < 1:
            raise ValueError(f"need positive sizes, got {n_sat}, {n_groups}, {chips_per_group}")
        self.params = params
        self._rng = rng
        self._shape = (n_sat, n_groups)
        per_chip_s = params.dose_rad_per_year * params.rate_multiplier / YEAR_S
        self._lam = np.array([per_chip_s / params.rad_per_sdc, per_chip_s / params.rad_per_crash])
        self.online = np.full(self._shape, chips_per_group, dtype=np.int64)
        self.sdc_total = np.zeros(n_sat, dtype=np.int64)
        self._down_until = np.full(self._shape + (chips_per_group,), -np.inf)
        self._n_eff = np.zeros(self._shape, dtype=np.int64)
        self._rate = np.zeros((2,) + self._shape)
        self._hazard = rng.exponential(size=(2,) + self._shape)  # unit hazard left, kept while rate is 0
        self._next = np.full((2,) + self._shape, np.inf)
        self._clock = np.array([np.inf, np.inf])  # next reboot, next event
        self.kernel_arrays = (self._down_until, self._n_eff, self._rate, self._hazard, self._next, self._lam,
                              self._clock)
        self._pending = np.zeros((2,) + self._shape, dtype=np.int64)
        self.has_pending = False

    def step(self, t_s: float, dt_s: float, powered: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Advance over [t_s, t_s + dt_s); return this step's ``(sdc, crashes)``, (n_sat, n_groups) int.

        ``powered`` (n_sat, n_groups) bool: the group's chips are powered over
        the step (unpowered chips see no events). Counts include events
        injected since the last step; ``online`` is left as of ``t_s + dt_s``.
        """
        if np.shape(powered) != self._shape:
            raise ValueError(f"expected powered {self._shape}, got {np.shape(powered)}")
        powered = np.asarray(powered, dtype=np.bool_)
        if not (powered.flags.c_contiguous and powered.flags.writeable):
            powered = np.array(powered, dtype=np.bool_, order="C")
        t_s, dt_s = float(t_s), float(dt_s)
        due = radiation_advance(t_s, dt_s, powered, self.online, self.kernel_arrays)
        return self.finish_step(t_s + dt_s, due)

    def finish_step(self, t_end_s: float, due: bool) -> tuple[np.ndarray, np.ndarray]:
        """Second half of a step after :func:`radiation_advance`: draw the events due by ``t_end_s``.

        Adds the injected events and updates ``sdc_total``; returns ``(sdc, crashes)``
        as :meth:`step`. Cheap when ``not due and not has_pending``.
        """
        if not due and not self.has_pending:
            return np.zeros(self._shape, dtype=np.int64), np.zeros(self._shape, dtype=np.int64)
        counts = self._fire(t_end_s) if due else np.zeros((2,) + self._shape, dtype=np.int64)
        if self.has_pending:
            counts += self._pending
            self._pending[:] = 0
            self.has_pending = False
        self.sdc_total += counts[_SDC].sum(axis=1)
        return counts[_SDC], counts[_CRASH]

    def inject_crash(self, sat: int, group: int, t_s: float, count: int = 1) -> int:
        """Crash up to ``count`` running chips of ``(sat, group)`` at ``t_s``; return how many crashed.

        0 (falsy) if none is running. A crashed chip is offline until
        ``t_s + chip_reboot_s``; the crashes are counted in the next step.
        """
        done = 0
        while done < count and self._crash_one(sat, group, t_s):
            done += 1
        if done:
            self._pending[_CRASH, sat, group] += done
            self.has_pending = True
        return done

    def inject_sdc(self, sat: int, group: int, count: int = 1) -> None:
        """Add ``count`` silent data corruptions to ``(sat, group)``, reported in the next step."""
        if count < 0:
            raise ValueError(f"count must be >= 0, got {count}")
        self._pending[_SDC, sat, group] += count
        self.has_pending = True

    def _crash_one(self, sat: int, group: int, t_s: float) -> bool:
        chips = self._down_until[sat, group]
        up = np.flatnonzero(chips == -np.inf)
        if up.size == 0:
            return False
        chips[up[0]] = t_s + self.params.chip_reboot_s
        self.online[sat, group] -= 1
        self._clock[_NEXT_REBOOT] = min(self._clock[_NEXT_REBOOT], chips[up[0]])
        return True

    def _fire(self, t_s: float) -> np.ndarray:
        counts = np.zeros((2,) + self._shape, dtype=np.int64)
        crashes: list[tuple[float, int, int]] = []
        due = self._next <= t_s
        while due.any():
            kind, sat, group = np.nonzero(due)
            counts[kind, sat, group] += 1
            crashes += [(self._next[1, s, g], s, g) for k, s, g in zip(kind, sat, group) if k == _CRASH]
            self._next[kind, sat, group] += self._rng.exponential(size=kind.size) / self._rate[kind, sat, group]
            due = self._next <= t_s
        for t_event, sat, group in sorted(crashes):
            if not self._crash_one(sat, group, t_event):
                counts[_CRASH, sat, group] -= 1
        self._clock[_T_NEXT] = self._next.min()
        return counts
