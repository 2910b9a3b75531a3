"""What crosses the HAL each tick: a sensor frame in, an actuator command out."""
from __future__ import annotations

from array import array
from dataclasses import dataclass, field

from .channels import CHANNELS, GROUPS, HEATER_ZONES, N_CHANNELS, N_ISL, N_TPU_GROUPS

__all__ = ["SensorFrame", "ActuatorCommand", "FswHousekeeping", "FSW_HOUSEKEEPING_FIELDS", "quantize_f32"]

_GROUP_OF = tuple(GROUPS.index(c.group) for c in CHANNELS)


def quantize_f32(x: float) -> float:
    """Round a value to the nearest float32, as the wire does, and return it as a Python float."""
    return array("f", (x,))[0]


def _unit_f32(values: list[float]) -> list[float]:
    # Clamp to [0, 1] (NaN to 0: the safe side) and round to float32 as the wire does.
    return array("f", [v if 0.0 < v <= 1.0 else (1.0 if v > 1.0 else 0.0) for v in values]).tolist()


def _bools(values: list) -> list[bool]:
    return [bool(v) for v in values]


class _LastResult:
    """``fn(values)`` remembered for the last input: a command's lists rarely change from one tick to the next.

    Inputs that compare equal give equal outputs for both functions above (0.0 and
    -0.0 both clamp to 0.0; ``list ==`` compares identity first, so the very same NaN
    object counts as equal and gets the result computed for it, while any other NaN
    is unequal and recomputed: right either way). The result is a fresh list every
    call: callers may keep or change it.
    """

    __slots__ = ("fn", "last")

    def __init__(self, fn):
        self.fn = fn
        self.last: tuple[list, list] = ([object()], [])  # (copy of the input, result): swapped as one

    def __call__(self, values: list) -> list:
        if type(values) is not list:  # e.g. a numpy array: == would compare element-wise
            return self.fn(values)
        last_in, last_out = self.last
        if values == last_in:
            return last_out[:]
        out = self.fn(values)
        self.last = (list(values), out)
        return out[:]


_heater_f32 = _LastResult(_unit_f32)
_cap_f32 = _LastResult(_unit_f32)
_isl_bools = _LastResult(_bools)


class SensorFrame:
    """The board's readings for one instant.

    ``t_ns``: the board time this frame is for (in lockstep, the step target).
    ``values``: one Python float per channel of :data:`~twin.hal.channels.CHANNELS`,
    float32-exact; discrete channels hold small integers.
    ``valid``: per channel, False when the board itself flags the reading as
    failed (ADC error, sensor absent). A valid flag does not mean the value is
    plausible: the flight software checks NaN, range, staleness and sticking.
    ``sample_t_ns``: per channel group (:data:`~twin.hal.channels.GROUPS`), the
    board time at which that group was sampled; older than ``t_ns`` means stale.
    """

    __slots__ = ("t_ns", "values", "valid", "sample_t_ns")

    def __init__(self, t_ns: int, values: list[float], valid: list[bool], sample_t_ns: tuple[int, ...]):
        self.t_ns = t_ns
        self.values = values
        self.valid = valid
        self.sample_t_ns = sample_t_ns

    def age_ns(self, channel: int) -> int:
        """How old channel ``channel``'s sample is at frame time."""
        return self.t_ns - self.sample_t_ns[_GROUP_OF[channel]]

    def __repr__(self) -> str:
        shown = ", ".join(f"{c.name}={v:g}" for c, v in zip(CHANNELS[:6], self.values))
        return f"SensorFrame(t_ns={self.t_ns}, {shown}, ...)"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SensorFrame):
            return NotImplemented
        same_values = all(a == b or (a != a and b != b) for a, b in zip(self.values, other.values))
        return (self.t_ns == other.t_ns and same_values and self.valid == other.valid
                and self.sample_t_ns == other.sample_t_ns)

    @classmethod
    def empty(cls, t_ns: int = 0) -> "SensorFrame":
        """A frame with every channel invalid (NaN), e.g. before the first reading."""
        return cls(t_ns, [float("nan")] * N_CHANNELS, [False] * N_CHANNELS, (t_ns,) * len(GROUPS))


@dataclass(slots=True)
class ActuatorCommand:
    """The flight software's command to the board, applied from the tick it is sent on.

    Defaults are the board's safe state: no heaters, TPU and optical rails off,
    links disabled, transmitter off, charging allowed.
    """

    heater_duty: list[float] = field(default_factory=lambda: [0.0] * len(HEATER_ZONES))
    switch_tpu: bool = False
    switch_optical: bool = False
    tpu_cap: list[float] = field(default_factory=lambda: [0.0] * N_TPU_GROUPS)
    isl_enable: list[bool] = field(default_factory=lambda: [False] * N_ISL)
    downlink_enable: bool = False
    charge_enable: bool = True
    watchdog_kick: int = 0
    fsw_mode: int = 0

    def quantized(self) -> "ActuatorCommand":
        """A copy with every analog field rounded to float32 and clamped to its range, as the wire carries it."""
        # Positional, in field order (a third of the cost of keywords; called every tick).
        return ActuatorCommand(_heater_f32(self.heater_duty), bool(self.switch_tpu), bool(self.switch_optical),
                               _cap_f32(self.tpu_cap), _isl_bools(self.isl_enable), bool(self.downlink_enable),
                               bool(self.charge_enable), int(self.watchdog_kick) & 0xFF, int(self.fsw_mode))


@dataclass(slots=True)
class FswHousekeeping:
    """The flight software's own telemetry for one tick (recorded beside frames and commands).

    Cumulative counters never decrease within a run. ``mode`` indexes
    :data:`~twin.hal.channels.MODES`; ``shed_stage`` is 0 (nothing shed),
    1 (compute reduced), 2 (optical links shed), 3 (safe-mode loads only).
    """

    mode: int = 0
    shed_stage: int = 0
    soc_est: float = 0.0              # estimated battery state of charge, 0..1
    compute_budget_w: float = 0.0     # power the TPUs may draw now
    next_contact_s: float = -1.0      # seconds to the next predicted ground contact, -1 if none planned
    next_eclipse_s: float = -1.0      # seconds to the next predicted eclipse entry, -1 if none, 0 inside
    queue_bytes: float = 0.0          # bytes waiting in the downlink queue
    generated_bytes: float = 0.0      # cumulative bytes put in the queue
    downlinked_bytes: float = 0.0     # cumulative bytes sent to ground
    dropped_bytes: float = 0.0        # cumulative bytes dropped (buffer full)
    oldest_age_s: float = 0.0         # age of the oldest byte in the queue
    invalid_channels: int = 0         # channels currently failing validity (stale/NaN/stuck/range)
    fdir_events: int = 0              # cumulative FDIR actions taken
    task_faults: int = 0              # cumulative exceptions caught in flight-software tasks
    watchdog_ok: bool = False         # watchdog serviced this tick


FSW_HOUSEKEEPING_FIELDS = tuple(FswHousekeeping.__dataclass_fields__)
