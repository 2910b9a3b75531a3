"""Modes and FDIR: SAFE / DEGRADED / NOMINAL (indices of :data:`twin.hal.MODES`).

The flight software starts and restarts in SAFE. Sensor conditions are judged
only on readings the monitor calls OK (:mod:`.validity`); an invalid reading is
its own condition, never a limit violation. Persistence counts samples of the
task that checks (1 Hz by default). Every number is a field of
:class:`~twin.fsw.config.FswConfig` (defaults shown).

FDIR table (persistence in samples; defaults, each a ``FswConfig`` field named below)

| #  | condition                       | persist. | action                                | recovery                   |
|----|---------------------------------|----------|---------------------------------------|----------------------------|
| 1  | ``t_tpu<g>_c`` not OK           | 5        | group g capped to 0; -> DEGRADED      | 30 OK; cap ramps 0.01/s    |
| 2  | ``t_battery_c`` not OK          | 0 / 5    | charging off at once; after 5: heater | 30 OK; charging after 5    |
|    |                                 |          | on fixed duty 0.3; -> DEGRADED        | in range                   |
| 3  | ``t_avionics_c`` not OK         | 5        | heater on fixed duty 0.3; -> DEGRADED | 30 OK                      |
| 4  | battery V or I not OK           | 5        | SoC holds; compute off; -> DEGRADED   | 30 OK                      |
| 5  | battery outside 0..45 C         | 1        | charging inhibited                    | 5 samples 1 C inside       |
| 6  | SoC < 0.60 / 0.50 / 0.40        | 60/30/10 | shed 1: compute off / 2: + optical    | SoC > thr + 0.05 for 60    |
|    |                                 |          | off / 3: -> SAFE                      | and >= 300 s at the stage  |
| 7  | battery < -10 C or > 55 C       | 3        | -> SAFE                               | SAFE exit rule             |
| 8  | TPU group >= 95 C (cap 0 at 92) | 3        | -> SAFE (TPU rail off)                | SAFE exit rule             |
| 9  | 3 task faults within 600 s      | 3rd      | -> SAFE                               | exit rule; dwell restarts  |
| 10 | ``board_boot_count`` changed    | 1        | -> SAFE (board reset its outputs)     | SAFE exit rule             |
| 11 | rail on, no current (UV latch)  | 5        | rail off one tick (re-arms latch)     | 3 cycles, then given up    |
| 12 | budget < TPU idle power         | 60       | TPU rail off (power task)             | spare > idle + 1 kW for 60 |
| 13 | every channel group stale       | 30 s     | -> SAFE ("link lost")                 | SAFE exit rule once frames |
|    | (board silent: link lost)       |          |                                       | are fresh ("link restored")|

Row 1: any invalid state (stale, NaN, range, stuck, board flag). Row 4: ``v_battery_v`` or
``i_battery_a``; the SoC estimate then counts on its own OCV, or holds. Row 11 power-cycles a
latched TPU or optical rail (undervoltage protection), at most 3 times in a row. Row 12 (the
array lost, or an eclipse too deep for even idle chips) is in :mod:`.power`. Row 13 (a serial
unplug, a stopped broker: the executive then hands over the last frame again) measures the
silence as the age of the frame's newest sample, judged once every group is stale
(``monitor.stale_limit_s``): it fires on the tick the board has been silent ``link_lost_safe_s``,
once per loss, in SAFE too.

Fields: 1-4 ``fdir.invalid_samples/recover_samples``, ``thermal.*_fallback_duty``;
5 ``thermal.charge_min_c/max_c/margin_c/ok_samples``; 6 ``power.shed{1,2,3}_soc/_samples``,
``power.shed_hysteresis/unshed_samples/shed_min_dwell_s``; 7 ``fdir.battery_safe_lo_c/hi_c``,
``fdir.deep_samples``; 8 ``thermal.tpu_limit_c``; 9 ``fdir.task_fault_limit/window_s``;
11 ``power.rail_latch_samples/tpu_rail_min_a/optical_rail_min_a/rail_cycle_limit``;
12 ``power.starve_samples/budget_headroom_w``; 13 ``fdir.link_lost_safe_s`` (above ``monitor.stale_limit_s``).

SAFE exit rule: ``v_battery_v``, ``i_battery_a``, ``t_battery_c`` OK, SoC
estimate >= ``safe_exit_soc`` [0.55], shed stage < 3, battery within the
charge range, avionics (if OK) within ``avionics_ok_lo_c..hi_c`` [-20..60 C],
every OK TPU temperature below the throttle start [80 C], no deep condition
(6-stage 3, 7, 8) active (a silent board, 13, fails the first condition):
all held continuously for ``safe_exit_dwell_s`` [300 s]. Then -> NOMINAL, or
DEGRADED while a contained fault (1-4) is active.
DEGRADED -> NOMINAL as soon as the last contained fault has recovered.

In SAFE: TPU and optical rails off, heaters and charging still controlled,
downlink only in predicted contacts. Every action is one entry of the event
log (time, what, why) and counts in ``fdir_events``.
"""
from __future__ import annotations

from collections import deque
from operator import attrgetter, itemgetter

from twin.hal import (CHANNELS, MODES, N_TPU_GROUPS, S_BOARD_BOOT_COUNT, S_I_BATTERY, S_T_AVIONICS, S_T_BATTERY,
                      S_T_TPU, S_V_BATTERY)

from .base import Debounce, EventLog, Task
from .config import FswConfig
from .shedding import LoadShedder
from .soc import SocEstimator
from .validity import OK, SensorMonitor

__all__ = ["ModeManager", "SAFE", "DEGRADED", "NOMINAL"]

SAFE, DEGRADED, NOMINAL = (MODES.index(m) for m in ("SAFE", "DEGRADED", "NOMINAL"))

_tpu_temps = itemgetter(*S_T_TPU)
_active = attrgetter("active")


class ModeManager(Task):
    """The FDIR task: contained-fault flags, deep faults, and the mode; see the module docstring.

    Flags read by other tasks: ``tpu_temp_failed`` (per group; ``tpu_temp_failures``
    counts the True ones), ``battery_temp_failed``, ``avionics_temp_failed``,
    ``power_sensor_failed``, ``link_lost`` (row 13 fired and no fresh frame since).
    """

    def __init__(self, cfg: FswConfig, monitor: SensorMonitor, soc: SocEstimator, shedder: LoadShedder,
                 events: EventLog, rate_hz: float = 1.0):
        super().__init__("fdir", rate_hz)
        self.cfg = cfg
        self.monitor, self.soc, self.shedder, self.events = monitor, soc, shedder, events
        self._batt_safe_c = (cfg.fdir.battery_safe_lo_c, cfg.fdir.battery_safe_hi_c)
        self._tpu_limit_c = cfg.thermal.tpu_limit_c
        self._link_lost_ns = round(cfg.fdir.link_lost_safe_s * 1e9)
        self._reset(0)

    def _reset(self, t_ns: int) -> None:
        if getattr(self, "mode", SAFE) != SAFE:
            self.events.log(t_ns, f"mode {MODES[self.mode]} -> SAFE", "FDIR task restarted")
        f = self.cfg.fdir
        self.mode = SAFE
        self.safe_reason = "restart"
        watch = [(f"t_tpu{g}_c", (ch,), f"TPU group {g} capped to 0") for g, ch in enumerate(S_T_TPU)]
        watch += [("t_battery_c", (S_T_BATTERY,), "battery heater on fallback duty"),
                  ("t_avionics_c", (S_T_AVIONICS,), "avionics heater on fallback duty"),
                  ("battery v/i", (S_V_BATTERY, S_I_BATTERY), "compute off")]
        self._watch = [(Debounce(f.invalid_samples, f.recover_samples), k, name, chans, action)
                       for k, (name, chans, action) in enumerate(watch)]
        self._failed = [False] * len(watch)
        self._any_failed = False
        self._sensors_quiet = True
        self.tpu_temp_failed = [False] * N_TPU_GROUPS
        self.tpu_temp_failures = 0
        self.battery_temp_failed = self.avionics_temp_failed = self.power_sensor_failed = False
        self._batt_deep = Debounce(f.deep_samples, 1)
        self._tpu_hot = [Debounce(f.deep_samples, 1) for _ in range(N_TPU_GROUPS)]
        self._tpu_cool = True
        self._boot_count: float | None = None
        self._safe_ok_since_ns: int | None = None
        self._fault_times: deque[int] = deque()
        self.link_lost = False
        self._last_sample_ns = 0

    @property
    def contained_faults(self) -> list[str]:
        """Names of the active contained faults (table rows 1-4)."""
        return [name for (_, _, name, _, _), bad in zip(self._watch, self._failed) if bad]

    def _step(self, t_ns: int) -> None:
        # With every channel OK and no sensor fault active or pending there is nothing to debounce.
        if self.monitor.invalid_count or not self._sensors_quiet:
            self._sensors(t_ns)

        deep = self._deep(t_ns)
        if deep is not None:
            self.enter_safe(t_ns, deep)
        elif self.mode == SAFE:
            if self._deep_active() or not self._safe_exit_ok(t_ns):
                self._safe_ok_since_ns = None
            elif self._safe_ok_since_ns is None:
                self._safe_ok_since_ns = t_ns
            elif (t_ns - self._safe_ok_since_ns) * 1e-9 >= self.cfg.fdir.safe_exit_dwell_s:
                self._set_mode(t_ns, DEGRADED if self._any_failed else NOMINAL,
                               f"SAFE exit conditions held {self.cfg.fdir.safe_exit_dwell_s:g} s")
        else:
            new = DEGRADED if self._any_failed else NOMINAL
            if new != self.mode:
                faults = self.contained_faults
                self._set_mode(t_ns, new, ", ".join(faults) if faults else "contained faults recovered")

    def _sensors(self, t_ns: int) -> None:
        state = self.monitor.state
        quiet = True
        for deb, k, name, chans, action in self._watch:
            bad = state[chans[0]] != OK or (len(chans) > 1 and state[chans[1]] != OK)
            if (bad != deb.active or deb.count) and deb.update(bad):
                self._sensor_event(t_ns, k, name, chans, action, bad)
            quiet = quiet and not deb.active and not deb.count
        self._sensors_quiet = quiet

    def _sensor_event(self, t_ns: int, k: int, name: str, chans: tuple, action: str, bad: bool) -> None:
        self._failed[k] = bad
        self._any_failed = True in self._failed
        if k < N_TPU_GROUPS:
            self.tpu_temp_failed[k] = bad
            self.tpu_temp_failures = self.tpu_temp_failed.count(True)
        self.battery_temp_failed, self.avionics_temp_failed, self.power_sensor_failed = self._failed[N_TPU_GROUPS:]
        deb = self._watch[k][0]
        if bad:
            states = ", ".join(self.monitor.describe(ch) for ch in chans)
            self.events.log(t_ns, f"{name} failed: {action}", f"{states} for {deb.n_set} samples")
        else:
            self.events.log(t_ns, f"{name} recovered", f"OK for {deb.n_clear} samples")

    def _deep(self, t_ns: int) -> str | None:
        """The reason for a deep fault that appeared this sample, else None."""
        r = self.monitor.readings
        reason = None
        if self.monitor.silent_ns or self.link_lost:
            reason = self._link(t_ns)
        boot = r[S_BOARD_BOOT_COUNT]
        if boot is not None and boot != self._boot_count:
            if self._boot_count is not None:
                reason = f"board_boot_count {self._boot_count:.0f} -> {boot:.0f}"
                self.events.log(t_ns, "board reboot detected", reason)
            self._boot_count = boot
        t_batt = r[S_T_BATTERY]
        if t_batt is not None:
            deb = self._batt_deep
            lo, hi = self._batt_safe_c
            out = not lo <= t_batt <= hi
            if (out != deb.active or deb.count) and deb.update(out) and out:
                f = self.cfg.fdir
                reason = (f"t_battery_c {t_batt:.1f} C outside {f.battery_safe_lo_c:g}..{f.battery_safe_hi_c:g} C "
                          f"for {f.deep_samples} samples")
        limit = self._tpu_limit_c
        hot = not self._tpu_cool
        if not hot:  # max(temps) >= limit, as a plain loop (see twin.fsw.base)
            for ch in S_T_TPU:
                temp = r[ch]
                if temp is None or temp >= limit:
                    hot = True
                    break
        if hot:
            self._tpu_cool = True
            for deb, ch in zip(self._tpu_hot, S_T_TPU):
                temp = r[ch]
                if temp is not None:
                    hot = temp >= limit
                    if (hot != deb.active or deb.count) and deb.update(hot) and hot:
                        reason = (f"{CHANNELS[ch].name} {temp:.1f} C >= {limit:g} C "
                                  f"for {self.cfg.fdir.deep_samples} samples")
                self._tpu_cool = self._tpu_cool and not deb.active and not deb.count
        if self.shedder.stage >= 3 and self.mode != SAFE:
            soc = self.soc.soc
            reason = "shed stage 3" + (f" (SoC {soc:.3f})" if soc is not None else "")
        return reason

    def _link(self, t_ns: int) -> str | None:
        """Row 13: the reason to go SAFE on the tick the board has been silent long enough, else None."""
        silent = self.monitor.silent_ns
        if not silent:
            self.link_lost = False
            gap = (t_ns - self._last_sample_ns) * 1e-9
            self.events.log(t_ns, "link restored", f"fresh samples again after {gap:g} s without one")
            return None
        if self.link_lost or silent < self._link_lost_ns:
            return None
        self.link_lost = True
        self._last_sample_ns = t_ns - silent
        why = f"every channel group stale: no fresh sample for {silent * 1e-9:g} s"
        self.events.log(t_ns, "link lost", why)
        return f"link lost ({why})"

    def _deep_active(self) -> bool:
        return self.shedder.stage >= 3 or self._batt_deep.active or any(map(_active, self._tpu_hot))

    def _safe_exit_ok(self, t_ns: int) -> bool:
        m, f, th = self.monitor, self.cfg.fdir, self.cfg.thermal
        r, state = m.readings, m.state
        t_batt = r[S_T_BATTERY]
        soc = self.soc.soc
        if t_batt is None or soc is None or state[S_V_BATTERY] != OK or state[S_I_BATTERY] != OK:
            return False
        if soc < f.safe_exit_soc or not th.charge_min_c <= t_batt <= th.charge_max_c:
            return False
        t_avi = r[S_T_AVIONICS]
        if t_avi is not None and not f.avionics_ok_lo_c <= t_avi <= f.avionics_ok_hi_c:
            return False
        start = th.tpu_throttle_start_c
        for temp in _tpu_temps(r):
            if temp is not None and temp >= start:
                return False
        return True

    def enter_safe(self, t_ns: int, why: str) -> None:
        """Go to SAFE now (or stay there) and restart the exit dwell."""
        self._safe_ok_since_ns = None
        if self.mode != SAFE:
            self.safe_reason = why
            self._set_mode(t_ns, SAFE, why)

    def note_task_fault(self, t_ns: int, task_name: str) -> None:
        """A task raised at ``t_ns``; enough of them within the window mean SAFE."""
        f = self.cfg.fdir
        times = self._fault_times
        times.append(t_ns)
        self._safe_ok_since_ns = None  # a fault restarts the SAFE exit dwell
        while times and (t_ns - times[0]) * 1e-9 > f.task_fault_window_s:
            times.popleft()
        if len(times) >= f.task_fault_limit:
            self.enter_safe(t_ns, f"{len(times)} task faults within {f.task_fault_window_s:g} s "
                                  f"(last: {task_name})")

    def _set_mode(self, t_ns: int, mode: int, why: str) -> None:
        self.events.log(t_ns, f"mode {MODES[self.mode]} -> {MODES[mode]}", why)
        self.mode = mode
