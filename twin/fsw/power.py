"""Power-aware compute budget.

The array's spare power is shunted and not measured, so the budget (watts the
TPUs may draw) is regulated on the battery current: each tick
``budget += regulator_gain * (i_battery - i_setpoint) * v_battery``, clamped to
``0 .. min(maximum compute power, measured TPU power + budget_headroom_w)``
(the second bound stops wind-up while the TPUs cannot use more).

The setpoint says what the battery should be doing now:

- sunlit: charge toward ``soc_target`` by the next predicted eclipse,
  ``i = (soc_target - soc) * capacity / (v * time to eclipse)``, clipped to
  ``-probe_discharge_a .. max_charge_a``. At the target the setpoint is a small
  discharge, so the budget creeps up until it uses every shunted watt and the
  SoC settles at the target. With charging inhibited the setpoint is that
  small discharge too.
- eclipse (sun sensors dark, or predicted when they are invalid): spend the
  energy above the depth-of-discharge floor ``1 - max_dod`` evenly over the
  predicted remaining eclipse, ``i = -(soc - floor) * capacity / (v * remaining)``.

The budget becomes one cap level for all groups by water-filling: groups held
lower by their thermal cap keep it, the others share the rest, counting each
chip's idle power as spent. Compute is off (rail off, budget 0) in SAFE, from
shed stage 1 (unless ``stage1_compute_fraction`` > 0), while the battery
sensors have failed, when no group may run, once the SoC has reached the
eclipse floor inside an eclipse (until sunlight: idle chips would keep
draining it), and for one tick when the rail guard cycles a latched rail.

Starved compute. A budget below the chips' idle power for ``starve_samples``
means even idle TPUs cost more than the battery can give (the array lost, a
deep eclipse): the rail goes off. While off, the battery error is itself the
power the TPUs could have (nothing to integrate); the rail comes back when it
exceeds the idle power plus ``budget_headroom_w`` for ``starve_samples``.
"""
from __future__ import annotations

from operator import itemgetter

from twin.hal import (N_TPU_GROUPS, S_I_BATTERY, S_I_RAIL, S_SUN_PRESENT, S_TPU_ONLINE, S_V_BATTERY, S_V_BUS,
                      ActuatorCommand)

from .base import Debounce, EventLog, Task
from .config import FswConfig
from .contact_plan import ContactPlanner
from .modes import SAFE, ModeManager
from .shedding import LoadShedder, RailGuard
from .soc import SocEstimator
from .thermal import ThermalController
from .validity import SensorMonitor

__all__ = ["PowerManager", "cap_level"]

_online_of = itemgetter(*S_TPU_ONLINE)

_S_I_TPU = S_I_RAIL["tpu"]


def cap_level(budget_w: float, ceilings: list[float], chips: list[float], idle_w: float, max_w: float,
              n_chips: float | None = None) -> float:
    """The common cap level L with ``sum_g chips_g * (idle + (max - idle) * min(L, ceiling_g)) == budget``.

    Returns 0 when the budget does not cover the idle power, 1 when it covers
    every group at its ceiling. ``n_chips`` is ``sum(chips)`` if the caller has it.
    """
    if n_chips is None:
        n_chips = sum(chips)
    spare = budget_w - idle_w * n_chips
    if spare <= 0.0:
        return 0.0
    span = max_w - idle_w
    w_left = span * n_chips
    if ceilings.count(ceilings[0]) == len(ceilings):  # the usual case: one ceiling for all
        level = spare / w_left if w_left > 0.0 else 1.0
        return level if level < ceilings[0] else 1.0
    used = 0.0
    for ceiling, n in sorted(zip(ceilings, chips)):
        if w_left <= 0.0:
            break
        if used + ceiling * w_left >= spare:
            return (spare - used) / w_left
        w = n * span
        used += ceiling * w
        w_left -= w
    return 1.0


class PowerManager(Task):
    """Outputs: ``tpu_on``, ``cap`` (one level for every group), ``budget_w``, ``in_eclipse``, ``next_eclipse_s``."""

    def __init__(self, cfg: FswConfig, monitor: SensorMonitor, soc: SocEstimator, modes: ModeManager,
                 thermal: ThermalController, shedder: LoadShedder, planner: ContactPlanner, events: EventLog,
                 rate_hz: float = 1.0):
        super().__init__("power", rate_hz)
        self.cfg = cfg
        self.events = events
        self.monitor, self.soc, self.modes, self.thermal = monitor, soc, modes, thermal
        self.shedder, self.planner = shedder, planner
        p, t = cfg.power, cfg.tpu
        self.rail_guard = RailGuard("TPU", p.tpu_rail_min_a, p.rail_latch_samples, p.rail_cycle_limit, events)
        self._n_chips = t.groups * t.chips_per_group
        self._max_compute_w = self._n_chips * (t.chip_idle_w + (t.chip_max_w - t.chip_idle_w) * t.utilization_demand)
        self._capacity_j = cfg.battery.capacity_wh * 3600.0
        self._floor = 1.0 - p.max_dod
        self._no_demand = t.utilization_demand <= 0.0
        self._idle_w_per_chip = t.chip_idle_w
        self._gain, self._headroom_w = p.regulator_gain, p.budget_headroom_w
        self._util, self._chip_max_w, self._chips_per_group = t.utilization_demand, t.chip_max_w, t.chips_per_group
        self._util_ceilings = [t.utilization_demand] * t.groups
        self._stage1_fraction = p.stage1_compute_fraction
        self._soc_target, self._min_time_to_eclipse_s = p.soc_target, p.min_time_to_eclipse_s
        self._probe_a, self._max_charge_a = -p.probe_discharge_a, p.max_charge_a
        #: The command sent last tick (set by the flight software): what the rails did since.
        self.applied = ActuatorCommand()
        self._reset(0)

    def _reset(self, t_ns: int) -> None:
        self.shedder.reset(t_ns)
        self.rail_guard.reset()
        self.tpu_on = False
        self.cap = 0.0
        self.budget_w = 0.0
        self.in_eclipse = False
        self.next_eclipse_s = -1.0
        self.i_setpoint_a = 0.0
        self._dark_since_ns: int | None = None
        self.floor_reached = False
        self._starved = Debounce(self.cfg.power.starve_samples, self.cfg.power.starve_samples)

    def _step(self, t_ns: int) -> None:
        r, modes = self.monitor.readings, self.modes
        t_s = t_ns * 1e-9
        plan = self.planner
        plan.update(t_s)
        soc = self.soc.soc
        stage = self.shedder.update(t_ns, soc)
        sun = r[S_SUN_PRESENT]
        self.in_eclipse = in_eclipse = sun < 0.5 if sun is not None else plan.eclipse_left > 0.0
        if in_eclipse:
            if self._dark_since_ns is None:
                self._dark_since_ns = t_ns
            self.next_eclipse_s = 0.0
        else:
            self._dark_since_ns = None
            self.next_eclipse_s = plan.next_eclipse

        i_tpu = r[_S_I_TPU]
        chips = _online_of(r)
        if self.monitor.invalid_count and None in chips:  # with every channel OK none is None
            chips = [self._chips_per_group if n is None else n for n in chips]
        guard = self.rail_guard
        n_chips = sum(chips)
        guard.update(t_ns, self.applied.switch_tpu, i_tpu, n_chips > 0)

        # At the floor in eclipse even idle chips cost too much; the next sunlight lifts it.
        self.floor_reached = in_eclipse and (self.floor_reached or (soc is not None and soc <= self._floor))
        frac = self._stage1_fraction
        failures = modes.tpu_temp_failures
        if (modes.mode == SAFE or stage > 1 or (stage == 1 and frac <= 0.0) or modes.power_sensor_failed
                or self._no_demand or failures == N_TPU_GROUPS or self.floor_reached or guard.cycle_now
                or guard.failed):
            self._off()
            self._starved.clear()
            return

        i_batt, v_batt = r[S_I_BATTERY], r[S_V_BATTERY]
        starved = self._starved
        if i_batt is not None and v_batt is not None and soc is not None and v_batt > 1.0:
            idle_w = self._idle_w_per_chip * n_chips
            self.i_setpoint_a = setpoint = self._setpoint(soc, v_batt, t_s)
            error_w = (i_batt - setpoint) * v_batt
            if starved.active:
                # Rail off: the battery error is the power the TPUs could have now, no integration.
                if starved.update(error_w < idle_w + self._headroom_w):
                    self.budget_w = min(error_w, idle_w + self._headroom_w)
                    self.events.log(t_ns, "compute on", f"{error_w:.0f} W spare covers the idle power")
            else:
                budget = self.budget_w + self._gain * error_w
                ceiling = self._max_compute_w if stage == 0 else frac * self._max_compute_w
                v_bus = r[S_V_BUS]
                if i_tpu is not None and v_bus is not None and i_tpu * v_bus + self._headroom_w < ceiling:
                    ceiling = i_tpu * v_bus + self._headroom_w
                self.budget_w = budget = budget if 0.0 <= budget <= ceiling else (0.0 if budget < 0.0 else ceiling)
                if (budget < idle_w) != starved.active or starved.count:
                    if starved.update(budget < idle_w):
                        self.events.log(t_ns, "compute off", f"budget below the {idle_w:.0f} W idle power for "
                                        f"{starved.n_set} samples")
        if starved.active:
            self._off()
            return

        thermal = self.thermal
        if thermal.caps_full and not failures:
            ceilings = self._util_ceilings
        else:
            util, failed = self._util, modes.tpu_temp_failed
            ceilings = [0.0 if failed[g] else (c if c < util else util) for g, c in enumerate(thermal.cap)]
        self.cap = cap_level(self.budget_w, ceilings, chips, self._idle_w_per_chip, self._chip_max_w, n_chips)
        self.tpu_on = True

    def _off(self) -> None:
        self.tpu_on = False
        self.budget_w = 0.0
        self.cap = 0.0

    def _setpoint(self, soc: float, v: float, t_s: float) -> float:
        """Battery current (A, + charging) the budget regulates to."""
        # The clamps are min() and max() written out (see twin.fsw.base).
        plan = self.planner
        if self.in_eclipse:
            p = self.cfg.power
            remaining = plan.eclipse_left
            if remaining <= 0.0:  # dark but not predicted: assume a full eclipse from when it went dark
                remaining = p.eclipse_fallback_s - (t_s - self._dark_since_ns * 1e-9)
            above = soc - self._floor
            energy_j = (above if above > 0.0 else 0.0) * self._capacity_j
            setpoint = -energy_j / (v * (60.0 if 60.0 > remaining else remaining))
            limit = -p.max_discharge_a
            return limit if limit > setpoint else setpoint
        to_eclipse = plan.next_eclipse
        if to_eclipse < 0.0:  # none predicted: at least an orbit, or what the plan covers
            to_eclipse, period_s = plan.horizon_left_s(t_s), plan.orbit.period_s
            if period_s > to_eclipse:
                to_eclipse = period_s
        floor_s, probe_a, max_a = self._min_time_to_eclipse_s, self._probe_a, self._max_charge_a
        need = (self._soc_target - soc) * self._capacity_j / (v * (floor_s if floor_s > to_eclipse else to_eclipse))
        setpoint = probe_a if probe_a > need else need
        if max_a < setpoint:
            setpoint = max_a
        if not self.thermal.charge_enable and probe_a < setpoint:
            setpoint = probe_a
        return setpoint
