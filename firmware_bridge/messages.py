"""Conversion between the HAL types and the dialect's messages.

=====================  ==========================================================
HAL                    messages
=====================  ==========================================================
SensorFrame            SC_THERMAL_FRAME, SC_POWER_FRAME, SC_STATUS_FRAME (one per
                       channel group, :data:`FRAME_GROUPS`)
ActuatorCommand        SC_ACTUATOR_COMMAND (+ ``cmd_seq``, ``t_ns``)
FswHousekeeping        SC_FSW_HOUSEKEEPING (+ ``t_ns``)
a fault to inject      SC_FAULT_INJECT (test benches: emulated boards only)
=====================  ==========================================================

What the wire carries, hence what a round trip returns:

* analog channels: float32 (NaN and infinities kept; a value beyond float32's
  range becomes an infinity, where packing would otherwise fail);
* discrete channels: the integer (rounded half to even, clamped to the wire
  type); a non-finite discrete value goes as 0 with its valid bit cleared;
* commands: ``cmd.quantized()``; housekeeping: float fields as float32 or
  float64 as the XML says, integer fields clamped to their wire type.

So a round trip is exact for every value the wire represents, NaN included.
Field names and types are checked against the channel table at first use
(:class:`~firmware_bridge.dialect.DialectError` on any mismatch).
"""
from __future__ import annotations

import functools
import math
import struct
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from twin.hal import (CHANNELS, FSW_HOUSEKEEPING_FIELDS, GROUPS, ActuatorCommand, FswHousekeeping,
                      SensorFrame)

from .dialect import XML_PATH, DialectError, load_dialect

__all__ = ["FrameGroup", "FRAME_GROUPS", "COMMAND_MESSAGE", "HOUSEKEEPING_MESSAGE", "FAULT_INJECT_MESSAGE",
           "FaultInjectFields", "fault_inject_message", "fault_inject_fields", "FrameAssemblyError",
           "message_class", "check_dialect", "frame_to_messages", "messages_to_frame", "quantize_frame", "command_to_message",
           "message_to_command", "housekeeping_to_message", "message_to_housekeeping"]

COMMAND_MESSAGE = "SC_ACTUATOR_COMMAND"
HOUSEKEEPING_MESSAGE = "SC_FSW_HOUSEKEEPING"
#: Command class: a board must accept it only signed (see ``hil_rigs.board_server``).
FAULT_INJECT_MESSAGE = "SC_FAULT_INJECT"
_WIRE_TYPE = {"float32": "float", "uint8": "uint8_t", "uint16": "uint16_t"}
_UINT_MAX = {"uint8_t": 0xFF, "uint16_t": 0xFFFF, "uint32_t": 0xFFFF_FFFF, "uint64_t": 2**64 - 1}
#: Smallest magnitude that rounds to infinity in float32 (struct.pack("f") raises there).
_F32_OVERFLOW = (2 - 2**-24) * 2.0**127
_F32 = struct.Struct("<f")


@dataclass(frozen=True)
class FrameGroup:
    """One channel group and its message: ``channels`` in table order, which is also the valid-bit order."""

    group: str
    message: str
    channels: tuple[int, ...]
    fields: tuple[str, ...]
    discrete_max: tuple[int | None, ...]  # None for analog channels


FRAME_GROUPS: tuple[FrameGroup, ...] = tuple(
    FrameGroup(g, f"SC_{g.upper()}_FRAME",
               tuple(i for i, c in enumerate(CHANNELS) if c.group == g),
               tuple(c.name for c in CHANNELS if c.group == g),
               tuple(None if not c.discrete else _UINT_MAX[_WIRE_TYPE[c.wire]] for c in CHANNELS if c.group == g))
    for g in GROUPS)


class FrameAssemblyError(ValueError):
    """The messages given do not make one sensor frame (a group missing, or times disagree)."""


def _f32(x: float) -> float:
    """``x`` rounded to float32 as packing will round it, so a message holds exactly what it will carry."""
    return math.copysign(math.inf, x) if abs(x) >= _F32_OVERFLOW else _F32.unpack(_F32.pack(x))[0]


def _wire_converter(ftype: str) -> Callable[[Any], Any]:
    if ftype == "float":
        return _f32
    if ftype == "double":
        return float
    hi = _UINT_MAX[ftype]
    return lambda v: min(hi, max(0, int(v)))


def message_class(name: str) -> type:
    """The generated class of message ``name`` (e.g. ``"SC_THERMAL_FRAME"``)."""
    return getattr(load_dialect(), f"MAVLink_{name.lower()}_message")


@functools.cache
def _bindings() -> dict[str, Any]:
    """Classes and per-field converters, after checking the dialect against the HAL."""
    problems = []

    def expect(name: str, fields: tuple[str, ...], types: tuple[str, ...] | None = None) -> type:
        cls = message_class(name)
        if tuple(cls.fieldnames) != fields:
            problems.append(f"{name} fields {cls.fieldnames} != {list(fields)}")
        elif types is not None and tuple(cls.fieldtypes) != types:
            problems.append(f"{name} types {cls.fieldtypes} != {list(types)}")
        return cls

    frames = [expect(s.message, ("t_ns", "sample_t_ns", "valid") + s.fields,
                     ("uint64_t", "uint64_t", "uint16_t") + tuple(_WIRE_TYPE[CHANNELS[i].wire] for i in s.channels))
              for s in FRAME_GROUPS]
    command = expect(COMMAND_MESSAGE, ("cmd_seq", "t_ns") + tuple(ActuatorCommand.__dataclass_fields__))
    hk = expect(HOUSEKEEPING_MESSAGE, ("t_ns",) + FSW_HOUSEKEEPING_FIELDS)
    if problems:
        raise DialectError("dialect disagrees with the HAL channel table", XML_PATH, "\n".join(problems))
    return {"frames": frames, "command": command, "hk": hk,
            "cmd_conv": [_wire_converter(t) for t in command.fieldtypes[2:]],
            "hk_conv": [_wire_converter(t) for t in hk.fieldtypes[1:]]}


def check_dialect() -> None:
    """Raise :class:`~firmware_bridge.dialect.DialectError` if the dialect disagrees with the HAL."""
    _bindings()


def frame_to_messages(frame: SensorFrame) -> list:
    """The three group messages of ``frame``, in :data:`FRAME_GROUPS` order."""
    out = []
    for g, (spec, cls) in enumerate(zip(FRAME_GROUPS, _bindings()["frames"])):
        mask, args = 0, []
        for bit, (ch, hi) in enumerate(zip(spec.channels, spec.discrete_max)):
            x, ok = frame.values[ch], bool(frame.valid[ch])
            if hi is None:
                args.append(_f32(x))
            elif math.isfinite(x):
                args.append(min(hi, max(0, round(x))))
            else:
                args.append(0)
                ok = False
            mask |= ok << bit
        out.append(cls(frame.t_ns, frame.sample_t_ns[g], mask, *args))
    return out


def messages_to_frame(msgs: Iterable) -> SensorFrame:
    """Assemble a frame from its group messages (any order; other message types are ignored).

    Raises :class:`FrameAssemblyError` when a group is missing or the groups' ``t_ns`` differ.
    """
    by_type = {m.get_type(): m for m in msgs}
    missing = [s.message for s in FRAME_GROUPS if s.message not in by_type]
    if missing:
        raise FrameAssemblyError(f"missing {', '.join(missing)}")
    group_msgs = [by_type[s.message] for s in FRAME_GROUPS]
    times = {m.t_ns for m in group_msgs}
    if len(times) != 1:
        raise FrameAssemblyError(f"group messages disagree on t_ns: {sorted(times)}")
    values = [math.nan] * len(CHANNELS)
    valid = [False] * len(CHANNELS)
    for spec, m in zip(FRAME_GROUPS, group_msgs):
        for bit, (ch, name) in enumerate(zip(spec.channels, spec.fields)):
            values[ch] = float(getattr(m, name))
            valid[ch] = bool(m.valid >> bit & 1)
    return SensorFrame(times.pop(), values, valid, tuple(m.sample_t_ns for m in group_msgs))


def quantize_frame(frame: SensorFrame) -> SensorFrame:
    """``frame`` exactly as it arrives after crossing the wire."""
    return messages_to_frame(frame_to_messages(frame))


def command_to_message(cmd: ActuatorCommand, seq: int, t_ns: int = 0):
    """SC_ACTUATOR_COMMAND carrying ``cmd.quantized()``, sequence number ``seq`` (mod 2**32)."""
    b = _bindings()
    q = cmd.quantized()
    for name in ("heater_duty", "tpu_cap", "isl_enable"):
        want = b["command"].array_lengths[b["command"].ordered_fieldnames.index(name)]
        if len(getattr(q, name)) != want:
            raise ValueError(f"ActuatorCommand.{name} has {len(getattr(q, name))} entries, the wire {want}")
    args = []
    for name, conv in zip(ActuatorCommand.__dataclass_fields__, b["cmd_conv"]):
        v = getattr(q, name)
        args.append([conv(x) for x in v] if isinstance(v, list) else conv(v))
    return b["command"](seq & 0xFFFF_FFFF, t_ns, *args)


def message_to_command(msg) -> ActuatorCommand:
    """The ActuatorCommand an SC_ACTUATOR_COMMAND carries (its ``cmd_seq`` and ``t_ns`` stay on the message)."""
    return ActuatorCommand(
        heater_duty=[float(x) for x in msg.heater_duty], switch_tpu=bool(msg.switch_tpu),
        switch_optical=bool(msg.switch_optical), tpu_cap=[float(x) for x in msg.tpu_cap],
        isl_enable=[bool(x) for x in msg.isl_enable], downlink_enable=bool(msg.downlink_enable),
        charge_enable=bool(msg.charge_enable), watchdog_kick=int(msg.watchdog_kick), fsw_mode=int(msg.fsw_mode))


_HK_TYPES = {name: type(getattr(FswHousekeeping(), name)) for name in FSW_HOUSEKEEPING_FIELDS}


def housekeeping_to_message(hk: FswHousekeeping, t_ns: int = 0):
    """SC_FSW_HOUSEKEEPING for ``hk`` at tick time ``t_ns``."""
    b = _bindings()
    return b["hk"](t_ns, *[conv(getattr(hk, name)) for name, conv in zip(FSW_HOUSEKEEPING_FIELDS, b["hk_conv"])])


def message_to_housekeeping(msg) -> FswHousekeeping:
    """The FswHousekeeping an SC_FSW_HOUSEKEEPING carries."""
    return FswHousekeeping(**{name: kind(getattr(msg, name)) for name, kind in _HK_TYPES.items()})


@dataclass(frozen=True)
class FaultInjectFields:
    """What an SC_FAULT_INJECT carries (times in ns of scenario time; ``duration_ns`` 0: rest of the run)."""

    kind: str
    target: str
    at_ns: int
    duration_ns: int
    value: float


def _ascii_field(msg_cls: type, name: str, text: str) -> bytes:
    size = msg_cls.array_lengths[msg_cls.ordered_fieldnames.index(name)]
    try:
        raw = text.encode("ascii")
    except UnicodeEncodeError:
        raise ValueError(f"{FAULT_INJECT_MESSAGE}.{name} must be ASCII, got {text!r}") from None
    if len(raw) > size or b"\0" in raw:
        raise ValueError(f"{FAULT_INJECT_MESSAGE}.{name} holds at most {size} ASCII characters, got {text!r}")
    return raw


def fault_inject_message(f: FaultInjectFields):
    """SC_FAULT_INJECT for ``f``; ValueError if a field does not fit the wire."""
    cls = message_class(FAULT_INJECT_MESSAGE)
    for name in ("at_ns", "duration_ns"):
        v = getattr(f, name)
        if not isinstance(v, int) or not 0 <= v <= _UINT_MAX["uint64_t"]:
            raise ValueError(f"{FAULT_INJECT_MESSAGE}.{name} must be an integer 0 .. 2**64-1, got {v!r}")
    return cls(f.at_ns, f.duration_ns, _f32(float(f.value)), _ascii_field(cls, "kind", f.kind),
               _ascii_field(cls, "target", f.target))


def fault_inject_fields(msg) -> FaultInjectFields:
    """The fields of a received SC_FAULT_INJECT; ValueError if its strings are not ASCII."""
    kind, target = msg.kind, msg.target
    for name, text in (("kind", kind), ("target", target)):
        if not isinstance(text, str) or not text.isascii() or not text.isprintable():
            raise ValueError(f"{FAULT_INJECT_MESSAGE}.{name} is not printable ASCII: {text!r}")
    return FaultInjectFields(kind, target, int(msg.at_ns), int(msg.duration_ns), float(msg.value))
