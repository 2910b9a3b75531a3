"""Staged load shedding on the SoC estimate, and the undervoltage-latched rail guard.

Load shedding (:class:`LoadShedder`)

=====  ===================  ==============  ===================================
stage  enters below          persistence    action
=====  ===================  ==============  ===================================
1      ``shed1_soc`` (0.60)  60 samples     compute off (or reduced to
                                            ``stage1_compute_fraction``)
2      ``shed2_soc`` (0.50)  30 samples     + optical links off
3      ``shed3_soc`` (0.40)  10 samples     + SAFE (FDIR acts on it)
=====  ===================  ==============  ===================================

Deeper stages act faster and may be entered directly. A stage clears one step
at a time, only after the SoC has stayed above its threshold plus
``shed_hysteresis`` for ``unshed_samples`` in a row *and* the shedder has
dwelt ``shed_min_dwell_s`` at the stage: noise around a threshold cannot make
it flap. After a reset the first known SoC sets the stage at once (no
persistence), so a restart never re-enables loads the battery cannot carry.
While the SoC is unknown the stage and the counts hold.
"""
from __future__ import annotations

from .base import EventLog
from .config import PowerConfig

__all__ = ["LoadShedder", "RailGuard"]


class LoadShedder:
    """The shedding stage (0..3) from the SoC estimate; see the module docstring."""

    def __init__(self, cfg: PowerConfig, events: EventLog):
        self.cfg = cfg
        self.events = events
        self._enter = (0.0, cfg.shed1_soc, cfg.shed2_soc, cfg.shed3_soc)
        self._n_enter = (0, cfg.shed1_samples, cfg.shed2_samples, cfg.shed3_samples)
        self.reset(0)

    def reset(self, t_ns: int) -> None:
        self.stage = 0
        self._known = False
        self._below = [0, 0, 0, 0]
        self._pending = False
        self._above = 0
        self._since_ns = t_ns

    def update(self, t_ns: int, soc: float | None) -> int:
        """Feed one SoC sample (None: unknown, hold); returns the stage."""
        if soc is None:
            return self.stage
        enter = self._enter
        if not self._known:
            self._known = True
            stage = sum(1 for k in (1, 2, 3) if soc < enter[k])
            if stage:
                self._set(t_ns, stage, f"SoC {soc:.3f} at start below {enter[stage]:.2f}")
            self._since_ns = t_ns
            return self.stage
        if self.stage == 0 and soc >= enter[1]:  # the common case: nothing shed, nothing pending
            if self._pending:
                self._below = [0, 0, 0, 0]
                self._pending = False
            return 0
        self._pending = True
        below = self._below
        deeper = 0
        for k in (1, 2, 3):
            below[k] = below[k] + 1 if soc < enter[k] else 0
            if k > self.stage and below[k] >= self._n_enter[k]:
                deeper = k
        if deeper:
            self._set(t_ns, deeper, f"SoC {soc:.3f} below {enter[deeper]:.2f} for {below[deeper]} samples")
        elif self.stage:
            cfg = self.cfg
            self._above = self._above + 1 if soc > enter[self.stage] + cfg.shed_hysteresis else 0
            if self._above >= cfg.unshed_samples and (t_ns - self._since_ns) * 1e-9 >= cfg.shed_min_dwell_s:
                self._set(t_ns, self.stage - 1, f"SoC {soc:.3f} above "
                          f"{enter[self.stage] + cfg.shed_hysteresis:.2f} for {self._above} samples")
        return self.stage

    def _set(self, t_ns: int, stage: int, why: str) -> None:
        self.events.log(t_ns, f"shed stage {self.stage} -> {stage}", why)
        self.stage = stage
        self._since_ns = t_ns
        self._above = 0


class RailGuard:
    """Detects a rail the power unit latched off (undervoltage) and power-cycles it, a bounded number of times.

    A rail commanded on in the previous tick that reads less than ``min_a`` for
    ``samples`` ticks in a row is latched: the guard asks for it to be commanded
    off for one tick (``cycle_now``), which re-arms the protection. After
    ``limit`` cycles that did not bring the current back it gives up (``failed``)
    until the next reset.
    """

    def __init__(self, rail: str, min_a: float, samples: int, limit: int, events: EventLog):
        self.rail, self.min_a, self.samples, self.limit = rail, min_a, samples, limit
        self.events = events
        self.reset()

    def reset(self) -> None:
        self.cycle_now = False
        self.failed = False
        self.cycles = 0
        self._low = 0

    def update(self, t_ns: int, was_on: bool, current_a: float | None, expect_current: bool) -> None:
        """One sample: ``was_on`` the rail was commanded on last tick; ``current_a`` its reading (None: invalid)."""
        self.cycle_now = False
        if not was_on or current_a is None or not expect_current or self.failed:
            self._low = 0
            return
        if current_a >= self.min_a:
            self._low = 0
            self.cycles = 0
            return
        self._low += 1
        if self._low < self.samples:
            return
        self._low = 0
        if self.cycles >= self.limit:
            self.failed = True
            self.events.log(t_ns, f"{self.rail} rail given up", f"no current after {self.cycles} power cycles")
            return
        self.cycles += 1
        self.cycle_now = True
        self.events.log(t_ns, f"{self.rail} rail power-cycled",
                        f"commanded on but {current_a:.2f} A < {self.min_a:g} A for {self.samples} samples")
