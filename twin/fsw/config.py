"""The flight software's configuration: its tunables and what it knows of the spacecraft.

Every number is a :func:`~twin.params.param` field of a frozen dataclass, so a
scenario file sets it under ``[fsw.<group>]`` with range checks. Cross-field
rules (a band whose lower edge must lie below its upper edge, a monotonic OCV
table) raise :class:`~twin.params.ParamError` from ``__post_init__``.

Groups: ``monitor`` (sensor validity), ``thermal``, ``power`` (budget and load
shedding), ``battery`` (datasheet facts), ``links`` (downlink queue), ``orbit``
(uplinked elements and prediction), ``stations`` and ``min_elevation_deg``,
``fdir`` (persistence and limits), ``tpu`` (payload sizing and demand),
``rates`` (one rate per task).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from twin.hal import CHANNEL_INDEX, N_TPU_GROUPS
from twin.params import ParamError, param

__all__ = ["FswConfig", "MonitorConfig", "ThermalConfig", "PowerConfig", "BatteryConfig", "LinksConfig",
           "OrbitConfig", "FdirConfig", "TpuConfig", "RatesConfig", "DEFAULT_STATIONS"]


def _below(key: str, lo: float, hi: float, hi_name: str) -> None:
    if not lo < hi:
        raise ParamError(key, f"must be below {hi_name} ({hi:g}), got {lo:g}")


@dataclass(frozen=True)
class MonitorConfig:
    stale_limit_s: float = param(3.0, "s", lo=0.0, lo_open=True, hi=3600.0,
                                 doc="a channel whose group sample is older than this is STALE")
    stuck_samples: int = param(20, "samples", lo=2, hi=1_000_000,
                               doc="fresh bit-identical analog samples in a row that make a channel STUCK")
    stuck_exempt: tuple[str, ...] = param((), doc="analog channels never declared STUCK (e.g. a coarse ADC)")

    def __post_init__(self) -> None:
        for name in self.stuck_exempt:
            if name not in CHANNEL_INDEX:
                raise ParamError("monitor.stuck_exempt", f"unknown channel {name!r}")


@dataclass(frozen=True)
class ThermalConfig:
    tpu_limit_c: float = param(95.0, "degC", lo=0.0, hi=150.0, doc="TPU group temperature never to exceed")
    tpu_throttle_start_c: float = param(80.0, "degC", lo=0.0, hi=150.0, doc="the power cap starts falling here")
    tpu_cap_zero_c: float = param(92.0, "degC", lo=0.0, hi=150.0, doc="the power cap reaches 0 here")
    tpu_recovery_per_s: float = param(0.01, "1/s", lo=0.0, lo_open=True, hi=1.0,
                                      doc="fastest rise of a group's thermal cap")
    battery_heater_on_c: float = param(5.0, "degC", lo=-60.0, hi=60.0, doc="battery heater on below")
    battery_heater_off_c: float = param(10.0, "degC", lo=-60.0, hi=60.0, doc="battery heater off above")
    battery_heater_duty: float = param(1.0, "1", lo=0.0, hi=1.0, doc="battery heater duty while on")
    battery_heater_fallback_duty: float = param(0.3, "1", lo=0.0, hi=1.0,
                                                doc="fixed battery heater duty while its sensor has failed")
    avionics_heater_on_c: float = param(-5.0, "degC", lo=-60.0, hi=60.0, doc="avionics heater on below")
    avionics_heater_off_c: float = param(5.0, "degC", lo=-60.0, hi=60.0, doc="avionics heater off above")
    avionics_heater_duty: float = param(1.0, "1", lo=0.0, hi=1.0, doc="avionics heater duty while on")
    avionics_heater_fallback_duty: float = param(0.3, "1", lo=0.0, hi=1.0,
                                                 doc="fixed avionics heater duty while its sensor has failed")
    charge_min_c: float = param(0.0, "degC", lo=-60.0, hi=100.0, doc="no charging below (Li plating)")
    charge_max_c: float = param(45.0, "degC", lo=-60.0, hi=100.0, doc="no charging above")
    charge_margin_c: float = param(1.0, "degC", lo=0.0, hi=10.0,
                                   doc="charging resumes only this far inside the range")
    charge_ok_samples: int = param(5, "samples", lo=1, hi=10000,
                                   doc="valid in-range samples in a row before charging resumes")

    def __post_init__(self) -> None:
        _below("thermal.tpu_throttle_start_c", self.tpu_throttle_start_c, self.tpu_cap_zero_c, "tpu_cap_zero_c")
        if self.tpu_cap_zero_c > self.tpu_limit_c:
            raise ParamError("thermal.tpu_cap_zero_c", f"must not exceed tpu_limit_c ({self.tpu_limit_c:g})")
        _below("thermal.battery_heater_on_c", self.battery_heater_on_c, self.battery_heater_off_c,
               "battery_heater_off_c")
        _below("thermal.avionics_heater_on_c", self.avionics_heater_on_c, self.avionics_heater_off_c,
               "avionics_heater_off_c")
        _below("thermal.charge_min_c", self.charge_min_c + 2 * self.charge_margin_c, self.charge_max_c,
               "charge_max_c minus twice the margin")


@dataclass(frozen=True)
class PowerConfig:
    soc_target: float = param(0.95, "1", lo=0.0, hi=1.0, doc="SoC to reach before the next predicted eclipse")
    max_dod: float = param(0.35, "1", lo=0.0, hi=1.0, doc="deepest planned depth of discharge over an eclipse")
    max_charge_a: float = param(100.0, "A", lo=0.0, doc="largest charge current the budget plans for")
    max_discharge_a: float = param(300.0, "A", lo=0.0, doc="largest discharge current the budget plans for")
    probe_discharge_a: float = param(2.0, "A", lo=0.0, hi=50.0,
                                     doc="discharge allowed in sunlight at the SoC target, to find shunted power")
    regulator_gain: float = param(0.5, "1", lo=0.0, lo_open=True, hi=1.5,
                                  doc="fraction of the battery-current error turned into budget per tick")
    budget_headroom_w: float = param(1000.0, "W", lo=0.0, doc="budget may exceed the measured TPU power by this")
    min_time_to_eclipse_s: float = param(600.0, "s", lo=1.0, doc="floor on the time left to charge")
    eclipse_fallback_s: float = param(1320.0, "s", lo=60.0, doc="eclipse length assumed when not predicted")
    shed1_soc: float = param(0.60, "1", lo=0.0, hi=1.0, doc="stage 1 (compute off/reduced) below this SoC")
    shed2_soc: float = param(0.50, "1", lo=0.0, hi=1.0, doc="stage 2 (optical links off) below this SoC")
    shed3_soc: float = param(0.40, "1", lo=0.0, hi=1.0, doc="stage 3 (SAFE) below this SoC")
    shed_hysteresis: float = param(0.05, "1", lo=0.0, hi=0.5, doc="a stage clears above its threshold plus this")
    shed1_samples: int = param(60, "samples", lo=1, hi=100000, doc="persistence before stage 1")
    shed2_samples: int = param(30, "samples", lo=1, hi=100000, doc="persistence before stage 2")
    shed3_samples: int = param(10, "samples", lo=1, hi=100000, doc="persistence before stage 3")
    unshed_samples: int = param(60, "samples", lo=1, hi=100000, doc="persistence before a stage clears")
    shed_min_dwell_s: float = param(300.0, "s", lo=0.0, doc="least time at a stage before it may clear")
    starve_samples: int = param(60, "samples", lo=1, hi=100000,
                                doc="budget below the idle power this long turns compute off (and back on)")
    stage1_compute_fraction: float = param(0.0, "1", lo=0.0, hi=1.0,
                                           doc="compute budget kept at stage 1, fraction of maximum (0: off)")
    rail_latch_samples: int = param(5, "samples", lo=1, hi=10000,
                                    doc="samples a rail commanded on may read no current before it is cycled")
    tpu_rail_min_a: float = param(1.0, "A", lo=0.0, doc="TPU rail current proving the rail is powered")
    optical_rail_min_a: float = param(0.1, "A", lo=0.0, doc="optical rail current proving the rail is powered")
    rail_cycle_limit: int = param(3, "count", lo=0, hi=1000, doc="rail power cycles before giving up")

    def __post_init__(self) -> None:
        _below("power.shed3_soc", self.shed3_soc, self.shed2_soc, "shed2_soc")
        _below("power.shed2_soc", self.shed2_soc, self.shed1_soc, "shed1_soc")
        # The planned eclipse floor must sit above stage 1, or every eclipse sheds.
        _below("power.shed1_soc", self.shed1_soc, 1.0 - self.max_dod, "1 - max_dod")
        if 1.0 - self.max_dod > self.soc_target:
            raise ParamError("power.max_dod", f"the eclipse floor 1 - max_dod ({1.0 - self.max_dod:g}) "
                             f"must not exceed soc_target ({self.soc_target:g})")


_OCV_SOC = (0.0, 0.02, 0.05, 0.10, 0.20, 0.30, 0.40, 0.50, 0.60, 0.70, 0.80, 0.90, 0.95, 1.0)
_OCV_CELL_V = (2.75, 3.10, 3.30, 3.45, 3.55, 3.62, 3.67, 3.72, 3.79, 3.87, 3.95, 4.05, 4.11, 4.20)


@dataclass(frozen=True)
class BatteryConfig:
    capacity_wh: float = param(20000.0, "Wh", lo=0.0, lo_open=True, doc="energy at SoC 1 (datasheet, at OCV)")
    cells_series: int = param(24, "count", lo=1, hi=1000, doc="cells in series")
    ocv_soc: tuple = param(_OCV_SOC, "1", doc="OCV table: SoC breakpoints, 0 .. 1 increasing")
    ocv_cell_v: tuple = param(_OCV_CELL_V, "V", doc="OCV table: cell volts at the breakpoints, increasing")
    r_internal_ohm: float = param(0.010, "ohm", lo=0.0, hi=10.0, doc="pack internal resistance estimate")
    charge_efficiency: float = param(0.98, "1", lo=0.0, lo_open=True, hi=1.0, doc="stored / OCV-side energy in")
    discharge_efficiency: float = param(0.98, "1", lo=0.0, lo_open=True, hi=1.0, doc="OCV-side / stored out")
    ocv_tau_s: float = param(1800.0, "s", lo=1.0, doc="time constant of the pull toward the OCV-inferred SoC")
    ocv_current_ref_a: float = param(20.0, "A", lo=0.0, lo_open=True,
                                     doc="battery current at which the OCV pull is halved (R uncertainty)")
    ocv_slope_ref_v: float = param(0.5, "V", lo=0.0, lo_open=True,
                                   doc="cell dV/dSoC below which the OCV pull weakens (flat curve)")

    def __post_init__(self) -> None:
        soc, v = tuple(self.ocv_soc), tuple(self.ocv_cell_v)
        if len(soc) < 2 or len(soc) != len(v):
            raise ParamError("battery.ocv_soc", "ocv_soc and ocv_cell_v must be equal-length lists of >= 2 numbers")
        if soc[0] != 0.0 or soc[-1] != 1.0 or any(b <= a for a, b in zip(soc, soc[1:])):
            raise ParamError("battery.ocv_soc", "must increase strictly from 0 to 1")
        if v[0] <= 0 or any(b <= a for a, b in zip(v, v[1:])):
            raise ParamError("battery.ocv_cell_v", "must be positive and increase strictly")


@dataclass(frozen=True)
class LinksConfig:
    downlink_rate_bps: float = param(800e6, "bit/s", lo=0.0, doc="downlink rate assumed while locked")
    buffer_bytes: float = param(256e9, "B", lo=0.0, hi=2.0**53, doc="store-and-forward buffer size")
    housekeeping_bytes_per_s: float = param(2000.0, "B/s", lo=0.0, doc="housekeeping telemetry generated")
    compute_bytes_per_tpu_s: float = param(50e3, "B", lo=0.0, doc="results per chip-second at full utilization")
    event_bytes: float = param(512.0, "B", lo=0.0, doc="one FDIR event report")
    contact_margin_s: float = param(30.0, "s", lo=0.0, hi=600.0,
                                    doc="transmitter on this long before and after a predicted contact")
    chunk_s: float = param(10.0, "s", lo=0.0, hi=3600.0, doc="queue bookkeeping granularity (age resolution)")


@dataclass(frozen=True)
class OrbitConfig:
    altitude_km: float = param(650.0, "km", lo=200.0, hi=2000.0, doc="circular orbit altitude")
    ltan_hours: float = param(18.0, "h", lo=0.0, hi=24.0, doc="local (mean solar) time of the ascending node")
    epoch_unix_s: float = param(1813536000.0, "s", lo=0.0, doc="Unix time of the elements and of t_ns = 0")
    phase_deg: float = param(0.0, "deg", lo=-360.0, hi=360.0, doc="argument of latitude at epoch")
    predict_step_s: float = param(10.0, "s", lo=1.0, hi=120.0, doc="prediction time step")
    predict_horizon_orbits: float = param(2.0, "orbits", lo=1.0, hi=30.0, doc="prediction horizon")
    predict_refresh_orbits: float = param(1.0, "orbits", lo=0.01, hi=30.0, doc="prediction recomputed this often")

    def __post_init__(self) -> None:
        if self.predict_refresh_orbits > self.predict_horizon_orbits - 0.5:
            raise ParamError("orbit.predict_refresh_orbits", "must leave at least half an orbit of look-ahead "
                             f"(<= predict_horizon_orbits - 0.5 = {self.predict_horizon_orbits - 0.5:g})")


@dataclass(frozen=True)
class FdirConfig:
    invalid_samples: int = param(5, "samples", lo=1, hi=100000, doc="invalid samples before a sensor's response")
    recover_samples: int = param(30, "samples", lo=1, hi=100000, doc="valid samples before a sensor fault clears")
    deep_samples: int = param(3, "samples", lo=1, hi=100000, doc="samples beyond a deep limit before SAFE")
    battery_safe_lo_c: float = param(-10.0, "degC", lo=-60.0, hi=60.0, doc="SAFE below this battery temperature")
    battery_safe_hi_c: float = param(55.0, "degC", lo=-60.0, hi=100.0, doc="SAFE above this battery temperature")
    avionics_ok_lo_c: float = param(-20.0, "degC", lo=-60.0, hi=60.0, doc="SAFE exit needs avionics above")
    avionics_ok_hi_c: float = param(60.0, "degC", lo=-60.0, hi=120.0, doc="SAFE exit needs avionics below")
    task_fault_limit: int = param(3, "count", lo=1, hi=1000, doc="task faults within the window that mean SAFE")
    task_fault_window_s: float = param(600.0, "s", lo=1.0, doc="window for counting task faults")
    safe_exit_dwell_s: float = param(300.0, "s", lo=0.0, doc="SAFE exit conditions must hold this long")
    safe_exit_soc: float = param(0.55, "1", lo=0.0, hi=1.0, doc="SAFE exit needs at least this SoC")
    link_lost_safe_s: float = param(30.0, "s", lo=1.0, hi=86400.0,
                                    doc="SAFE when the board has sent no fresh sample of any group for this long")

    def __post_init__(self) -> None:
        _below("fdir.battery_safe_lo_c", self.battery_safe_lo_c, self.battery_safe_hi_c, "battery_safe_hi_c")
        _below("fdir.avionics_ok_lo_c", self.avionics_ok_lo_c, self.avionics_ok_hi_c, "avionics_ok_hi_c")


@dataclass(frozen=True)
class TpuConfig:
    groups: int = param(N_TPU_GROUPS, "count", lo=N_TPU_GROUPS, hi=N_TPU_GROUPS, doc="TPU groups (fixed by the HAL)")
    chips_per_group: int = param(24, "chips", lo=1, hi=255, doc="chips in each group")
    chip_idle_w: float = param(50.0, "W", lo=0.0, hi=2000.0, doc="chip power when powered and idle")
    chip_max_w: float = param(250.0, "W", lo=0.0, hi=2000.0, doc="chip power at full utilization")
    utilization_demand: float = param(1.0, "1", lo=0.0, hi=1.0, doc="utilization the workload asks for")

    def __post_init__(self) -> None:
        _below("tpu.chip_idle_w", self.chip_idle_w, self.chip_max_w, "chip_max_w")


@dataclass(frozen=True)
class RatesConfig:
    monitor_hz: float = param(1.0, "Hz", lo=0.0, lo_open=True, hi=100.0, doc="sensor monitor")
    soc_hz: float = param(1.0, "Hz", lo=0.0, lo_open=True, hi=100.0, doc="SoC estimator")
    fdir_hz: float = param(1.0, "Hz", lo=0.0, lo_open=True, hi=100.0, doc="FDIR and modes")
    thermal_hz: float = param(1.0, "Hz", lo=0.0, lo_open=True, hi=100.0, doc="thermal control")
    power_hz: float = param(1.0, "Hz", lo=0.0, lo_open=True, hi=100.0, doc="power budget and load shedding")
    links_hz: float = param(1.0, "Hz", lo=0.0, lo_open=True, hi=100.0, doc="link scheduling and downlink queue")
    watchdog_hz: float = param(1.0, "Hz", lo=0.0, lo_open=True, hi=100.0, doc="watchdog service")


#: (name, geodetic latitude deg, longitude deg) of the polar stations the mission uses.
DEFAULT_STATIONS: tuple[tuple[str, float, float], ...] = (
    ("Svalbard SvalSat", 78.23, 15.41), ("Fairbanks", 64.97, -147.50), ("Kiruna", 67.86, 20.96),
    ("Inuvik", 68.32, -133.55), ("Troll TrollSat", -72.01, 2.53), ("Punta Arenas", -52.94, -70.85),
)


@dataclass(frozen=True)
class FswConfig:
    """Everything the flight software is configured with; see the module docstring."""

    monitor: MonitorConfig = field(default_factory=MonitorConfig)
    thermal: ThermalConfig = field(default_factory=ThermalConfig)
    power: PowerConfig = field(default_factory=PowerConfig)
    battery: BatteryConfig = field(default_factory=BatteryConfig)
    links: LinksConfig = field(default_factory=LinksConfig)
    orbit: OrbitConfig = field(default_factory=OrbitConfig)
    stations: tuple[tuple[str, float, float], ...] = param(DEFAULT_STATIONS,
                                                           doc="ground stations (name, lat_deg, lon_deg)")
    min_elevation_deg: float = param(10.0, "deg", lo=0.0, hi=89.0, doc="contact elevation mask")
    fdir: FdirConfig = field(default_factory=FdirConfig)
    tpu: TpuConfig = field(default_factory=TpuConfig)
    rates: RatesConfig = field(default_factory=RatesConfig)

    def __post_init__(self) -> None:
        for k, (name, lat, lon) in enumerate(self.stations):
            if not -90.0 <= lat <= 90.0 or not -180.0 <= lon <= 360.0:
                raise ParamError(f"stations[{k}]", f"{name!r}: lat must be in [-90, 90], lon in [-180, 360]")
        if self.fdir.link_lost_safe_s <= self.monitor.stale_limit_s:
            raise ParamError("fdir.link_lost_safe_s", f"must be above monitor.stale_limit_s "
                             f"({self.monitor.stale_limit_s:g} s), got {self.fdir.link_lost_safe_s:g}")
        if self.fdir.safe_exit_soc <= self.power.shed3_soc + self.power.shed_hysteresis:
            raise ParamError("fdir.safe_exit_soc", "must be above power.shed3_soc + power.shed_hysteresis")
