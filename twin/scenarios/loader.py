"""Turn TOML tables into validated parameter dataclasses, with errors that name file, key and reason.

Scenario files are untrusted input: every key must exist in the target
dataclass, every value must have the declared type and lie in the range its
:func:`~twin.params.param` declares. The first problem raises
:class:`ScenarioError` (``file: key 'battery.capacity_wh': must be > 0 Wh, got -5``).
"""
from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from typing import Any

from twin.params import ParamError, param_info
from twin.timeparse import format_epoch, parse_duration, parse_epoch

__all__ = ["ScenarioError", "build_dataclass", "parse_duration", "parse_epoch", "format_epoch"]


class ScenarioError(ValueError):
    """A scenario (file, name, or command-line override) is unusable; the message says what and where."""

    def __init__(self, source: str, key: str | None, reason: str):
        where = f"{source}: key '{key}'" if key else source
        super().__init__(f"{where}: {reason}")
        self.source, self.key, self.reason = source, key, reason


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _convert(tp: Any, value: Any, key: str, source: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _convert(options[0], value, key, source)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ScenarioError(source, key, f"must be a table, got {type(value).__name__}")
        return build_dataclass(tp, value, source, key)
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, list):
            raise ScenarioError(source, key, f"must be a list, got {type(value).__name__}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v, f"{key}[{i}]", source) for i, v in enumerate(value))
        if len(value) != len(args):
            raise ScenarioError(source, key, f"must be a list of {len(args)} items, got {len(value)}")
        return tuple(_convert(a, v, f"{key}[{i}]", source) for i, (a, v) in enumerate(zip(args, value)))
    if tp is tuple:  # an untyped tuple parameter is a list of numbers (tables, curves)
        if not isinstance(value, list):
            raise ScenarioError(source, key, f"must be a list of numbers, got {type(value).__name__}")
        return tuple(_convert(float, v, f"{key}[{i}]", source) for i, v in enumerate(value))
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ScenarioError(source, key, f"must be a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ScenarioError(source, key, f"must be a whole number, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ScenarioError(source, key, f"must be true or false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ScenarioError(source, key, f"must be a string, got {value!r}")
        return value
    raise ScenarioError(source, key, f"unsupported parameter type {_type_name(tp)}")


def build_dataclass(cls: type, table: dict, source: str, prefix: str = "", base: Any = None) -> Any:
    """An instance of dataclass ``cls`` from a TOML ``table``; missing keys keep ``base``'s values or the defaults."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    values: dict[str, Any] = {}
    for name, value in table.items():
        key = f"{prefix}.{name}" if prefix else name
        if name not in fields:
            close = difflib.get_close_matches(name, list(fields), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else f" (known: {', '.join(sorted(fields))})"
            raise ScenarioError(source, key, "unknown key" + hint)
        tp = hints[name]
        if dataclasses.is_dataclass(tp) and isinstance(value, dict):
            sub_base = getattr(base, name) if base is not None else None
            values[name] = build_dataclass(tp, value, source, key, sub_base)
        else:
            values[name] = _convert(tp, value, key, source)
        info = param_info(fields[name])
        if info is not None:
            try:
                info.check(key, values[name])
            except ParamError as exc:
                raise ScenarioError(source, key, exc.reason) from None
    try:
        instance = dataclasses.replace(base, **values) if base is not None else cls(**values)
    except (TypeError, ValueError) as exc:
        raise ScenarioError(source, prefix or None, str(exc)) from None
    return instance
