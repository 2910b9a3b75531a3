"""Declared, validated parameters.

Every number a model or the flight software rests on is a field of a frozen
dataclass declared with :func:`param`, which records its unit, its allowed range
and a one-line description. The scenario loader (:mod:`twin.scenarios`) walks
these dataclasses to validate scenario files, so adding a field here is all it
takes to make it settable from a scenario, with range checks and clear errors.

Example::

    @dataclass(frozen=True)
    class BatteryParams:
        capacity_wh: float = param(15000.0, "Wh", lo=1.0, doc="usable capacity at BOL")
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any

__all__ = ["param", "ParamInfo", "param_info", "ParamError"]


class ParamError(ValueError):
    """A parameter value is out of its declared range or of the wrong type.

    ``key`` is the dotted path of the parameter (``spacecraft.battery.capacity_wh``),
    ``reason`` says what is wrong with it.
    """

    def __init__(self, key: str, reason: str):
        super().__init__(f"{key}: {reason}")
        self.key = key
        self.reason = reason


@dataclasses.dataclass(frozen=True)
class ParamInfo:
    unit: str
    lo: float | None
    hi: float | None
    doc: str
    lo_open: bool = False

    def check(self, key: str, value: Any) -> None:
        """Raise ParamError if a numeric ``value`` lies outside [lo, hi]."""
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return
        if isinstance(value, float) and not math.isfinite(value):
            raise ParamError(key, f"must be a finite number, got {value!r}")
        if self.lo is not None:
            if self.lo_open and not value > self.lo:
                raise ParamError(key, f"must be > {self.lo:g} {self.unit}".rstrip() + f", got {value!r}")
            if not self.lo_open and value < self.lo:
                raise ParamError(key, f"must be >= {self.lo:g} {self.unit}".rstrip() + f", got {value!r}")
        if self.hi is not None and value > self.hi:
            raise ParamError(key, f"must be <= {self.hi:g} {self.unit}".rstrip() + f", got {value!r}")


def param(default: Any, unit: str = "", *, lo: float | None = None, hi: float | None = None,
          lo_open: bool = False, doc: str = "", factory: Any = None) -> Any:
    """A dataclass field with unit, range and description for validation and docs.

    ``lo_open=True`` makes the lower bound exclusive (``> lo``). Use ``factory``
    for mutable defaults such as tuples of records.
    """
    info = ParamInfo(unit=unit, lo=lo, hi=hi, doc=doc, lo_open=lo_open)
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata={"param": info})
    return dataclasses.field(default=default, metadata={"param": info})


def param_info(field: dataclasses.Field) -> ParamInfo | None:
    """The :class:`ParamInfo` of a dataclass field declared with :func:`param`."""
    return field.metadata.get("param")
