"""The channel map of a bench: which board channel is which twin channel, and its calibration.

A physical board reports its channels in the protocol's frame slots (named
after the twin's channels, :mod:`twin.hal.channels`), but a bench is wired
as it is: the battery thermistor may sit in the slot the firmware calls
``t_avionics_c``, an ADC may report millivolts. :class:`ChannelMap` turns the
board's frame into the twin's::

    twin.values[c] = calibrate(board.values[source[c]])      # source: same group
    twin.valid[c]  = board.valid[source[c]]

with ``calibrate`` an affine map (``raw * scale + offset``) or a polynomial
(``c0 + c1 raw + c2 raw^2 ...``), the result rounded to float32 as the wire
carries it (NaN stays NaN). Discrete channels may be moved, not calibrated.
Commands go the other way: the board's heater output ``k`` is driven by the
twin's zone ``heater_order[k]`` at ``duty x heater_scale[k]`` (clamped to
0..1), likewise TPU caps and optical link enables.

:class:`CalibratedBoard` wraps any board with a map. ``ChannelMap()`` is the
identity (and :attr:`ChannelMap.identity` says so: a rig then needs no wrapper).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from twin.hal import (
    CHANNELS,
    HEATER_ZONES,
    N_CHANNELS,
    N_ISL,
    N_TPU_GROUPS,
    ActuatorCommand,
    SensorFrame,
    quantize_f32,
)

__all__ = ["Calibration", "ChannelMap", "CalibratedBoard"]


@dataclass(frozen=True)
class Calibration:
    """``twin = sum(poly[i] * raw**i)``; affine is ``poly = (offset, scale)``. ``raw_unit``: what the board reports."""

    poly: tuple[float, ...] = (0.0, 1.0)
    raw_unit: str = ""

    @property
    def identity(self) -> bool:
        return self.poly == (0.0, 1.0)

    def __call__(self, raw: float) -> float:
        acc = 0.0
        for c in reversed(self.poly):  # Horner
            acc = acc * raw + c
        return quantize_f32(acc)


@dataclass(frozen=True)
class ChannelMap:
    """``sources[c]``: the board channel index feeding twin channel ``c``; ``calibrations``: by twin index."""

    sources: tuple[int, ...] = tuple(range(N_CHANNELS))
    calibrations: dict[int, Calibration] = field(default_factory=dict)
    heater_order: tuple[int, ...] = tuple(range(len(HEATER_ZONES)))
    heater_scale: tuple[float, ...] = (1.0,) * len(HEATER_ZONES)
    tpu_order: tuple[int, ...] = tuple(range(N_TPU_GROUPS))
    tpu_cap_scale: tuple[float, ...] = (1.0,) * N_TPU_GROUPS
    isl_order: tuple[int, ...] = tuple(range(N_ISL))

    def __post_init__(self) -> None:
        for c, b in enumerate(self.sources):
            if CHANNELS[c].group != CHANNELS[b].group:
                raise ValueError(f"{CHANNELS[c].name} cannot come from {CHANNELS[b].name}: another channel group")
        for c in self.calibrations:
            if CHANNELS[c].discrete:
                raise ValueError(f"{CHANNELS[c].name} is discrete: it can be mapped, not calibrated")

    @property
    def identity(self) -> bool:
        plain = ChannelMap()
        return (self.sources == plain.sources and all(k.identity for k in self.calibrations.values())
                and (self.heater_order, self.heater_scale, self.tpu_order, self.tpu_cap_scale, self.isl_order)
                == (plain.heater_order, plain.heater_scale, plain.tpu_order, plain.tpu_cap_scale, plain.isl_order))

    def to_twin(self, frame: SensorFrame) -> SensorFrame:
        """The twin's frame from the board's (values, valid flags; sample times are per group, unchanged)."""
        raw, ok = frame.values, frame.valid
        values = [raw[b] for b in self.sources]
        valid = [ok[b] for b in self.sources]
        for c, cal in self.calibrations.items():
            values[c] = cal(values[c])
        return SensorFrame(frame.t_ns, values, valid, frame.sample_t_ns)

    def to_board(self, cmd: ActuatorCommand) -> ActuatorCommand:
        """The board's command from the twin's (outputs reordered and scaled; the rest unchanged)."""
        def scaled(values, order, scale):
            return [min(1.0, max(0.0, values[i] * s)) for i, s in zip(order, scale, strict=True)]
        return ActuatorCommand(
            heater_duty=scaled(cmd.heater_duty, self.heater_order, self.heater_scale),
            switch_tpu=cmd.switch_tpu, switch_optical=cmd.switch_optical,
            tpu_cap=scaled(cmd.tpu_cap, self.tpu_order, self.tpu_cap_scale),
            isl_enable=[cmd.isl_enable[i] for i in self.isl_order],
            downlink_enable=cmd.downlink_enable, charge_enable=cmd.charge_enable,
            watchdog_kick=cmd.watchdog_kick, fsw_mode=cmd.fsw_mode).quantized()


class CalibratedBoard:
    """A board seen through a :class:`ChannelMap`: frames mapped in, commands mapped out.

    Everything else (``info``, ``link_faults``, a remote board's ``link_stats``,
    ``transport``, ``codec``, ``t_ns``) is the wrapped board's.
    """

    def __init__(self, inner, channel_map: ChannelMap):
        self.inner, self.channel_map = inner, channel_map

    @property
    def info(self):
        return self.inner.info

    @property
    def link_faults(self):
        return getattr(self.inner, "link_faults", None)

    @property
    def link_stats(self):
        return self.inner.link_stats

    @property
    def transport(self):
        return self.inner.transport

    @property
    def codec(self):
        return self.inner.codec

    @property
    def t_ns(self) -> int:
        return self.inner.t_ns

    async def __aenter__(self) -> "CalibratedBoard":
        await self.inner.__aenter__()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.inner.__aexit__(*exc)

    async def step_to(self, t_ns: int) -> SensorFrame:
        return self.channel_map.to_twin(await self.inner.step_to(t_ns))

    async def command(self, cmd: ActuatorCommand) -> None:
        await self.inner.command(self.channel_map.to_board(cmd))

    async def send_message(self, msg) -> None:
        await self.inner.send_message(msg)
