"""What every transport is: an async context manager that moves bytes and reports its state.

A transport knows nothing of MAVLink: the owner (``RemoteBoard``) feeds what
:meth:`Transport.recv` returns to its codec and sends what its codec encodes.
Stream transports (serial) return arbitrary chunks; message transports (MQTT,
UDP) return one message payload per call.

Lifetime: ``async with transport:`` opens the link (raising
:class:`~firmware_bridge.errors.BridgeInitError` if it cannot be opened at all)
and starts a supervised reconnect loop; leaving it closes everything and
cancels every task it started (idempotent). When an open link drops, the
transport reports it -- ``state`` goes ``"down"``, ``counters.link_lost`` and
the next :meth:`recv` raises :class:`~firmware_bridge.errors.LinkLost` once, so
the owner resets its parser -- and reopens it on its own with capped
exponential backoff and jitter. ``send`` while the link is down raises
``LinkLost`` (the owner decides whether to retry); it never blocks the loop on I/O.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

__all__ = ["Transport", "LinkCounters", "Backoff", "LINK_STATES"]

LINK_STATES = ("down", "connecting", "up", "closed")


@dataclass
class LinkCounters:
    """Link-level counters, part of the board's telemetry."""

    bytes_in: int = 0
    bytes_out: int = 0
    chunks_in: int = 0
    chunks_out: int = 0
    link_lost: int = 0
    reconnects: int = 0
    send_errors: int = 0
    dropped_out: int = 0          # messages discarded by the transport's own policy (e.g. queue full)
    last_rx_monotonic: float = 0.0
    extra: dict = field(default_factory=dict)


@runtime_checkable
class Transport(Protocol):
    name: str                     # e.g. "serial:/dev/serial/by-id/usb-FTDI_..." or "mqtt:127.0.0.1:1883/sat1"
    state: str                    # one of LINK_STATES
    counters: LinkCounters
    # Optional: True when ``send`` returns only once the peer (broker) acknowledged, so an owner
    # waiting for an answer should await the acknowledgement alongside it rather than before.
    # acked_send: bool

    async def __aenter__(self) -> "Transport": ...

    async def __aexit__(self, *exc) -> None: ...

    async def send(self, data: bytes) -> None:
        """Queue ``data`` for the link; raises LinkLost while the link is down."""
        ...

    async def recv(self) -> bytes:
        """The next chunk (stream) or message (MQTT, UDP); raises LinkLost once per drop."""
        ...


class Backoff:
    """Capped exponential backoff with full jitter: ``next()`` gives the next delay in seconds."""

    def __init__(self, first_s: float = 0.05, cap_s: float = 2.0, rng: random.Random | None = None):
        self.first_s, self.cap_s = first_s, cap_s
        self.rng = rng or random.Random()
        self.attempt = 0

    def next(self) -> float:
        ceiling = min(self.cap_s, self.first_s * (2 ** self.attempt))
        self.attempt += 1
        return self.rng.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self.attempt = 0
