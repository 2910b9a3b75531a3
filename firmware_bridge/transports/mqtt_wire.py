"""The MQTT wire contract between the twin and a board: topics, payload framing, de-duplication.

Topics (``<sat_id>`` is ``[A-Za-z0-9_-]{1,64}``: no ``/``, ``+`` or ``#``)::

    suncatcher/<sat_id>/tlm            board -> twin   telemetry frames                 QoS 1
    suncatcher/<sat_id>/cmd            twin -> board   commands and lockstep requests   QoS 1
    suncatcher/<sat_id>/status/<role>  <role> -> peer  "online" (retained, sent on every connect)
                                                       "offline" (retained: last will, and sent on close)
    suncatcher/<sat_id>/state          board -> twin   retained last-known state        QoS 1

The broker's ACL (:mod:`firmware_bridge.broker`, ``acl.conf``) enforces the
arrows: a board reads ``cmd`` and ``status/twin`` and writes the rest of its
side; the twin the reverse; an ``observer`` reads everything.

Payloads of ``tlm``, ``cmd`` and ``state``: an 8-byte big-endian sequence
number, then the sender's bytes untouched (one MAVLink 2 frame, or a few; the
transport never parses them)::

    +----------------------+---------------------------+
    | seq: uint64 BE       | data (0..max_payload-8 B) |
    +----------------------+---------------------------+

A sender's first sequence number is the wall clock in microseconds when its
link was made; each message adds 1. A restarted sender therefore carries on
above its earlier life (unless the clock stepped back by more than it sent).
A receiver drops any sequence number it accepted among the last ``size``
messages of that topic (:class:`SeqWindow`): that removes QoS 1 redeliveries
after reconnects and broker restarts, which can only repeat messages still
queued or in flight, i.e. fewer than the broker's ``max_queued_messages``
(1000) plus its in-flight window (20). ``state`` is instead kept only if its
sequence number is newer than the last one. ``status`` payloads are ASCII.
"""
from __future__ import annotations

import collections
import re
import ssl
import struct
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from .base import LinkCounters

__all__ = [
    "ROLES",
    "SEQ_PREFIX",
    "Inbox",
    "LinkTopics",
    "SeqWindow",
    "broker_address",
    "check_sat_id",
    "first_sequence",
    "frame",
    "topic_for",
    "unframe",
]

SEQ_PREFIX = struct.Struct(">Q")
ROLES = ("twin", "board")
_PEER = {"twin": "board", "board": "twin"}
_SAT_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def topic_for(sat_id: str, kind: str) -> str:
    """``suncatcher/<sat_id>/<kind>``; ``kind`` is ``tlm``, ``cmd``, ``state`` or ``status/<role>``."""
    return f"suncatcher/{sat_id}/{kind}"


def check_sat_id(sat_id: str) -> str:
    if not isinstance(sat_id, str) or not _SAT_ID.match(sat_id):
        raise ValueError(f"sat_id {sat_id!r}: 1-64 letters, digits, '_' or '-'")
    return sat_id


@dataclass(frozen=True)
class LinkTopics:
    """The topics one role uses for one satellite."""

    tx: str            # where its data goes: cmd for the twin, tlm for the board
    rx: str            # where the peer's data comes from
    status: str        # its own status
    peer_status: str
    state: str

    @classmethod
    def of(cls, sat_id: str, role: str) -> LinkTopics:
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, not {role!r}")
        check_sat_id(sat_id)
        tx, rx = ("cmd", "tlm") if role == "twin" else ("tlm", "cmd")
        return cls(tx=topic_for(sat_id, tx), rx=topic_for(sat_id, rx), status=topic_for(sat_id, f"status/{role}"),
                   peer_status=topic_for(sat_id, f"status/{_PEER[role]}"), state=topic_for(sat_id, "state"))


def broker_address(host: str, port: int | None, tls: ssl.SSLContext | None) -> tuple[str, int, ssl.SSLContext | None]:
    """``host`` or ``mqtt[s]://host[:port]`` -> (host, port, tls); ``mqtts`` without ``tls`` gets the system CAs."""
    if "://" not in host:
        return host, port or (8883 if tls else 1883), tls
    url = urlsplit(host)
    if url.scheme not in ("mqtt", "mqtts") or not url.hostname:
        raise ValueError(f"broker URL {host!r}: expected mqtt://host[:port] or mqtts://host[:port]")
    if url.scheme == "mqtts" and tls is None:
        tls = ssl.create_default_context()
    return url.hostname, port or url.port or (8883 if tls else 1883), tls


def first_sequence() -> int:
    return time.time_ns() // 1000


def frame(seq: int, data: bytes) -> bytes:
    return SEQ_PREFIX.pack(seq) + bytes(data)


def unframe(payload: bytes, max_payload: int) -> tuple[int, bytes] | None:
    """``(seq, data)``, or None for a payload too short or too long to be ours."""
    if not isinstance(payload, (bytes, bytearray)) or not SEQ_PREFIX.size <= len(payload) <= max_payload:
        return None
    return SEQ_PREFIX.unpack_from(payload)[0], bytes(payload[SEQ_PREFIX.size:])


class SeqWindow:
    """The last ``size`` sequence numbers accepted on one topic."""

    def __init__(self, size: int = 4096):
        self.size = size
        self._seen: set[int] = set()
        self._order: collections.deque[int] = collections.deque()

    def accept(self, seq: int) -> bool:
        """True the first time ``seq`` is seen within the window, False for a repeat."""
        if seq in self._seen:
            return False
        self._seen.add(seq)
        self._order.append(seq)
        if len(self._order) > self.size:
            self._seen.discard(self._order.popleft())
        return True


class Inbox:
    """What a link receives, after the wire's rules; every oddity is counted in ``counters.extra``.

    ``data`` holds de-duplicated payloads of ``topics.rx`` (at most ``limit``:
    the oldest is dropped and counted); ``peer_online`` and ``last_state``
    follow the peer's status and the newest state.
    """

    def __init__(self, topics: LinkTopics, counters: LinkCounters, *, limit: int, window: int, max_payload: int):
        self.topics, self.counters, self.max_payload = topics, counters, max_payload
        self.data: collections.deque[bytes] = collections.deque(maxlen=limit)
        self.peer_online: bool | None = None
        self.last_state: bytes | None = None
        self._window, self._state_seq = SeqWindow(window), -1

    def put(self, topic: str, payload: bytes) -> bool:
        """Take one incoming message; True if it queued new data."""
        extra, t = self.counters.extra, self.topics
        if topic == t.peer_status:
            self.peer_online = {b"online": True, b"offline": False}.get(bytes(payload), self.peer_online)
            return False
        unframed = unframe(payload, self.max_payload) if topic in (t.rx, t.state) else None
        if unframed is None:
            extra["bad_payload" if topic in (t.rx, t.state) else "unexpected_topic"] += 1
            return False
        seq, data = unframed
        if topic == t.state:
            if seq <= self._state_seq:
                extra["stale_state"] += 1
            else:
                self._state_seq, self.last_state = seq, data
            return False
        if not self._window.accept(seq):
            extra["duplicates"] += 1
            return False
        if len(self.data) == self.data.maxlen:
            extra["dropped_in"] += 1
        self.data.append(data)
        self.counters.bytes_in += len(data)
        self.counters.chunks_in += 1
        self.counters.last_rx_monotonic = time.monotonic()
        return True
