"""The flight software: sensor validity, SoC estimation, FDIR and modes, thermal, power, links, watchdog.

It imports only :mod:`twin.hal` (plus :mod:`twin.params` for its parameter
declarations, the standard library and numpy) and cannot tell which board it
runs against. :class:`FlightSoftware` is what the executive runs;
:class:`FswConfig` is its configuration (settable from scenario files under
``[fsw.*]``). The mode and FDIR table is in :mod:`twin.fsw.modes`.
"""
from .base import EventLog, FdirEvent, Task
from .config import (BatteryConfig, FdirConfig, FswConfig, LinksConfig, MonitorConfig, OrbitConfig, PowerConfig,
                     RatesConfig, ThermalConfig, TpuConfig)
from .flight_software import FlightSoftware
from .modes import DEGRADED, NOMINAL, SAFE

__all__ = ["FlightSoftware", "FswConfig", "MonitorConfig", "ThermalConfig", "PowerConfig", "BatteryConfig",
           "LinksConfig", "OrbitConfig", "FdirConfig", "TpuConfig", "RatesConfig", "Task", "EventLog", "FdirEvent",
           "SAFE", "DEGRADED", "NOMINAL"]
