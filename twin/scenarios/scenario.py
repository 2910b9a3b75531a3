"""The Scenario: everything one run rests on, as validated parameter dataclasses.

A scenario file is TOML whose tables mirror the fields below (``[orbit]``,
``[battery]``, ``[[faults]]``, ``[fsw.thermal]``, ...). Every key is optional:
what a file does not set keeps the default, or the value of the scenario it
``extends``. The flight software's knowledge of the spacecraft (battery
datasheet, uplinked orbit elements, station list, TPU sizing) is filled in from
the physical parameters by :meth:`Scenario.fsw_config`.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from twin.fsw.config import FswConfig
from twin.models.ground import DEFAULT_GROUND_STATIONS, GroundParams, GroundStation
from twin.models.loads import LoadParams, TpuParams
from twin.models.optical import OpticalParams
from twin.models.orbit import OrbitParams
from twin.models.power import BatteryParams, SolarArrayParams
from twin.models.radiation import RadiationParams
from twin.models.thermal import ThermalParams
from twin.params import param
from twin.scenarios.loader import parse_duration, parse_epoch
from twin.sim.faults import FaultSpec
from twin.sim.sensors import SensorParams

__all__ = ["Scenario", "RunParams", "LimitParams"]


@dataclass(frozen=True)
class RunParams:
    epoch: str = param("2027-06-21T00:00:00Z", "ISO 8601", doc="start of the run (UTC)")
    duration: str = param("1d", "duration", doc="how long to simulate (1d, 6h, 90m, 600s)")
    seed: int = param(1, lo=0, hi=2**63 - 1, doc="random seed (sensor noise, radiation, faults)")
    period_s: float = param(1.0, "s", lo=0.01, hi=10.0, doc="executive base tick (fastest task rate)")

    def __post_init__(self) -> None:
        parse_epoch(self.epoch)
        parse_duration(self.duration)


@dataclass(frozen=True)
class LimitParams:
    """Hardware limits the summary checks the run against (from datasheets, not the flight software)."""

    tpu_max_c: float = param(95.0, "degC", lo=0, hi=150, doc="TPU junction limit")
    battery_min_c: float = param(-20.0, "degC", lo=-60, hi=60, doc="battery discharge minimum")
    battery_max_c: float = param(60.0, "degC", lo=-60, hi=100, doc="battery maximum")
    battery_charge_min_c: float = param(0.0, "degC", lo=-60, hi=60, doc="no charging below")
    avionics_min_c: float = param(-20.0, "degC", lo=-60, hi=60, doc="avionics minimum")
    avionics_max_c: float = param(70.0, "degC", lo=0, hi=150, doc="avionics maximum")


@dataclass(frozen=True)
class Scenario:
    name: str = param("custom", doc="scenario name")
    description: str = param("", doc="one line shown by `twin scenarios`")
    run: RunParams = field(default_factory=RunParams)
    orbit: OrbitParams = field(default_factory=OrbitParams)
    solar: SolarArrayParams = field(default_factory=SolarArrayParams)
    battery: BatteryParams = field(default_factory=BatteryParams)
    thermal: ThermalParams = field(default_factory=ThermalParams)
    tpu: TpuParams = field(default_factory=TpuParams)
    loads: LoadParams = field(default_factory=LoadParams)
    ground: GroundParams = field(default_factory=GroundParams)
    stations: tuple[GroundStation, ...] = DEFAULT_GROUND_STATIONS
    optical: OpticalParams = field(default_factory=OpticalParams)
    radiation: RadiationParams = field(default_factory=RadiationParams)
    sensors: SensorParams = field(default_factory=SensorParams)
    limits: LimitParams = field(default_factory=LimitParams)
    fsw: FswConfig = field(default_factory=FswConfig)
    faults: tuple[FaultSpec, ...] = ()

    @property
    def epoch_unix_s(self) -> float:
        return parse_epoch(self.run.epoch)

    @property
    def period_ns(self) -> int:
        return round(self.run.period_s * 1e9)

    @property
    def duration_ns(self) -> int:
        return round(parse_duration(self.run.duration) * 1e9)

    def limit_values(self) -> dict[str, float]:
        return dataclasses.asdict(self.limits)

    def fsw_config(self) -> FswConfig:
        """The flight software's configuration: its own tunables plus what it knows of this spacecraft."""
        from twin.scenarios.knowledge import onboard_knowledge
        return onboard_knowledge(self)
