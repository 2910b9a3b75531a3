"""Durations and epochs as users write them: '1d', '6h', '90m', '600s'; ISO 8601 UTC times."""
from __future__ import annotations

import datetime as dt
import re

__all__ = ["parse_duration", "parse_epoch", "format_epoch"]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(d|h|m|s|ms)?\s*$")
_UNIT_S = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, None: 1.0}


def parse_duration(text: str | int | float) -> float:
    """Seconds from '1d', '6h', '90m', '600s', '250ms' or a plain number of seconds; ValueError if unusable."""
    if isinstance(text, bool):
        raise ValueError(f"not a duration: {text!r}")
    if isinstance(text, (int, float)):
        value = float(text)
    else:
        m = _DURATION.match(str(text))
        if not m:
            raise ValueError(f"not a duration: {text!r} (use e.g. 1d, 6h, 90m, 600s)")
        value = float(m.group(1)) * _UNIT_S[m.group(2)]
    if not value > 0 or value != value or value == float("inf"):
        raise ValueError(f"duration must be positive, got {text!r}")
    return value


def parse_epoch(text: str) -> float:
    """Unix seconds from an ISO 8601 UTC time ('2027-06-21T00:00:00Z'); ValueError if unusable."""
    if not isinstance(text, str):
        raise ValueError(f"not an ISO 8601 time: {text!r}")
    try:
        t = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"not an ISO 8601 time: {text!r} (use e.g. 2027-06-21T00:00:00Z)") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.timezone.utc)
    return t.timestamp()


def format_epoch(unix_s: float) -> str:
    """ISO 8601 UTC with a trailing Z."""
    return dt.datetime.fromtimestamp(unix_s, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
