"""MAVLink 2 signing, done here with hashlib, with pymavlink's gaps closed.

A signed frame (https://mavlink.io/en/guide/message_signing.html) sets bit 0
of ``incompat_flags`` and carries 13 bytes after its CRC: ``link_id`` (1),
``timestamp`` (6, little-endian, units of 10 us since 2015-01-01T00:00:00Z)
and ``signature`` (6): the first 6 bytes of SHA-256(secret key + header +
payload + CRC + link_id + timestamp).

What pymavlink 2.4.50's ``MAVLink.signing`` gets wrong, and where it is closed:

* unknown message ids bypass CRC and signature checks: the codec drops and
  counts them before anything else;
* a badly signed frame with a far-future timestamp poisons the stream's replay
  state: the codec checks the signature first, and only a good one reaches
  :meth:`ReplayTable.accept`;
* the replay state lives in one parser object: one :class:`ReplayTable` is
  shared by every link (codec) of a twin, keyed by (link_id, sysid, compid),
  and persisted, so a frame replayed after a restart is still refused; a
  stream it has never seen is accepted only with a timestamp within
  ``window_s`` of local time (either way);
* outgoing timestamps come from one :class:`SigningClock` that never goes
  backwards, across restarts too, even when the wall clock does.

State files (JSON, written atomically, mode 0600) are saved from a thread by
``await x.autosave(interval_s)`` (run it as a supervised task) and on
:meth:`close`. After a crash, a frame accepted in the last ``interval_s``
before it could be accepted once more; after a clean close, none can. One
process per state file.

    SigningPolicy(key, replay, clock, unsigned_telemetry="reject", command_messages=...)
    ReplayTable(path=None, *, window_s=60.0, wall_clock=time.time)
    SigningClock(path=None, *, wall_clock=time.time, reserve_s=10.0)
    mavlink_timestamp(unix_s) -> int;  signature(key, signed_part) -> bytes
"""
from __future__ import annotations

import hashlib
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Callable

import fastcrc

from .errors import BridgeInitError, BridgeOperationError
from .keys import KEY_LEN, StateFile

__all__ = ["SigningPolicy", "ReplayTable", "SigningClock", "DEFAULT_COMMAND_MESSAGES", "UNSIGNED_POLICIES",
           "MAVLINK_EPOCH_UNIX_S", "TICKS_PER_S", "mavlink_timestamp", "signature"]

logger = logging.getLogger(__name__)

MAVLINK_EPOCH_UNIX_S = 1_420_070_400  # 2015-01-01T00:00:00Z
TICKS_PER_S = 100_000                 # timestamp unit: 10 us
_TS_MAX = 2**48 - 1
#: Accepted only signed. HEARTBEAT and TIMESYNC travel both ways and follow the telemetry policy.
DEFAULT_COMMAND_MESSAGES = frozenset({"SC_ACTUATOR_COMMAND", "SC_STEP_REQUEST", "SC_FSW_HOUSEKEEPING",
                                      "SC_FAULT_INJECT", "COMMAND_LONG", "COMMAND_INT", "PARAM_SET"})
UNSIGNED_POLICIES = ("reject", "accept")


def mavlink_timestamp(unix_s: float) -> int:
    """The signing timestamp (10 us units since 2015-01-01T00:00:00Z) of a Unix time in seconds."""
    return int((unix_s - MAVLINK_EPOCH_UNIX_S) * TICKS_PER_S)


def signature(key: bytes, signed_part: bytes) -> bytes:
    """First 6 bytes of SHA-256(key + signed_part); ``signed_part`` = the frame up to the signature."""
    return hashlib.sha256(key + signed_part).digest()[:6]


def _ts(value) -> int:
    if type(value) is not int or not 0 <= value <= _TS_MAX:
        raise ValueError(f"bad timestamp {value!r}")
    return value


class ReplayTable(StateFile):
    """The last accepted timestamp of every signed stream, keyed by (link_id, sysid, compid).

    Share one table among all codecs of a twin. ``wall_clock`` (Unix seconds)
    is read only when a stream appears for the first time.
    """

    def __init__(self, path: str | os.PathLike | None = None, *, window_s: float = 60.0,
                 wall_clock: Callable[[], float] = time.time):
        super().__init__(path)
        self.window = round(window_s * TICKS_PER_S)
        self._wall = wall_clock
        self._last: dict[tuple[int, int, int], int] = {}
        self._changes = self._saved_changes = 0
        state = self._load()
        if state is not None:
            try:
                if state.get("version") != 1:
                    raise ValueError(f"unknown version {state.get('version')!r}")
                for link_id, sysid, compid, ts in state["streams"]:
                    if not all(type(v) is int and 0 <= v <= 255 for v in (link_id, sysid, compid)):
                        raise ValueError(f"bad stream {link_id!r}, {sysid!r}, {compid!r}")
                    self._last[(link_id, sysid, compid)] = _ts(ts)
            except (AttributeError, KeyError, TypeError, ValueError) as exc:
                raise BridgeInitError(f"signing state {self.path} is malformed: {exc}") from exc

    def accept(self, stream: tuple[int, int, int], timestamp: int) -> bool:
        """Record ``timestamp`` for ``stream`` if it is fresh; False for a replay or an out-of-window new stream.

        Call it only for frames whose signature has been verified.
        """
        last = self._last.get(stream)
        if last is None:
            if abs(timestamp - mavlink_timestamp(self._wall())) > self.window:
                return False
        elif timestamp <= last:
            return False
        self._last[stream] = timestamp
        self._changes += 1
        return True

    def last(self, stream: tuple[int, int, int]) -> int | None:
        """The last timestamp accepted on ``stream``, or None if it was never seen."""
        return self._last.get(stream)

    def streams(self) -> dict[tuple[int, int, int], int]:
        """A copy of the table: stream -> last accepted timestamp."""
        return dict(self._last)

    def _snapshot(self, final: bool) -> dict | None:
        if self._changes == self._saved_changes:
            return None
        return {"version": 1, "changes": self._changes,
                "streams": [[*key, ts] for key, ts in self._last.items()]}

    def _saved(self, snap: dict, final: bool) -> None:
        self._saved_changes = max(self._saved_changes, snap["changes"])


class SigningClock(StateFile):
    """Timestamps for outgoing frames: ``max(now, last + 1)``, never going backwards, across restarts too.

    With a ``path``, the clock persists a reservation ``reserve_s`` ahead of
    the timestamps it hands out (at start, from :meth:`autosave`, or in
    :meth:`next` when nothing else did), so a restart after a crash begins
    above anything ever sent; :meth:`close` records the exact last one. A
    restart after a crash may so start up to ``reserve_s`` ahead of the wall
    clock: keep it well inside the peers' new-stream window (60 s).
    """

    def __init__(self, path: str | os.PathLike | None = None, *, wall_clock: Callable[[], float] = time.time,
                 reserve_s: float = 10.0):
        super().__init__(path)
        self._wall = wall_clock
        self._reserve = round(reserve_s * TICKS_PER_S)
        state = self._load()
        try:
            self._durable = _ts(state["last"]) if state is not None else -1
        except (KeyError, TypeError, ValueError) as exc:
            raise BridgeInitError(f"signing clock state {self.path} is malformed: {exc}") from exc
        self._last = self._durable
        self._retry_at = 0
        try:
            self.save()
        except BridgeOperationError as exc:
            raise BridgeInitError(str(exc)) from exc

    def now(self) -> int:
        """The wall clock as a signing timestamp."""
        return mavlink_timestamp(self._wall())

    def next(self) -> int:
        """The timestamp for the next outgoing frame."""
        ts = max(self.now(), self._last + 1)
        self._last = ts
        if ts > self._durable and self.path is not None and ts >= self._retry_at:
            try:
                self.save()
            except BridgeOperationError as exc:  # frames still go out; only a crash plus a clock step back could reuse one
                self._retry_at = ts + TICKS_PER_S
                logger.warning("%s", exc)
        return ts

    def _snapshot(self, final: bool) -> dict | None:
        if final:
            return {"last": self._last} if self._last != self._durable else None
        ahead = max(self.now(), self._last)
        return {"last": ahead + self._reserve} if ahead + self._reserve // 2 > self._durable else None

    def _saved(self, snap: dict, final: bool) -> None:
        self._durable = snap["last"] if final else max(self._durable, snap["last"])


@dataclass(frozen=True)
class SigningPolicy:
    """How a codec signs and what it accepts.

    ``key``: the rig's 32-byte secret (:func:`~firmware_bridge.keys.load_key`).
    ``replay``, ``clock``: shared by every codec of the twin.
    ``unsigned_telemetry``: ``"reject"`` (default) or ``"accept"`` (counted)
    for unsigned frames of messages outside ``command_messages``; those are
    accepted only signed, always.
    """

    key: bytes = field(repr=False)
    replay: ReplayTable
    clock: SigningClock
    unsigned_telemetry: str = "reject"
    command_messages: frozenset[str] = DEFAULT_COMMAND_MESSAGES

    def __post_init__(self):
        if not isinstance(self.key, bytes) or len(self.key) != KEY_LEN:
            raise BridgeInitError(f"a signing key is {KEY_LEN} bytes")
        if self.unsigned_telemetry not in UNSIGNED_POLICIES:
            raise BridgeInitError(f"unsigned_telemetry must be one of {UNSIGNED_POLICIES}, "
                                  f"not {self.unsigned_telemetry!r}")
        object.__setattr__(self, "_keyed", hashlib.sha256(self.key))

    def signature(self, signed_part) -> bytes:
        """Same as :func:`signature` with this key (``signed_part`` may be any bytes-like object)."""
        h = self._keyed.copy()
        h.update(signed_part)
        return h.digest()[:6]

    def sign_frame(self, frame: bytes, crc_extra: int, link_id: int) -> bytes:
        """Turn an unsigned MAVLink 2 frame into a signed one, timestamped by the shared clock."""
        body = bytearray(frame[:-2])
        body[2] |= 0x01  # the signed flag is inside the checksum, so the CRC is recomputed
        crc = fastcrc.crc16.mcrf4xx(bytes((crc_extra,)), fastcrc.crc16.mcrf4xx(bytes(body[1:])))
        body += crc.to_bytes(2, "little") + bytes((link_id,)) + self.clock.next().to_bytes(6, "little")
        return bytes(body) + self.signature(body)
