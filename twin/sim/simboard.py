"""SimBoard: the HAL served in-process by the physics models (the ``sim`` rig).

It behaves as a board does: it boots with every actuator in its safe state,
runs its own watchdog (not serviced for ``watchdog_timeout_s`` -> it reboots,
drops to the safe state and counts a boot), holds the last command, and
reports readings at wire resolution. It runs in lockstep only.

``link_faults`` (the ``sim`` rig passes a :class:`~twin.sim.faults.SimLinkFaults`)
lets a ``disconnect`` link fault silence the board: while one is active at the
requested scenario time, ``step_to`` and ``command`` raise :class:`BoardError`
and the board runs on untouched (no step, commands lost), as a board behind an
unplugged cable does. Without it (the emulator's board) ``link_faults`` is None.
"""
from __future__ import annotations

import numpy as np

from twin import __version__
from twin.hal import CHANNELS, GROUPS, N_CHANNELS, ActuatorCommand, BoardError, BoardInfo, SensorFrame
from twin.sim.faults import FaultInjector, SimLinkFaults
from twin.sim.plant import Actuators, Plant
from twin.sim.sensors import SensorModel

__all__ = ["SimBoard"]

_N_GROUPS = len(GROUPS)
_WIRE_MAX = {i: {"uint8": 0xFF, "uint16": 0xFFFF}[c.wire] for i, c in enumerate(CHANNELS) if c.discrete}
_DISCRETE = [(i, c.hi) for i, c in enumerate(CHANNELS) if c.discrete]


def _as_wire_discrete(v: np.ndarray, valid: list[bool]) -> None:
    """Discrete channels as the wire carries them: a whole number clamped to the
    channel's type, and a non-finite reading as 0 flagged invalid (firmware_bridge.messages)."""
    for ch, hi in _DISCRETE:
        x = float(v[ch])
        if x != x or x in (float("inf"), float("-inf")):
            v[ch] = 0.0
            valid[ch] = False
        else:
            v[ch] = min(float(_WIRE_MAX[ch]), max(0.0, float(round(x))))


class SimBoard:
    """An in-process board over :class:`~twin.sim.plant.Plant` for one scenario and seed."""

    def __init__(self, scenario, seed: int, period_ns: int = 1_000_000_000, faults=(),
                 link_faults: SimLinkFaults | None = None):
        self.info = BoardInfo("sim", "in-process", f"simboard-{__version__}", True)
        self.scenario = scenario
        self.period_ns = period_ns
        root = np.random.SeedSequence(seed)
        plant_seed, sensor_seed, fault_seed = root.spawn(3)
        self.plant = Plant(scenario, np.random.default_rng(plant_seed), dt_s=period_ns / 1e9)
        self.sensors = SensorModel(scenario.sensors, np.random.default_rng(sensor_seed))
        self.faults = FaultInjector([*scenario.faults, *faults], np.random.default_rng(fault_seed))
        self.boot_count = 1
        self._last_kick: int | None = None
        self._last_kick_t_ns = 0
        self._t_ns = 0
        self._last_cmd: tuple | None = None
        self._last_caps: list | None = None
        self._watchdog_ns = int(scenario.sensors.watchdog_timeout_s * 1e9)
        self._open = False
        self.link_faults = link_faults
        self.t_ns = 0  # the last requested step time: scenario time as the link sees it

    async def __aenter__(self) -> "SimBoard":
        self._open = True
        return self

    async def __aexit__(self, *exc) -> None:
        self.safe()
        self._open = False

    def safe(self) -> None:
        """Put every actuator in its safe state (rails off, heaters off, transmitter off)."""
        self.plant.act = Actuators.safe(self.plant.n_sat)
        self._last_cmd = self._last_caps = None

    def reboot(self) -> None:
        """Board reboot: safe state, boot counter up, watchdog re-armed."""
        self.safe()
        self.boot_count += 1
        self._last_kick = None
        self._last_kick_t_ns = self._t_ns

    async def step_to(self, t_ns: int) -> SensorFrame:
        self.t_ns = t_ns
        if self.link_faults is not None and self.link_faults.down(t_ns):
            self.link_faults.refused += 1
            raise BoardError(f"link fault: board disconnected at t={t_ns / 1e9:g} s")
        k = t_ns // self.period_ns
        if k * self.period_ns != t_ns:
            raise BoardError(f"step to {t_ns} ns is not on the board's {self.period_ns} ns grid")
        if k < self.plant.k:
            raise BoardError(f"cannot step back in time: board is at tick {self.plant.k}, asked for {k}")
        while self.plant.k < k:
            self.plant.step()
        self._t_ns = t_ns
        if self._last_kick is not None and t_ns - self._last_kick_t_ns > self._watchdog_ns:
            self.reboot()
        self.faults.update(t_ns / 1e9, self.plant, self)
        return self._frame(t_ns)

    def _frame(self, t_ns: int) -> SensorFrame:
        v = self.sensors.read(self.plant, self.boot_count)
        valid = [True] * N_CHANNELS
        sample_t = [t_ns] * _N_GROUPS
        if self.faults.active_sensor:
            self.faults.apply_sensors(v, valid, sample_t, t_ns)
            _as_wire_discrete(v, valid)
            with np.errstate(over="ignore"):  # beyond float32 range reads as inf, as on the wire
                values = v.astype(np.float32).tolist()
        else:  # noise-free physics stays far inside float32 range: no need to pay for errstate
            values = v.astype(np.float32).tolist()
        return SensorFrame(t_ns, values, valid, tuple(sample_t))

    async def command(self, cmd: ActuatorCommand) -> None:
        if self.link_faults is not None and self.link_faults.down(self.t_ns):
            self.link_faults.refused += 1
            raise BoardError(f"link fault: board disconnected at t={self.t_ns / 1e9:g} s, command lost")
        if cmd.watchdog_kick != self._last_kick:
            self._last_kick = cmd.watchdog_kick
            self._last_kick_t_ns = self._t_ns
        # The kick and the mode change every tick, the TPU caps most ticks; the rest of the
        # hardware state rarely does: write only what changed.
        act = self.plant.act
        if cmd.tpu_cap != self._last_caps:
            self._last_caps = cmd.tpu_cap
            act.tpu_cap[:] = cmd.tpu_cap
        state = (cmd.heater_duty, cmd.switch_tpu, cmd.switch_optical, cmd.isl_enable,
                 cmd.downlink_enable, cmd.charge_enable)
        if state == self._last_cmd:
            return
        self._last_cmd = state
        if act.switch_tpu[0] and not cmd.switch_tpu or act.switch_optical[0] and not cmd.switch_optical:
            self.plant.uvlo_latched[:] = False  # commanding a rail off re-arms undervoltage protection
        act.heater_duty[:] = cmd.heater_duty
        act.switch_tpu[:] = cmd.switch_tpu
        act.switch_optical[:] = cmd.switch_optical
        act.isl_enable[:] = cmd.isl_enable
        act.downlink[:] = cmd.downlink_enable
        act.charge_enable[:] = cmd.charge_enable
