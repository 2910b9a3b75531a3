"""The flight software as the executive sees it: tasks in order, one frame in, one command out.

Per tick the executive calls :meth:`FlightSoftware.on_frame`, steps the tasks
due (in this order: monitor, soc, fdir, thermal, power, links, watchdog), then
:meth:`~FlightSoftware.command` and :meth:`~FlightSoftware.housekeeping`. Tasks
share state by reference: each reads the outputs of those before it this tick
(and of those after it from the previous tick).
"""
from __future__ import annotations

import dataclasses

from twin.hal import FSW_HOUSEKEEPING_FIELDS, N_ISL, N_TPU_GROUPS, ActuatorCommand, FswHousekeeping, SensorFrame

from .base import EventLog, Task
from .config import FswConfig
from .contact_plan import ContactPlanner
from .downlink_queue import DownlinkQueue
from .links import LinkScheduler
from .modes import SAFE, ModeManager
from .power import PowerManager
from .shedding import LoadShedder
from .soc import SocEstimator
from .thermal import ThermalController
from .validity import SensorMonitor
from .watchdog import WatchdogService

__all__ = ["FlightSoftware"]

_NAN = float("nan")

# Both records are built positionally every tick (three times cheaper than by keyword); this is
# the order the calls below are written in, checked once against the HAL.
_COMMAND_ORDER = ("heater_duty", "switch_tpu", "switch_optical", "tpu_cap", "isl_enable", "downlink_enable",
                  "charge_enable", "watchdog_kick", "fsw_mode")
_HOUSEKEEPING_ORDER = ("mode", "shed_stage", "soc_est", "compute_budget_w", "next_contact_s", "next_eclipse_s",
                       "queue_bytes", "generated_bytes", "downlinked_bytes", "dropped_bytes", "oldest_age_s",
                       "invalid_channels", "fdir_events", "task_faults", "watchdog_ok")
if (tuple(f.name for f in dataclasses.fields(ActuatorCommand)) != _COMMAND_ORDER
        or FSW_HOUSEKEEPING_FIELDS != _HOUSEKEEPING_ORDER):
    raise ImportError("twin.hal changed ActuatorCommand or FswHousekeeping fields: update twin.fsw.flight_software")


def _unit(x: float) -> float:
    return x if 0.0 <= x <= 1.0 else (1.0 if x > 1.0 else 0.0)  # NaN -> 0


class FlightSoftware:
    """Thermal, power, links and FDIR for one satellite; the executive's contract.

    Attributes beyond the contract, for tests and summaries: ``event_log``
    (:class:`~twin.fsw.base.EventLog` of FDIR actions), ``fdir_events``,
    ``task_faults``, ``last_command``, and the tasks by role (``monitor``,
    ``soc``, ``modes``, ``thermal``, ``power``, ``links``, ``watchdog``) with
    the shared ``shedder``, ``planner`` and ``queue``.
    """

    def __init__(self, config: FswConfig | None = None):
        cfg = self.config = config if config is not None else FswConfig()
        r = cfg.rates
        self.event_log = EventLog()
        self.monitor = SensorMonitor(cfg.monitor, r.monitor_hz)
        self.soc = SocEstimator(cfg.battery, self.monitor, cfg.monitor.stale_limit_s, r.soc_hz)
        self.shedder = LoadShedder(cfg.power, self.event_log)
        self.planner = ContactPlanner(cfg.orbit, cfg.stations, cfg.min_elevation_deg, cfg.links.contact_margin_s)
        self.queue = DownlinkQueue(int(cfg.links.buffer_bytes), cfg.links.chunk_s)
        self.modes = ModeManager(cfg, self.monitor, self.soc, self.shedder, self.event_log, r.fdir_hz)
        self.thermal = ThermalController(cfg.thermal, self.monitor, self.modes, self.event_log, r.thermal_hz)
        self.power = PowerManager(cfg, self.monitor, self.soc, self.modes, self.thermal, self.shedder,
                                  self.planner, self.event_log, r.power_hz)
        self.links = LinkScheduler(cfg, self.monitor, self.modes, self.power, self.planner, self.queue,
                                   self.event_log, r.links_hz)
        self.tasks: list[Task] = [self.monitor, self.soc, self.modes, self.thermal, self.power, self.links]
        self.health: dict[str, bool] = {}
        self._healthy = self.health.values()  # a live view
        self.watchdog = WatchdogService(self.health, self.tasks, r.watchdog_hz)
        self.tasks.append(self.watchdog)
        self.task_faults = 0
        self.command_faults = 0
        self.reset(0)

    @property
    def fdir_events(self) -> int:
        return self.event_log.count

    def reset(self, t_ns: int) -> None:
        """Boot or restart: every task back to its initial state and the mode SAFE.

        Estimators re-initialise on the next frame. The downlink queue (mass
        memory), the event log and the cumulative counters survive.
        """
        for task in self.tasks:
            task.reset(t_ns)
            self.health[task.name] = True
        self.last_command = ActuatorCommand()
        self.power.applied = self.links.applied = self.last_command

    def on_frame(self, frame: SensorFrame) -> None:
        """The board's frame for this tick, read by the tasks that run after it."""
        self.monitor.frame = frame  # SensorMonitor.set_frame, without the call

    def command(self) -> ActuatorCommand:
        """The merged command for this tick; never raises (falls back to the safe state and counts it)."""
        try:
            cmd = self._merge()
        except Exception:  # a bug here must not stop the loop: send the safe state, keep the watchdog starved
            self.command_faults += 1
            last = self.last_command
            cmd = ActuatorCommand(heater_duty=list(last.heater_duty), charge_enable=last.charge_enable,
                                  watchdog_kick=last.watchdog_kick)
        self.last_command = self.power.applied = self.links.applied = cmd
        return cmd

    def _merge(self) -> ActuatorCommand:
        if not all(self._healthy):
            self._count_faults()
        modes, thermal, power, links = self.modes, self.thermal, self.power, self.links
        safe = modes.mode == SAFE
        tpu_on = power.tpu_on and not safe
        if tpu_on:
            level = power.cap
            if not 0.0 <= level <= 1.0:
                level = _unit(level)
            if thermal.caps_full and not modes.tpu_temp_failures:
                caps = [level] * N_TPU_GROUPS
            else:
                failed = modes.tpu_temp_failed
                caps = [0.0 if failed[g] else (c if c < level else level) for g, c in enumerate(thermal.cap)]
        else:
            caps = [0.0] * N_TPU_GROUPS
        optical = links.optical_on and tpu_on
        d0, d1 = thermal.heater_duty
        return ActuatorCommand(
            [d0 if 0.0 <= d0 <= 1.0 else _unit(d0), d1 if 0.0 <= d1 <= 1.0 else _unit(d1)],
            tpu_on, optical, caps, [optical] * N_ISL, links.downlink_enable, thermal.charge_enable,
            self.watchdog.kick, modes.mode)

    def _count_faults(self) -> None:
        """Count each task that raised this tick (it is unhealthy and was started this tick)."""
        now = max(task.t_attempt_ns for task in self.tasks)
        for task in self.tasks:
            if not self.health.get(task.name, True) and task.t_attempt_ns == now:
                self.task_faults += 1
                self.modes.note_task_fault(now, task.name)

    def housekeeping(self) -> FswHousekeeping:
        """This tick's :class:`~twin.hal.FswHousekeeping` (a new record each call)."""
        q, soc = self.queue, self.soc.soc
        return FswHousekeeping(
            self.modes.mode, self.shedder.stage, _NAN if soc is None else soc, self.power.budget_w,
            self.links.next_contact_s, self.power.next_eclipse_s, float(q.total_queued), float(q.total_generated),
            float(q.total_downlinked), float(q.total_dropped), self.links.oldest_age_s, self.monitor.invalid_count,
            self.event_log.count, self.task_faults, self.watchdog.ok)
