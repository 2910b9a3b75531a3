"""Link scheduling: the ground transmitter, the optical inter-satellite links, the downlink queue.

- Downlink: the transmitter is enabled only inside a predicted contact (from
  the onboard :class:`~twin.fsw.contact_plan.ContactPlanner`, widened by
  ``contact_margin_s`` each side for prediction error), in every mode. Bytes
  leave the queue only over ticks when the transmitter was on and the receiver
  reported ``ground_lock`` = 1 (an invalid lock reading moves nothing), at the
  assumed ``downlink_rate_bps``.
- Queue input each step: housekeeping at ``housekeeping_bytes_per_s``, one
  ``event_bytes`` report per new FDIR event, and compute results at
  ``compute_bytes_per_tpu_s`` per chip-second actually run (chips online times
  ``min(cap, utilization)`` of the command applied). Fractions of a byte carry
  over, so the books stay in whole bytes.
- Optical links: enabled only while the compute workload runs (the TPU rail is
  on this tick) and power allows it (not SAFE, shed stage < 2); an optical rail
  that reads no current while on is power-cycled by a :class:`RailGuard`.
"""
from __future__ import annotations

from twin.hal import S_GROUND_LOCK, S_I_RAIL, S_TPU_ONLINE, ActuatorCommand

from .base import EventLog, Task
from .config import FswConfig
from .contact_plan import ContactPlanner
from .downlink_queue import COMPUTE, EVENTS, HOUSEKEEPING, DownlinkQueue
from .modes import SAFE, ModeManager
from .power import PowerManager
from .shedding import RailGuard
from .validity import SensorMonitor

__all__ = ["LinkScheduler"]

_S_I_OPTICAL = S_I_RAIL["optical"]


class LinkScheduler(Task):
    """Outputs: ``downlink_enable``, ``optical_on``; keeps ``queue`` and ``next_contact_s``, ``oldest_age_s``."""

    def __init__(self, cfg: FswConfig, monitor: SensorMonitor, modes: ModeManager, power: PowerManager,
                 planner: ContactPlanner, queue: DownlinkQueue, events: EventLog, rate_hz: float = 1.0):
        super().__init__("links", rate_hz)
        self.cfg = cfg
        self.monitor, self.modes, self.power, self.planner = monitor, modes, power, planner
        self.queue, self.events = queue, events
        p = cfg.power
        self.rail_guard = RailGuard("optical", p.optical_rail_min_a, p.rail_latch_samples, p.rail_cycle_limit, events)
        #: The command sent last tick (set by the flight software): what the links and TPUs did since.
        self.applied = ActuatorCommand()
        self._bytes_per_s = cfg.links.downlink_rate_bps / 8.0
        self._util = cfg.tpu.utilization_demand
        self._reset(0)

    def _reset(self, t_ns: int) -> None:
        # The queue lives in mass memory and survives a restart; only the schedule restarts.
        self.planner.reset()
        self.rail_guard.reset()
        self.downlink_enable = False
        self.optical_on = False
        self.next_contact_s = -1.0
        self.oldest_age_s = self.queue.oldest_age_s(t_ns * 1e-9)
        self._carry = [0.0, 0.0, 0.0]
        self._events_seen = self.events.count

    def _step(self, t_ns: int) -> None:
        cfg, r, q, plan, applied = self.cfg.links, self.monitor.readings, self.queue, self.planner, self.applied
        prev, self._t_prev_ns = self._t_prev_ns, t_ns  # elapsed_s(), written out
        t_s, dt = t_ns * 1e-9, (t_ns - prev) * 1e-9 if prev is not None and t_ns > prev else self.period_s
        plan.update(t_s)

        count = self.events.count
        if count != self._events_seen:
            self._generate(EVENTS, (count - self._events_seen) * cfg.event_bytes, t_s)
            self._events_seen = count
        carry = self._carry  # _generate written out for the two inputs of every tick
        total = carry[HOUSEKEEPING] + cfg.housekeeping_bytes_per_s * dt
        whole = int(total)
        carry[HOUSEKEEPING] = total - whole
        if whole:
            q.put(HOUSEKEEPING, whole, t_s)
        if applied.switch_tpu:
            util = self._util
            chip_s = 0.0
            for ch, cap in zip(S_TPU_ONLINE, applied.tpu_cap):
                online = r[ch]
                if online is not None:
                    chip_s += online * (cap if cap < util else util)
            total = carry[COMPUTE] + cfg.compute_bytes_per_tpu_s * chip_s * dt
            whole = int(total)
            carry[COMPUTE] = total - whole
            if whole:
                q.put(COMPUTE, whole, t_s)

        if applied.downlink_enable:
            lock = r[S_GROUND_LOCK]
            if lock is not None and lock >= 0.5:
                q.send(int(self._bytes_per_s * dt))

        self.downlink_enable = plan.in_contact
        self.next_contact_s = plan.next_contact
        self.oldest_age_s = q.oldest_age_s(t_s)

        guard, power = self.rail_guard, self.power
        guard.update(t_ns, applied.switch_optical, r[_S_I_OPTICAL], True)
        self.optical_on = (power.tpu_on and self.modes.mode != SAFE and power.shedder.stage < 2
                           and not guard.cycle_now and not guard.failed)

    def _generate(self, prio: int, nbytes: float, t_s: float) -> None:
        total = self._carry[prio] + nbytes
        whole = int(total)
        self._carry[prio] = total - whole
        if whole:
            self.queue.put(prio, whole, t_s)
