"""State-of-charge estimator: energy counting corrected slowly toward the open-circuit voltage.

The board reports battery voltage and current, never the state of charge. SoC
here is an *energy* fraction (what the datasheet's OCV table is indexed by):
``soc = stored energy / capacity_wh``.

- Boot (and after every reset): the first tick with valid ``v_battery_v`` and
  ``i_battery_a`` sets ``soc = OCV^-1((V - I R) / cells)``.
- Each fresh power sample: energy counting at the OCV side,
  ``dsoc = (V - I R) I dt * eta / (capacity_wh * 3600)`` (``eta`` the charge
  efficiency while charging, ``1 / discharge efficiency`` while discharging).
- Then a complementary-filter pull toward the OCV-inferred SoC:
  ``soc += (dt / ocv_tau_s) * w * (soc_ocv - soc)`` with a weight ``w`` that
  shrinks where the OCV curve is flat (small dV/dSoC) and at high current (the
  I R correction is only as good as R).

Invalid readings never enter: without a valid current the estimate holds;
without a valid voltage it energy-counts on its own OCV. A gap longer than the
monitor's stale limit is not integrated (the OCV pull recovers it).
"""
from __future__ import annotations

from bisect import bisect_right

from twin.hal import GROUPS, S_I_BATTERY, S_V_BATTERY

from .base import Task
from .config import BatteryConfig
from .validity import SensorMonitor

__all__ = ["SocEstimator", "OcvTable"]

_POWER_GROUP = GROUPS.index("power")


class OcvTable:
    """Piecewise-linear cell OCV against SoC, both ways.

    ``soc_of`` keeps the segment it used last as a hint (the cell voltage moves
    slowly), so most lookups search nothing.
    """

    def __init__(self, soc: tuple, cell_v: tuple):
        self.soc = tuple(float(s) for s in soc)
        self.v = tuple(float(v) for v in cell_v)
        self._slope = tuple((v1 - v0) / (s1 - s0) for s0, s1, v0, v1 in
                            zip(self.soc, self.soc[1:], self.v, self.v[1:]))
        self._last = len(self._slope) - 1
        inf = float("inf")
        # Per segment: the cell volts it covers (the end segments extended beyond the table), SoC and volts
        # at its start, slope.
        self._segments = tuple((self.v[k] if k else -inf, self.v[k + 1] if k < self._last else inf,
                                self.soc[k], self.v[k], self._slope[k]) for k in range(self._last + 1))
        self._hint = self._segments[0]

    def cell_v(self, soc: float) -> float:
        """Cell OCV at ``soc`` (clamped to the table)."""
        k = min(max(bisect_right(self.soc, soc) - 1, 0), self._last)
        s = min(max(soc, self.soc[0]), self.soc[-1])
        return self.v[k] + self._slope[k] * (s - self.soc[k])

    def soc_of(self, cell_v: float) -> tuple[float, float]:
        """(SoC, dV/dSoC of that segment) for a cell OCV, SoC clamped to 0..1."""
        seg = self._hint
        if not seg[0] <= cell_v < seg[1]:
            k = bisect_right(self.v, cell_v) - 1
            seg = self._hint = self._segments[0 if k < 0 else (k if k < self._last else self._last)]
        _, _, soc_k, v_k, slope = seg
        soc = soc_k + (cell_v - v_k) / slope
        return (0.0 if soc < 0.0 else (1.0 if soc > 1.0 else soc)), slope


class SocEstimator(Task):
    """Estimated SoC in ``soc`` (0..1), None until the first valid voltage and current after a reset."""

    def __init__(self, battery: BatteryConfig, monitor: SensorMonitor, stale_limit_s: float, rate_hz: float = 1.0):
        super().__init__("soc", rate_hz)
        self.cfg = battery
        self.monitor = monitor
        self.ocv = OcvTable(battery.ocv_soc, battery.ocv_cell_v)
        self._cells = battery.cells_series
        self._r = battery.r_internal_ohm
        self._capacity_j = battery.capacity_wh * 3600.0
        self._max_gap_ns = int(stale_limit_s * 1e9)
        self._eta_charge = battery.charge_efficiency
        self._eta_discharge = 1.0 / battery.discharge_efficiency
        self._tau_s = battery.ocv_tau_s
        self._slope_ref_v = battery.ocv_slope_ref_v
        self._current_ref_a = battery.ocv_current_ref_a
        self._reset(0)

    def _reset(self, t_ns: int) -> None:
        self.soc: float | None = None
        self._t_sample_ns: int | None = None

    def initialise(self, v_battery: float, i_battery: float) -> float:
        """(Re)start the estimate from the OCV implied by a terminal reading."""
        self.soc = self.ocv.soc_of((v_battery - i_battery * self._r) / self._cells)[0]
        return self.soc

    def _step(self, t_ns: int) -> None:
        m = self.monitor
        frame = m.frame
        if frame is None:
            return
        r = m.readings
        v, i = r[S_V_BATTERY], r[S_I_BATTERY]
        t_sample = frame.sample_t_ns[_POWER_GROUP]
        if self.soc is None:
            if v is not None and i is not None:
                self.initialise(v, i)
                self._t_sample_ns = t_sample
            return
        prev = self._t_sample_ns
        if i is None or t_sample == prev:
            return
        self._t_sample_ns = t_sample
        if prev is None or not 0 < t_sample - prev <= self._max_gap_ns:
            return
        dt = (t_sample - prev) * 1e-9
        soc = self.soc
        v_ocv = v - i * self._r if v is not None else self._cells * self.ocv.cell_v(soc)
        soc += v_ocv * i * (self._eta_charge if i > 0.0 else self._eta_discharge) * dt / self._capacity_j
        if v is not None:
            soc_ocv, slope = self.ocv.soc_of(v_ocv / self._cells)
            # min(1.0, x) written out (see twin.fsw.base), as the clamps below
            flat = slope / self._slope_ref_v
            weight = (flat if flat < 1.0 else 1.0) / (1.0 + abs(i) / self._current_ref_a)
            pull = dt / self._tau_s
            soc += (pull if pull < 1.0 else 1.0) * weight * (soc_ocv - soc)
        self.soc = soc if 0.0 <= soc <= 1.0 else (0.0 if soc < 0.0 else 1.0)
