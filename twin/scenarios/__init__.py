"""Scenarios: built-in ones by name, or TOML files, validated with clear errors.

``load_scenario("node")`` or ``load_scenario("path/to/file.toml")``; a file may
start from another scenario with ``extends = "node"`` (a built-in name or a
path relative to the file) and override only what differs. ``list_scenarios()``
gives the built-in names with their descriptions.
"""
from __future__ import annotations

import tomllib
from pathlib import Path

from twin.scenarios.loader import ScenarioError, build_dataclass, parse_duration, parse_epoch
from twin.scenarios.scenario import LimitParams, RunParams, Scenario

__all__ = ["Scenario", "RunParams", "LimitParams", "ScenarioError", "load_scenario", "list_scenarios",
           "BUILTIN_DIR"]

BUILTIN_DIR = Path(__file__).parent / "builtin"
_MAX_EXTENDS = 8


def list_scenarios() -> list[tuple[str, str]]:
    """(name, description) of every built-in scenario, sorted by name."""
    out = []
    for path in sorted(BUILTIN_DIR.glob("*.toml")):
        table = _read(path)
        out.append((path.stem, str(table.get("description", ""))))
    return out


def _read(path: Path) -> dict:
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ScenarioError(str(path), None, "no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(str(path), None, f"cannot read it ({exc})") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(str(path), None, f"not valid TOML: {exc}") from None


def _resolve(name_or_path: str, relative_to: Path | None = None) -> Path:
    if name_or_path.endswith(".toml") or "/" in name_or_path:
        path = Path(name_or_path)
        if relative_to is not None and not path.is_absolute():
            path = relative_to.parent / path
        return path
    path = BUILTIN_DIR / f"{name_or_path}.toml"
    if not path.exists():
        known = ", ".join(n for n, _ in list_scenarios())
        raise ScenarioError(name_or_path, None, f"unknown scenario (built-in: {known}; or give a .toml file)")
    return path


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _load_table(path: Path, depth: int = 0) -> dict:
    if depth > _MAX_EXTENDS:
        raise ScenarioError(str(path), "extends", f"more than {_MAX_EXTENDS} levels (a cycle?)")
    table = _read(path)
    parent = table.pop("extends", None)
    if parent is None:
        return table
    if not isinstance(parent, str):
        raise ScenarioError(str(path), "extends", f"must be a scenario name or file, got {parent!r}")
    try:
        base = _load_table(_resolve(parent, path), depth + 1)
    except ScenarioError as exc:
        raise ScenarioError(str(path), "extends", str(exc)) from None
    base.pop("description", None)
    return _merge(base, table)


def load_scenario(name_or_path: str = "node", *, epoch: str | None = None, duration: str | None = None,
                  seed: int | None = None, overrides: dict | None = None) -> Scenario:
    """Load and validate a scenario; ``epoch``/``duration``/``seed`` override its ``[run]`` table."""
    path = _resolve(name_or_path)
    table = _load_table(path)
    table.setdefault("name", path.stem)
    if overrides:
        table = _merge(table, overrides)
    run = dict(table.get("run", {}))
    for flag, key, value in (("--epoch", "epoch", epoch), ("--duration", "duration", duration)):
        if value is None:
            continue
        try:
            parse_epoch(value) if key == "epoch" else parse_duration(value)
        except ValueError as exc:
            raise ScenarioError(flag, None, str(exc)) from None
        run[key] = value
    if seed is not None:
        if seed < 0:
            raise ScenarioError("--seed", None, f"must be >= 0, got {seed}")
        run["seed"] = seed
    table["run"] = run
    return build_dataclass(Scenario, table, str(path))
