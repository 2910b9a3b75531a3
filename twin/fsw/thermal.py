"""Thermal control: TPU group power caps, battery and avionics heaters, charge inhibit.

TPU groups. Each group's thermal cap (fraction of its maximum power) follows a
proportional law on its temperature: 1 up to ``tpu_throttle_start_c``, falling
linearly to 0 at ``tpu_cap_zero_c`` (below ``tpu_limit_c``). A fall is applied
at once; a rise at most ``tpu_recovery_per_s``, so a group that has cooled comes
back gradually. While a group's reading is invalid its cap holds (it may not
rise); once FDIR declares the sensor failed the cap is 0 and restarts from 0
after recovery.

Heaters. Bang-bang with hysteresis per zone: on below ``*_heater_on_c``, off
above ``*_heater_off_c``, otherwise unchanged. An invalid reading holds the
heater; a sensor FDIR declares failed gives a fixed fallback duty.

Charging. ``charge_enable`` goes False at once when the battery temperature is
outside ``charge_min_c..charge_max_c`` or invalid, and comes back only after
``charge_ok_samples`` valid readings in a row at least ``charge_margin_c``
inside the range. After a reset charging stays inhibited until so verified.
"""
from __future__ import annotations

from operator import itemgetter

from twin.hal import N_TPU_GROUPS, S_T_AVIONICS, S_T_BATTERY, S_T_TPU

from .base import EventLog, Task
from .config import ThermalConfig
from .validity import SensorMonitor

__all__ = ["ThermalController"]

_tpu_temps = itemgetter(*S_T_TPU)

_FULL = [1.0] * N_TPU_GROUPS
_INF = float("inf")


class ThermalController(Task):
    """Outputs: ``cap`` (per TPU group, 0..1; ``caps_full`` when all are 1), ``heater_duty``
    ([battery, avionics]), ``charge_enable``.

    ``faults`` is the FDIR object with boolean ``tpu_temp_failed`` (list),
    ``battery_temp_failed`` and ``avionics_temp_failed`` attributes.
    """

    def __init__(self, cfg: ThermalConfig, monitor: SensorMonitor, faults, events: EventLog, rate_hz: float = 1.0):
        super().__init__("thermal", rate_hz)
        self.cfg = cfg
        self.monitor = monitor
        self.faults = faults
        self.events = events
        self._slope = 1.0 / (cfg.tpu_cap_zero_c - cfg.tpu_throttle_start_c)
        # Per heater zone: its index, sensor, on below, off above, duty while on, duty while its sensor has failed.
        self._zones = ((0, S_T_BATTERY, cfg.battery_heater_on_c, cfg.battery_heater_off_c, cfg.battery_heater_duty,
                        cfg.battery_heater_fallback_duty),
                       (1, S_T_AVIONICS, cfg.avionics_heater_on_c, cfg.avionics_heater_off_c,
                        cfg.avionics_heater_duty, cfg.avionics_heater_fallback_duty))
        self._reset(0)

    def _reset(self, t_ns: int) -> None:
        self.cap = [0.0] * N_TPU_GROUPS
        self.caps_full = False
        self.heater_on = [False, False]
        self.heater_duty = [0.0, 0.0]
        # The sensor-failed flags the heaters were last set for, and per zone the band its temperature may
        # move in without changing them: while both hold, the heater outputs stand.
        self._heaters_failed: tuple | None = None
        self._heaters_quiet = ((_INF, -_INF), (_INF, -_INF))
        self.charge_enable = False
        self._charge_ok = 0
        self._inhibit_logged = False

    def _step(self, t_ns: int) -> None:
        cfg, r, f = self.cfg, self.monitor.readings, self.faults
        prev, self._t_prev_ns = self._t_prev_ns, t_ns  # elapsed_s(), its value only worked out when needed
        failed = f.tpu_temp_failed
        throttle = not self.caps_full or True in failed
        if not throttle:  # max(temps) <= start, as a plain loop (see twin.fsw.base)
            start = cfg.tpu_throttle_start_c
            for ch in S_T_TPU:
                temp = r[ch]
                if temp is None or temp > start:
                    throttle = True
                    break
        if throttle:
            dt = (t_ns - prev) * 1e-9 if prev is not None and t_ns > prev else self.period_s
            self._throttle(_tpu_temps(r), failed, cfg.tpu_recovery_per_s * dt)

        zone_failed = (f.battery_temp_failed, f.avionics_temp_failed)
        t_batt, t_avi = r[S_T_BATTERY], r[S_T_AVIONICS]
        (lo0, hi0), (lo1, hi1) = self._heaters_quiet
        if (zone_failed != self._heaters_failed or not (t_batt is None or lo0 <= t_batt <= hi0)
                or not (t_avi is None or lo1 <= t_avi <= hi1)):
            self._heaters(r, zone_failed)

        # Charging on and the battery in range: nothing to do (the usual tick).
        if not self.charge_enable or t_batt is None or not cfg.charge_min_c <= t_batt <= cfg.charge_max_c:
            self._charge(t_ns, t_batt)

    def _heaters(self, r: list, zone_failed: tuple[bool, bool]) -> None:
        """Bang-bang with hysteresis per zone, the fallback duty while its sensor has failed."""
        heater_on, heater_duty = self.heater_on, self.heater_duty
        quiet = []
        for z, ch, on_c, off_c, duty, fallback in self._zones:
            if zone_failed[z]:
                heater_duty[z] = fallback
                quiet.append((-_INF, _INF))
                continue
            temp = r[ch]
            if temp is not None:
                if temp < on_c:
                    heater_on[z] = True
                elif temp > off_c:
                    heater_on[z] = False
            heater_duty[z] = duty if heater_on[z] else 0.0
            quiet.append((-_INF, off_c) if heater_on[z] else (on_c, _INF))
        self._heaters_failed, self._heaters_quiet = zone_failed, tuple(quiet)

    def _throttle(self, temps: tuple, failed: list[bool], rise: float) -> None:
        cap, start = self.cap, self.cfg.tpu_throttle_start_c
        for g, temp in enumerate(temps):
            if failed[g]:
                cap[g] = 0.0
                continue
            if temp is None:
                continue
            target = 1.0 if temp <= start else 1.0 - (temp - start) * self._slope
            if target <= cap[g]:
                cap[g] = target if target > 0.0 else 0.0
            else:
                raised = cap[g] + rise
                cap[g] = raised if raised < target else target
        self.caps_full = cap == _FULL

    def _charge(self, t_ns: int, temp: float | None) -> None:
        cfg = self.cfg
        if temp is None or not cfg.charge_min_c <= temp <= cfg.charge_max_c:
            self._charge_ok = 0
            if self.charge_enable:
                self.charge_enable = False
                self._inhibit_logged = True
                why = (f"{self.monitor.describe(S_T_BATTERY)}" if temp is None else
                       f"t_battery_c {temp:.1f} C outside {cfg.charge_min_c:g}..{cfg.charge_max_c:g} C")
                self.events.log(t_ns, "charging inhibited", why)
            return
        if self.charge_enable:
            return
        inside = cfg.charge_min_c + cfg.charge_margin_c <= temp <= cfg.charge_max_c - cfg.charge_margin_c
        self._charge_ok = self._charge_ok + 1 if inside else 0
        if self._charge_ok >= cfg.charge_ok_samples:
            self.charge_enable = True
            if self._inhibit_logged:
                self._inhibit_logged = False
                self.events.log(t_ns, "charging enabled", f"t_battery_c {temp:.1f} C in range "
                                f"for {self._charge_ok} samples")
