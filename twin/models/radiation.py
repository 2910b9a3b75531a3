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
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from twin.params import param

__all__ = ["RadiationParams", "RadiationModel", "YEAR_S"]

YEAR_S = 365.25 * 86400.0
_SDC, _CRASH = 0, 1


@dataclass(frozen=True)
class RadiationParams:
    """Dose rate and per-chip single-event sensitivities."""

    dose_rad_per_year: float = param(150.0, "rad(Si)/yr", lo=0.0, doc="ionizing dose rate behind ~10 mm Al")
    rad_per_sdc: float = param(17.0, "rad(Si)", lo=0.0, lo_open=True, doc="dose per silent data corruption, per chip")
    rad_per_crash: float = param(5000.0, "rad(Si)", lo=0.0, lo_open=True, doc="dose per chip crash (SEFI), per chip")
    chip_reboot_s: float = param(60.0, "s", lo=0.0, doc="time a crashed chip stays offline")
    rate_multiplier: float = param(1.0, "1", lo=0.0, doc="scales both event rates (stress scenarios)")


class RadiationModel:
    """SDCs and crashes of ``chips_per_group`` chips in each of ``n_groups`` groups on ``n_sat`` satellites.

    ``online`` (n_sat, n_groups) int: chips running (not crashed), powered or
    not; read it, do not write it. ``sdc_total`` (n_sat,) int: cumulative SDCs
    (including injected ones). Random draws come only from ``rng``, so a seed
    fixes every event given the same sequence of calls.
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
        self._next_reboot = np.inf
        self._n_eff = np.zeros(self._shape, dtype=np.int64)
        self._n_eff_bytes = self._n_eff.tobytes()
        self._rate = np.zeros((2,) + self._shape)
        self._hazard = rng.exponential(size=(2,) + self._shape)  # unit hazard left, kept while rate is 0
        self._next = np.full((2,) + self._shape, np.inf)
        self._t_next = np.inf
        self._pending = np.zeros((2,) + self._shape, dtype=np.int64)
        self._has_pending = False

    def step(self, t_s: float, dt_s: float, powered: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Advance over [t_s, t_s + dt_s); return this step's ``(sdc, crashes)``, (n_sat, n_groups) int.

        ``powered`` (n_sat, n_groups) bool: the group's chips are powered over
        the step (unpowered chips see no events). Counts include events
        injected since the last step; ``online`` is left as of ``t_s + dt_s``.
        """
        if np.shape(powered) != self._shape:
            raise ValueError(f"expected powered {self._shape}, got {np.shape(powered)}")
        t_end = t_s + dt_s
        if t_end >= self._next_reboot:
            self._reboot(t_end)
        n_eff = self.online * powered
        if n_eff.tobytes() != self._n_eff_bytes:  # far cheaper than (a != b).any() on small arrays
            self._rescale(t_s, n_eff)
        if t_end < self._t_next and not self._has_pending:
            return np.zeros(self._shape, dtype=np.int64), np.zeros(self._shape, dtype=np.int64)
        counts = self._fire(t_end) if t_end >= self._t_next else np.zeros((2,) + self._shape, dtype=np.int64)
        if self._has_pending:
            counts += self._pending
            self._pending[:] = 0
            self._has_pending = False
        self.sdc_total += counts[_SDC].sum(axis=1)
        return counts[_SDC], counts[_CRASH]

    def inject_crash(self, sat: int, group: int, t_s: float) -> bool:
        """Crash one running chip of ``(sat, group)`` at ``t_s``; False if none is running.

        The chip is offline until ``t_s + chip_reboot_s``; the crash is counted in the next step.
        """
        if not self._crash_one(sat, group, t_s):
            return False
        self._pending[_CRASH, sat, group] += 1
        self._has_pending = True
        return True

    def inject_sdc(self, sat: int, group: int, count: int = 1) -> None:
        """Add ``count`` silent data corruptions to ``(sat, group)``, reported in the next step."""
        if count < 0:
            raise ValueError(f"count must be >= 0, got {count}")
        self._pending[_SDC, sat, group] += count
        self._has_pending = True

    def _crash_one(self, sat: int, group: int, t_s: float) -> bool:
        chips = self._down_until[sat, group]
        up = np.flatnonzero(chips == -np.inf)
        if up.size == 0:
            return False
        chips[up[0]] = t_s + self.params.chip_reboot_s
        self.online[sat, group] -= 1
        self._next_reboot = min(self._next_reboot, chips[up[0]])
        return True

    def _reboot(self, t_s: float) -> None:
        self._down_until[self._down_until <= t_s] = -np.inf
        down = self._down_until > -np.inf
        self.online[...] = self._down_until.shape[-1] - np.count_nonzero(down, axis=-1)
        self._next_reboot = float(self._down_until[down].min()) if down.any() else np.inf

    def _rescale(self, t_change: float, n_eff: np.ndarray) -> None:
        # Whole-array operations: cheaper than masked indexing at these sizes.
        changed = n_eff != self._n_eff
        running = self._rate > 0
        used = np.where(running, self._next, t_change) - t_change
        left = np.maximum(np.where(running, used * self._rate, self._hazard), 0.0)
        new_rate = self._lam[:, None, None] * n_eff
        has_rate = new_rate > 0
        new_next = np.where(has_rate, t_change + left / np.where(has_rate, new_rate, 1.0), np.inf)
        self._next = np.where(changed, new_next, self._next)
        self._hazard = np.where(changed, left, self._hazard)
        self._rate = new_rate
        self._n_eff = n_eff
        self._n_eff_bytes = n_eff.tobytes()
        self._t_next = float(self._next.min())

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
        self._t_next = float(self._next.min())
        return counts
