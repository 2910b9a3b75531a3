"""Faults scheduled in scenario time, applied inside the simulated board.

Sensor faults act on one channel's reading (the physics is untouched):
``nan``, ``stuck`` (holds the reading from onset), ``offset`` (adds ``value``),
``off`` (board flags the channel invalid), ``stale`` (the channel's whole group
stops being sampled), ``range`` (reads ``value``, e.g. beyond the channel's range),
``noise`` (adds Gaussian noise of sigma ``value``).
Device faults act on the hardware: ``heater_off`` / ``heater_on`` (a heater
zone failed), ``tpu_crash`` (``value`` chips of a TPU group crash), ``string_loss``
(``value`` solar strings lost), ``isl_fail`` (an optical link fails), ``reboot``
(the board reboots).
Link faults act between the twin and a board (applied by the rig's link, not
by the board): ``drop`` (each frame lost with probability ``value``), ``delay``
(``value`` seconds of wall time), ``duplicate`` / ``corrupt`` (probability ``value``),
``reorder`` (probability ``value`` that a frame swaps with the next),
``disconnect`` (the link is down: unplugged cable, stopped broker). Their
``target`` is the direction: ``to_board``, ``to_twin`` or empty for both.
On the simulated rig :class:`SimLinkFaults` applies ``disconnect`` (the board
goes silent); emulated and bench rigs apply them in
:class:`firmware_bridge.transports.faulty.FaultyLink`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from twin.hal import CHANNEL_INDEX, CHANNELS, GROUPS, HEATER_ZONES, N_ISL, N_TPU_GROUPS
from twin.params import param
from twin.timeparse import parse_duration

_GROUP_MEMBERS = [np.array([i for i, c in enumerate(CHANNELS) if c.group == g]) for g in GROUPS]

__all__ = ["FaultSpec", "FaultInjector", "SimLinkFaults", "SENSOR_FAULTS", "DEVICE_FAULTS", "LINK_FAULTS",
           "LINK_DIRECTIONS", "ALL_FAULTS", "unsupported_link_fault"]

SENSOR_FAULTS = ("nan", "stuck", "offset", "off", "stale", "range", "noise")
DEVICE_FAULTS = ("heater_off", "heater_on", "tpu_crash", "string_loss", "isl_fail", "reboot")
LINK_FAULTS = ("drop", "delay", "duplicate", "reorder", "corrupt", "disconnect")
ALL_FAULTS = SENSOR_FAULTS + DEVICE_FAULTS + LINK_FAULTS
LINK_DIRECTIONS = ("", "to_board", "to_twin")
_LINK_PROBABILITY = ("drop", "duplicate", "reorder", "corrupt")
_MAX_LINK_DELAY_S = 60.0


def _target_ok(kind: str, target: str) -> str | None:
    if kind in SENSOR_FAULTS:
        return None if target in CHANNEL_INDEX else f"unknown channel {target!r}"
    if kind in ("heater_off", "heater_on"):
        return None if target in HEATER_ZONES else f"heater zone must be one of {', '.join(HEATER_ZONES)}"
    if kind == "tpu_crash":
        return None if target in {f"tpu{g}" for g in range(N_TPU_GROUPS)} else "target must be tpu0..tpu3"
    if kind == "isl_fail":
        return None if target in {f"isl{k}" for k in range(N_ISL)} else "target must be isl0..isl3"
    if kind in LINK_FAULTS:
        return None if target in LINK_DIRECTIONS else "target must be to_board, to_twin or empty (both ways)"
    return None


def _value_ok(kind: str, value: float) -> str | None:
    if kind in _LINK_PROBABILITY and not 0.0 <= value <= 1.0:
        return f"value is a probability, must be within 0 .. 1, got {value!r}"
    if kind == "delay" and not 0.0 <= value <= _MAX_LINK_DELAY_S:
        return f"value is a delay in seconds, must be within 0 .. {_MAX_LINK_DELAY_S:g}, got {value!r}"
    return None


@dataclass(frozen=True)
class FaultSpec:
    """One scheduled fault: from ``at`` for ``duration`` (empty: until the end)."""

    at: str = param("0s", "duration", doc="onset, scenario time since epoch (e.g. 2h)")
    kind: str = param("nan", doc=f"one of {', '.join(ALL_FAULTS)}")
    target: str = param("", doc="channel name, heater zone, tpuN or islN; link: to_board, to_twin or empty")
    duration: str = param("", "duration", doc="how long; empty for the rest of the run")
    value: float = param(0.0, doc="offset, reading, noise sigma, chip or string count; link: probability or delay s")

    def __post_init__(self) -> None:
        if self.kind not in ALL_FAULTS:
            raise ValueError(f"unknown fault kind {self.kind!r} (known: {', '.join(ALL_FAULTS)})")
        problem = _target_ok(self.kind, self.target) or _value_ok(self.kind, self.value)
        if problem:
            raise ValueError(f"fault {self.kind}: {problem}")
        parse_duration(self.at) if self.at not in ("0", "0s") else None
        if self.duration:
            parse_duration(self.duration)

    @property
    def start_s(self) -> float:
        return 0.0 if self.at in ("0", "0s") else parse_duration(self.at)

    @property
    def end_s(self) -> float:
        return self.start_s + parse_duration(self.duration) if self.duration else math.inf

    def active_at(self, t_s: float) -> bool:
        """True while the fault acts at scenario time ``t_s``: from its onset (inclusive) to its end (exclusive).

        The one window every rig uses (the simulated board, ``FaultyLink``, the test session)."""
        return self.start_s <= t_s < self.end_s


def unsupported_link_fault(kind: str, kinds, where: str) -> str | None:
    """None when ``kinds`` (what a link can inject; None: no link faults at all) holds ``kind``; otherwise the
    one message every rig gives: ``"<where> cannot inject link fault '<kind>' (it can: ...)"``."""
    if kinds is not None and kind in kinds:
        return None
    can = ", ".join(sorted(kinds)) if kinds else "none"
    return f"{where} cannot inject link fault {kind!r} (it can: {can})"


class FaultInjector:
    """Applies scheduled faults to the plant (device) and to readings (sensor).

    Link faults are carried (``link_faults``) but not applied here: the rig's
    link applies them.
    """

    def __init__(self, specs, rng: np.random.Generator):
        self.rng = rng
        self._entries: list[tuple[int, FaultSpec]] = []  # (serial, spec) by onset; serials key per-fault state
        self._held: dict[int, float] = {}
        self._held_group: dict[int, tuple[int, np.ndarray]] = {}
        self._started: set[int] = set()
        self._ended: set[int] = set()
        self.active_sensor: list[tuple[int, FaultSpec]] = []
        for spec in specs:
            self.add(spec)

    @property
    def specs(self) -> list[FaultSpec]:
        return [f for _, f in self._entries]

    @property
    def link_faults(self) -> list[FaultSpec]:
        return [f for _, f in self._entries if f.kind in LINK_FAULTS]

    def add(self, spec: FaultSpec) -> None:
        """Schedule one more fault (also while a run is under way, e.g. from a test)."""
        self._entries.append((len(self._entries), spec))
        self._entries.sort(key=lambda e: (e[1].start_s, e[0]))

    def update(self, t_s: float, plant, board) -> None:
        """Start and end faults at scenario time ``t_s``."""
        self.active_sensor = []
        for i, f in self._entries:
            if f.start_s > t_s:
                break
            active = t_s < f.end_s
            if f.kind in SENSOR_FAULTS:
                if active:
                    self.active_sensor.append((i, f))
                else:
                    self._held.pop(i, None)
                    self._held_group.pop(i, None)
                continue
            if f.kind in LINK_FAULTS:
                continue
            if i not in self._started:
                self._started.add(i)
                self._start_device(f, plant, board)
            elif not active and f.end_s != math.inf and i not in self._ended:
                self._ended.add(i)
                self._end_device(f, plant)

    def _start_device(self, f: FaultSpec, plant, board) -> None:
        if f.kind in ("heater_off", "heater_on"):
            plant.heater_fault[:, HEATER_ZONES.index(f.target)] = -1 if f.kind == "heater_off" else 1
        elif f.kind == "tpu_crash":
            plant.radiation.inject_crash(0, int(f.target[3:]), plant.k * plant.dt_s, max(1, int(f.value)))
        elif f.kind == "string_loss":
            plant.solar.strings_lost[:] = int(f.value)
        elif f.kind == "isl_fail":
            plant.isl_failed[:, int(f.target[3:])] = True
        elif f.kind == "reboot":
            board.reboot()

    def _end_device(self, f: FaultSpec, plant) -> None:
        if f.kind in ("heater_off", "heater_on"):
            plant.heater_fault[:, HEATER_ZONES.index(f.target)] = 0
        elif f.kind == "string_loss":
            plant.solar.strings_lost[:] = 0
        elif f.kind == "isl_fail":
            plant.isl_failed[:, int(f.target[3:])] = False

    def apply_sensors(self, v: np.ndarray, valid: list[bool], sample_t_ns: list[int], t_ns: int) -> None:
        """Corrupt readings ``v`` (float64 channel vector) in place for the active sensor faults."""
        for i, f in self.active_sensor:
            ch = CHANNEL_INDEX[f.target]
            kind = f.kind
            if kind == "nan":
                v[ch] = math.nan
            elif kind == "stuck":
                v[ch] = self._held.setdefault(i, float(v[ch]))
            elif kind == "offset":
                v[ch] += f.value
            elif kind == "off":
                valid[ch] = False
            elif kind == "range":
                v[ch] = f.value
            elif kind == "noise":
                v[ch] += self.rng.normal(0.0, f.value)
            elif kind == "stale":
                g = GROUPS.index(CHANNELS[ch].group)
                members = _GROUP_MEMBERS[g]
                held_t, held_v = self._held_group.setdefault(i, (t_ns, v[members].copy()))
                sample_t_ns[g] = held_t
                v[members] = held_v


class SimLinkFaults:
    """Link faults on the simulated rig: only ``disconnect``, which makes the board silent.

    The board calls :meth:`down` with the scenario time of each step and
    command; while a disconnect is active there, the step or command raises
    :class:`twin.hal.BoardError` (the physics runs on: after the outage the
    board catches up to the requested time, as a real board would have).
    """

    kinds = frozenset({"disconnect"})

    def __init__(self, specs=()):
        self._specs: list[FaultSpec] = []
        self.refused = 0
        for spec in specs:
            self.add(spec)

    def add(self, spec: FaultSpec) -> None:
        """Schedule a link fault; ``ValueError`` for a kind this rig cannot inject."""
        problem = unsupported_link_fault(spec.kind, self.kinds, "the simulated rig")
        if problem:
            raise ValueError(problem)
        self._specs.append(spec)

    def down(self, t_ns: int) -> bool:
        """True while a disconnect is active at scenario time ``t_ns``."""
        t_s = t_ns / 1e9
        return any(s.active_at(t_s) for s in self._specs)
