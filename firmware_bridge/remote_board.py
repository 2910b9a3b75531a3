"""RemoteBoard: the HAL implemented over a codec and a transport.

To the executive it is a board like the simulated one. Underneath:

* lockstep: ``step_to(t)`` sends SC_STEP_REQUEST(seq, t) and waits for the
  three frame messages for ``t`` (and the SC_STEP_REPLY); no answer within
  ``step_timeout_s`` -> the request is sent again (a board answers a repeated
  step with the frame it already has), up to ``retries`` times, then
  :class:`~firmware_bridge.errors.BridgeTimeout` (the executive counts it and
  hands the flight software a stale frame);
* free-running: ``step_to(t)`` returns the newest complete frame the board
  streamed, re-timed to the twin's clock: ``t_ns = t`` and each group's sample
  time moved so that its age is the board-reported age plus the time since the
  frame arrived (a board that stops streaming reads as stale, not as frozen);
* ``command(cmd)`` sends SC_ACTUATOR_COMMAND with an incrementing sequence number.
  In lockstep it leaves with the next step request, in the same write or
  publish, when that comes before the event loop's next turn (the executive
  on a virtual clock); otherwise a flush task sends it on the loop's next
  turn. The board applies it before the step either way, so the physics
  and the telemetry are the same; it costs one write (or one QoS 1 publish)
  per step less. Over a transport whose ``send`` waits for an
  acknowledgement (``acked_send``, MQTT QoS 1), the step request's PUBACK is
  awaited alongside the reply, not before it.

Bounded, and every drop counted: a board that streams faster than the twin
steps (a flood) costs no memory. Free-running, only the newest frame is
kept; a frame replaced before any ``step_to`` took it counts in
``frames_dropped``. In lockstep at most ``_MAX_FRAMES`` answered frames wait
for their step (older ones are dropped and counted), and at most
``_MAX_PARTIAL`` incomplete frames wait for their missing parts
(``partials_dropped``). So ``frames_in == frames_used + frames_dropped +
frame_pending`` at all times. Commands never compete with telemetry: they go
out on the transport's send side, which never drops (``commands_out``).

A receive task (supervised, strong reference) feeds every chunk to the codec;
when the transport reports the link lost, the parser is reset. Link state and
counters are in :attr:`link_stats` for the flight software's FDIR and the
summary. Leaving the context sends the board's safe command, then closes.
"""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import time

from twin.hal import ActuatorCommand, BoardInfo, SensorFrame
from twin.supervisor import Supervisor

from .errors import BridgeError, BridgeTimeout, LinkLost
from .messages import (
    FRAME_GROUPS,
    FrameAssemblyError,
    command_to_message,
    message_class,
    messages_to_frame,
)

__all__ = ["RemoteBoard"]

log = logging.getLogger(__name__)


def _text(field) -> str:
    """A MAVLink char[] field as text (pymavlink gives str or bytes, NUL-padded)."""
    if isinstance(field, bytes):
        field = field.decode("utf-8", "replace")
    return field.rstrip("\x00").strip()
_FRAME_TYPES = {g.message for g in FRAME_GROUPS}
_MAX_PARTIAL = 64
_MAX_FRAMES = 16


class RemoteBoard:
    def __init__(self, transport, codec, *, rig: str, lockstep: bool = True, step_timeout_s: float = 1.0,
                 retries: int = 2):
        self.transport, self.codec = transport, codec
        self.info = BoardInfo(rig, transport.name.split(":", 1)[0], "unknown", lockstep)
        self.lockstep, self.step_timeout_s, self.retries = lockstep, step_timeout_s, retries
        self._sup = Supervisor()
        self._parts: dict[int, dict[str, object]] = {}
        self._frames: dict[int, SensorFrame] = {}
        self._latest: SensorFrame | None = None
        self._latest_arrival = 0
        self._latest_used = True
        self._arrived = asyncio.Event()
        self._step_seq = 0
        self._cmd_seq = 0
        self._out: list[bytes] = []        # encoded commands waiting for the next step request or flush
        self._flusher: asyncio.Task | None = None
        self._acked = bool(getattr(transport, "acked_send", False))
        self.boot_count: int | None = None
        self.link_faults = None  # set by the rig that owns the link (hil_rigs.rigs): link-level fault injection
        self.t_ns = 0  # the last step's target: scenario time as the link sees it
        self.link_stats = {"frames_in": 0, "frames_used": 0, "frames_dropped": 0, "partials_dropped": 0,
                           "commands_out": 0, "steps": 0, "step_retries": 0, "step_timeouts": 0,
                           "assembly_errors": 0, "link_lost": 0, "last_frame_monotonic": 0.0}

    async def __aenter__(self) -> "RemoteBoard":
        await self.transport.__aenter__()
        try:
            await self._sup.__aenter__()
            self._sup.start("rx", self._rx_loop)
        except BaseException:
            await self.transport.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(self, *exc) -> None:
        try:
            async with asyncio.timeout(1.0):
                await self._safe_command()
        except (TimeoutError, BridgeError, OSError):
            log.warning("could not send the safe command on exit")
        finally:
            flusher, self._flusher = self._flusher, None
            if flusher is not None:
                flusher.cancel()
                await asyncio.gather(flusher, return_exceptions=True)
            await self._sup.close()
            await self.transport.__aexit__(*exc)

    async def _rx_loop(self) -> None:
        while True:
            try:
                data = await self.transport.recv()
            except LinkLost:
                self.link_stats["link_lost"] += 1
                self.codec.reset()
                self._parts.clear()
                continue
            for msg in self.codec.feed(data):
                self._dispatch(msg)

    def _dispatch(self, msg) -> None:
        kind = msg.get_type()
        if kind in _FRAME_TYPES:
            parts = self._parts.setdefault(msg.t_ns, {})
            parts[kind] = msg
            if len(parts) == len(_FRAME_TYPES):
                del self._parts[msg.t_ns]
                try:
                    frame = messages_to_frame(parts.values())
                except FrameAssemblyError:
                    self.link_stats["assembly_errors"] += 1
                    return
                stats = self.link_stats
                stats["frames_in"] += 1
                stats["last_frame_monotonic"] = time.monotonic()
                if self.lockstep:
                    if frame.t_ns in self._frames or len(self._frames) >= _MAX_FRAMES:
                        stats["frames_dropped"] += 1  # a repeat, or answers nobody waits for
                        self._frames.pop(frame.t_ns if frame.t_ns in self._frames else min(self._frames))
                    self._frames[frame.t_ns] = frame
                elif self._latest is None or frame.t_ns >= self._latest.t_ns:
                    if not self._latest_used:
                        stats["frames_dropped"] += 1  # replaced before any step took it
                    self._latest, self._latest_used = frame, False
                    self._latest_arrival = time.monotonic_ns()
                else:
                    stats["frames_dropped"] += 1  # older than the one we hold
                self._arrived.set()
            if len(self._parts) > _MAX_PARTIAL:  # frames that will never complete (lost parts)
                for t in sorted(self._parts)[:-_MAX_PARTIAL // 2]:
                    del self._parts[t]
                    self.link_stats["partials_dropped"] += 1
        elif kind == "SC_BOARD_STATUS":
            self.boot_count = msg.boot_count
            firmware_id = _text(msg.firmware_id)
            if firmware_id and firmware_id != self.info.firmware_id:
                self.info = dataclasses.replace(self.info, firmware_id=firmware_id)

    async def _wait_frame(self, t_ns: int, timeout: float, sending: asyncio.Task | None = None) -> SensorFrame | None:
        deadline = time.monotonic() + timeout
        while True:
            if sending is not None and sending.done() and not sending.cancelled() and sending.exception():
                raise sending.exception()
            frame = self._frames.pop(t_ns, None) if self.lockstep else self._newest_retimed(t_ns)
            if frame is not None:
                if self.lockstep or not self._latest_used:
                    self.link_stats["frames_used"] += 1
                    self._latest_used = True
                return frame
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self._arrived.clear()
            try:
                async with asyncio.timeout(left):
                    await self._arrived.wait()
            except TimeoutError:
                return None

    def _newest_retimed(self, t_ns: int) -> SensorFrame | None:
        f = self._latest
        if f is None:
            return None
        waited = time.monotonic_ns() - self._latest_arrival
        sample = tuple(t_ns - (f.t_ns - s) - waited for s in f.sample_t_ns)
        return SensorFrame(t_ns, f.values, f.valid, sample)

    async def step_to(self, t_ns: int) -> SensorFrame:
        self.t_ns = t_ns
        if not self.lockstep:
            frame = await self._wait_frame(t_ns, self.step_timeout_s)
            if frame is None:
                raise BridgeTimeout("no frame streamed yet", link=self.transport.name)
            return frame
        self._step_seq += 1
        self.link_stats["steps"] += 1
        for attempt in range(self.retries + 1):
            if attempt:
                self.link_stats["step_retries"] += 1
            commands = self._take_out()
            data = commands + self.codec.encode(self._step_request(self._step_seq, t_ns))
            try:
                frame = await self._request(data, t_ns)
            except LinkLost:
                self._out.insert(0, commands)  # not taken by the link: the commands go with the next try
                raise
            if frame is not None:
                for old in [t for t in self._frames if t < t_ns]:
                    del self._frames[old]
                    self.link_stats["frames_dropped"] += 1
                return frame
        self.link_stats["step_timeouts"] += 1
        raise BridgeTimeout(f"no reply to step {self._step_seq} (t={t_ns} ns) after {self.retries + 1} tries",
                            link=self.transport.name)

    async def _request(self, data: bytes, t_ns: int) -> SensorFrame | None:
        if not self._acked:
            await self.transport.send(data)
            return await self._wait_frame(t_ns, self.step_timeout_s)
        sending = asyncio.create_task(self.transport.send(data))
        sending.add_done_callback(lambda _: self._arrived.set())
        try:
            return await self._wait_frame(t_ns, self.step_timeout_s, sending)
        finally:
            if not sending.done():
                sending.cancel()  # the frame came, or the wait ended: a PUBACK still due changes nothing
            await asyncio.gather(sending, return_exceptions=True)

    def _step_request(self, seq: int, t_ns: int):
        return message_class("SC_STEP_REQUEST")(seq & 0xFFFF_FFFF, t_ns)

    @property
    def frame_pending(self) -> int:
        """Frames received and kept, not yet taken by a step (see the module docstring's identity)."""
        return len(self._frames) if self.lockstep else int(not self._latest_used)

    async def command(self, cmd: ActuatorCommand) -> None:
        self._cmd_seq += 1
        data = self.codec.encode(command_to_message(cmd, self._cmd_seq))
        self.link_stats["commands_out"] += 1
        if not self.lockstep:
            await self.transport.send(data)
            return
        self._out.append(data)
        if len(self._out) == 1:
            asyncio.get_running_loop().call_soon(self._flush_soon)

    def _flush_soon(self) -> None:
        # Runs on the loop's next turn: nothing left to do when a step request took the commands along.
        if self._out and (self._flusher is None or self._flusher.done()):
            self._flusher = asyncio.create_task(self._flush(), name=f"{self.transport.name} command flush")

    async def _flush(self) -> None:
        while data := self._take_out():  # empty once a step request took the commands along
            try:
                await self.transport.send(data)
            except BridgeError as exc:
                self._out.insert(0, data)  # never dropped: it goes with the next step request
                log.warning("command not sent, kept for the next step: %s", exc)
                return

    def _take_out(self) -> bytes:
        data = b"".join(self._out)
        self._out.clear()
        return data

    async def _safe_command(self) -> None:
        await self.command(ActuatorCommand())
        data = self._take_out()
        if data:
            await self.transport.send(data)

    async def send_message(self, msg) -> None:
        """Encode (and sign) one MAVLink message and send it to the board (after any command still queued)."""
        await self.transport.send(self._take_out() + self.codec.encode(msg))
