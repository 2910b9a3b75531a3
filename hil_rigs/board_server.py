"""BoardServer: a board's side of the protocol, served over any transport.

It wraps a HAL board (the simulated one, in the emulator) and answers the
twin exactly as firmware would: SC_STEP_REQUEST(seq, t) -> step to t (a
repeated request for the time already reached returns the same frame again),
send the three frame messages and SC_STEP_REPLY(seq, t);
SC_ACTUATOR_COMMAND -> apply (duplicates by ``cmd_seq`` ignored);
SC_FAULT_INJECT -> schedule the fault in the board's own fault injector
(``board.faults.add``), exactly as a scenario file's ``[[faults]]`` entry. It
sends a
HEARTBEAT and SC_BOARD_STATUS once per wall second. Bad input is dropped and
counted by the codec; nothing the twin sends can stop the server: a fault
injection that cannot be applied (unknown kind or target, a link-level kind,
a non-finite or absurd value, a board without a fault injector, or a codec that
would accept it unsigned) is dropped and counted in ``stats["bad_faults"]``.

:meth:`BoardServer.stream` is the free-running mode of a physical board: it
steps the board on the wall clock at the board's own period and streams every
frame, while :meth:`serve` applies the commands that arrive.
"""
from __future__ import annotations

import asyncio
import logging
import math
import time

from firmware_bridge.errors import BoardError, LinkLost
from firmware_bridge.messages import (FAULT_INJECT_MESSAGE, fault_inject_fields, frame_to_messages, message_class,
                                      message_to_command)

__all__ = ["BoardServer", "fault_spec", "make_fault_spec"]

log = logging.getLogger(__name__)

#: Largest chip or string count a device fault may name (the wire carries a float).
_MAX_DEVICE_VALUE = 65535.0


def _seconds(ns: int) -> str:
    # Exact decimal of ns / 1e9, so it parses to the same float as the board's t_ns / 1e9.
    return f"{ns // 1_000_000_000}.{ns % 1_000_000_000:09d}"


def fault_spec(kind: str, target: str, at_ns: int, duration_ns: int = 0, value: float = 0.0):
    """The :class:`~twin.sim.faults.FaultSpec` (any kind) at scenario time ``at_ns`` for ``duration_ns`` (0: rest
    of the run); ValueError for a negative time or what ``FaultSpec`` refuses."""
    from twin.sim.faults import FaultSpec
    if at_ns < 0 or duration_ns < 0:
        raise ValueError(f"fault times must be >= 0 ns, got at {at_ns}, duration {duration_ns}")
    return FaultSpec(at=_seconds(at_ns) if at_ns else "0s", kind=kind, target=target,
                     duration=_seconds(duration_ns) if duration_ns else "", value=float(value))


def make_fault_spec(kind: str, target: str, at_ns: int, duration_ns: int = 0, value: float = 0.0):
    """:func:`fault_spec` for a fault a board applies itself (sensor and device kinds).

    ValueError for a link-level kind, an unknown kind or target, a negative
    time, or a device-fault value that is not a finite count.
    """
    from twin.sim.faults import DEVICE_FAULTS, SENSOR_FAULTS
    if kind not in SENSOR_FAULTS + DEVICE_FAULTS:
        raise ValueError(f"a board applies sensor and device faults only, not {kind!r}")
    if kind in DEVICE_FAULTS and not (math.isfinite(value) and 0.0 <= value <= _MAX_DEVICE_VALUE):
        raise ValueError(f"fault {kind}: value must be a count 0 .. {_MAX_DEVICE_VALUE:g}, got {value!r}")
    return fault_spec(kind, target, at_ns, duration_ns, value)


class BoardServer:
    def __init__(self, board, transport, codec, *, firmware_id: str = "emulator"):
        self.board, self.transport, self.codec = board, transport, codec
        self.firmware_id = firmware_id
        self.last_frame = None
        self.last_cmd_seq: int | None = None
        self.stats = {"steps": 0, "repeats": 0, "commands": 0, "duplicates": 0, "errors": 0, "faults": 0,
                      "bad_faults": 0}
        signing = getattr(codec, "signing", None)
        # Fault injection changes the board's physics: only over a codec that drops it unsigned.
        self._faults_signed = signing is not None and FAULT_INJECT_MESSAGE in signing.command_messages
        self._next_status = 0.0

    async def serve(self) -> None:
        """Serve until cancelled."""
        while True:
            try:
                data = await self.transport.recv()
            except LinkLost:
                self.codec.reset()
                continue
            for msg in self.codec.feed(data):
                try:
                    await self._handle(msg)
                except LinkLost:
                    break
                except BoardError as exc:
                    self.stats["errors"] += 1
                    log.warning("board refused: %s", exc)
            await self._maybe_status()

    async def stream(self, period_ns: int) -> None:
        """Free-running: step the board every ``period_ns`` of wall time and send each frame (until cancelled)."""
        start = time.monotonic()
        k = 0
        while True:
            delay = start + k * period_ns / 1e9 - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            frame = await self.board.step_to(k * period_ns)
            self.last_frame = frame
            self.stats["steps"] += 1
            try:
                await self.transport.send(b"".join(self.codec.encode(m) for m in frame_to_messages(frame)))
            except LinkLost:
                pass
            k += 1

    async def _handle(self, msg) -> None:
        kind = msg.get_type()
        if kind == "SC_STEP_REQUEST":
            if self.last_frame is not None and self.last_frame.t_ns == msg.t_ns:
                self.stats["repeats"] += 1
                frame = self.last_frame
            else:
                frame = await self.board.step_to(msg.t_ns)
                self.last_frame = frame
                self.stats["steps"] += 1
            out = b"".join(self.codec.encode(m) for m in frame_to_messages(frame))
            out += self.codec.encode(message_class("SC_STEP_REPLY")(msg.seq, msg.t_ns))
            await self.transport.send(out)
        elif kind == "SC_ACTUATOR_COMMAND":
            if msg.cmd_seq == self.last_cmd_seq:
                self.stats["duplicates"] += 1
                return
            self.last_cmd_seq = msg.cmd_seq
            self.stats["commands"] += 1
            await self.board.command(message_to_command(msg))
        elif kind == FAULT_INJECT_MESSAGE:
            self._inject(msg)

    def _inject(self, msg) -> None:
        faults = getattr(self.board, "faults", None)
        try:
            if not self._faults_signed:
                raise ValueError("fault injection needs a codec that accepts it only signed")
            if faults is None:
                raise ValueError("this board has no fault injector")
            f = fault_inject_fields(msg)
            spec = make_fault_spec(f.kind, f.target, f.at_ns, f.duration_ns, f.value)
        except ValueError as exc:
            self.stats["bad_faults"] += 1
            if self.stats["bad_faults"] <= 3:
                log.warning("fault injection dropped: %s", exc)
            return
        faults.add(spec)
        self.stats["faults"] += 1

    async def _maybe_status(self) -> None:
        now = time.monotonic()
        if now < self._next_status:
            return
        self._next_status = now + 1.0
        boot = int(getattr(self.board, "boot_count", 1)) & 0xFFFF
        t_ns = self.last_frame.t_ns if self.last_frame is not None else 0
        status = message_class("SC_BOARD_STATUS")(t_ns, boot, 0, self.firmware_id.encode()[:32])
        try:
            await self.transport.send(self.codec.encode(status))
        except LinkLost as exc:
            log.debug("status not sent: %s", exc)
