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
* ``command(cmd)``: commands are full state (each ActuatorCommand replaces
  the previous one entirely), so only the newest unsent one is kept, as the
  object, not as bytes. It gets its ``cmd_seq`` (the next number) and is
  encoded and signed only when it goes on the wire: free-running, at once;
  in lockstep, with the next step request, in the same write or publish,
  when that comes before the event loop's next turn (the executive on a
  virtual clock), else from a flush task (supervised) on the loop's next
  turn. The board applies it before the step either way, so the physics and
  the telemetry are the same. Signed when sent, it is never older than a
  frame the board already accepted (the replay table would refuse it), and
  on a link without errors the board sees ``cmd_seq`` 1, 2, 3, ... contiguous.
  On ANY exception from the send (link lost, no acknowledgement, a transport
  bug) the command is kept and goes with the next try, signed afresh, under
  the ``cmd_seq`` it was first tried with (the board ignores a repeat of the
  one it applied last); it leaves the queue only once sent, or when a newer
  command replaces it. A replaced command is not lost, it is superseded (the
  newer one says everything it said): counted in ``commands_superseded``; a
  gap in ``cmd_seq`` at the board is a replaced command that was tried and
  may never have arrived. After an outage only the newest command goes out,
  not the history. ``commands_out`` counts commands sent; ``commands_in ==
  commands_out + commands_superseded + command_pending``. Over a transport
  whose ``send`` waits for an acknowledgement (``acked_send``, MQTT QoS 1),
  the step request's PUBACK is awaited alongside the reply, not before it; a
  reply to the step proves the command (in the same publish) arrived.

Bounded, and every drop counted: a board that streams faster than the twin
steps (a flood) costs no memory. Free-running, only the newest frame is
kept; a frame replaced before any ``step_to`` took it counts in
``frames_dropped``. In lockstep at most ``_MAX_FRAMES`` answered frames wait
for their step (older ones are dropped and counted), and at most
``_MAX_PARTIAL`` incomplete frames wait for their missing parts
(``partials_dropped``). So ``frames_in == frames_used + frames_dropped +
frame_pending`` at all times. Commands never compete with telemetry: they go
out on the transport's send side, and at most one waits.

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
        self._cmd_seq = 0                  # the last cmd_seq given to a command
        self._pending: tuple[int, ActuatorCommand] | None = None  # (generation, newest unsent command)
        self._pending_seq: int | None = None  # its cmd_seq, once it was first tried
        self._gen = 0                      # commands given to command(), numbered
        self._in_flight: dict[int, list] = {}  # generation -> [sends of it under way, one of them went out]
        self._flush_due = False
        self._closing = False
        self._acked = bool(getattr(transport, "acked_send", False))
        self.boot_count: int | None = None
        self.link_faults = None  # set by the rig that owns the link (hil_rigs.rigs): link-level fault injection
        self.t_ns = 0  # the last step's target: scenario time as the link sees it
        self.link_stats = {"frames_in": 0, "frames_used": 0, "frames_dropped": 0, "partials_dropped": 0,
                           "commands_in": 0, "commands_out": 0, "commands_superseded": 0,
                           "steps": 0, "step_retries": 0, "step_timeouts": 0,
                           "assembly_errors": 0, "link_lost": 0, "last_frame_monotonic": 0.0}

    async def __aenter__(self) -> "RemoteBoard":
        self._closing = False
        await self.transport.__aenter__()
        try:
            await self._sup.__aenter__()
            self._sup.start("rx", self._rx_loop)
        except BaseException:
            await self.transport.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(self, *exc) -> None:
        self._closing = True
        try:
            async with asyncio.timeout(1.0):
                await self._safe_command()
        except (TimeoutError, BridgeError, OSError):
            log.warning("could not send the safe command on exit")
        finally:
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
            gen, data = self._command_bytes()
            try:
                data += self.codec.encode(self._step_request(self._step_seq, t_ns))
            except BaseException:
                self._settle(gen, False)
                raise
            frame = await self._request(data, t_ns, gen)
            if frame is not None:
                for old in [t for t in self._frames if t < t_ns]:
                    del self._frames[old]
                    self.link_stats["frames_dropped"] += 1
                return frame
        self.link_stats["step_timeouts"] += 1
        raise BridgeTimeout(f"no reply to step {self._step_seq} (t={t_ns} ns) after {self.retries + 1} tries",
                            link=self.transport.name)

    async def _request(self, data: bytes, t_ns: int, gen: int | None) -> SensorFrame | None:
        """Send ``data`` (command ``gen``, if any, and a step request); the frame for ``t_ns`` or None."""
        if not self._acked:
            await self._send(data, gen)
            return await self._wait_frame(t_ns, self.step_timeout_s)
        sending = asyncio.create_task(self.transport.send(data))
        sending.add_done_callback(lambda _: self._arrived.set())
        frame = None
        try:
            frame = await self._wait_frame(t_ns, self.step_timeout_s, sending)
            return frame
        finally:
            if not sending.done():
                sending.cancel()  # the frame came, or the wait ended: a PUBACK still due changes nothing
            await asyncio.gather(sending, return_exceptions=True)
            acked = not sending.cancelled() and sending.exception() is None
            self._settle(gen, frame is not None or acked)  # a reply proves the publish arrived

    def _step_request(self, seq: int, t_ns: int):
        return message_class("SC_STEP_REQUEST")(seq & 0xFFFF_FFFF, t_ns)

    @property
    def frame_pending(self) -> int:
        """Frames received and kept, not yet taken by a step (see the module docstring's identity)."""
        return len(self._frames) if self.lockstep else int(not self._latest_used)

    @property
    def command_pending(self) -> int:
        """1 while a command waits to be sent (the newest only), else 0."""
        return int(self._pending is not None)

    async def command(self, cmd: ActuatorCommand) -> None:
        """Queue ``cmd`` in place of any unsent one; see the module docstring for when it goes out."""
        self._replace(cmd)
        if not self.lockstep:
            await self._send_pending()
        elif not self._flush_due:
            self._flush_due = True
            asyncio.get_running_loop().call_soon(self._flush_soon)

    def _replace(self, cmd: ActuatorCommand) -> None:
        if self._pending is not None and not self._in_flight.get(self._pending[0]):
            self.link_stats["commands_superseded"] += 1  # a send under way settles its own count
        self._gen += 1
        self._pending, self._pending_seq = (self._gen, cmd), None
        self.link_stats["commands_in"] += 1

    def _command_bytes(self) -> tuple[int | None, bytes]:
        """The pending command encoded and signed now, under its cmd_seq (given at its first try); marked in flight."""
        if self._pending is None:
            return None, b""
        gen, cmd = self._pending
        if self._pending_seq is None:
            self._cmd_seq += 1
            self._pending_seq = self._cmd_seq
        data = self.codec.encode(command_to_message(cmd, self._pending_seq))
        self._in_flight.setdefault(gen, [0, False])[0] += 1
        return gen, data

    def _settle(self, gen: int | None, sent: bool) -> None:
        """A send of command ``gen`` ended: sent, or failed (then it stays queued unless replaced)."""
        if gen is None:
            return
        entry = self._in_flight[gen]
        entry[0] -= 1
        entry[1] = entry[1] or sent
        current = self._pending is not None and self._pending[0] == gen
        if sent and current:
            self._pending = self._pending_seq = None
            current = False
        if entry[0] == 0:  # its last send ended: count it once, out or (replaced, never out) superseded
            del self._in_flight[gen]
            if entry[1]:
                self.link_stats["commands_out"] += 1
            elif not current:
                self.link_stats["commands_superseded"] += 1

    async def _send(self, data: bytes, gen: int | None) -> None:
        sent = False
        try:
            await self.transport.send(data)
            sent = True
        finally:
            self._settle(gen, sent)

    async def _send_pending(self) -> None:
        """Send the pending command, if any, alone."""
        gen, data = self._command_bytes()
        if data:
            await self._send(data, gen)

    def _flush_soon(self) -> None:
        # Runs on the loop's next turn: nothing to do when a step request took the command along
        # (sent, or still waiting for its PUBACK: a second copy would only queue behind it).
        self._flush_due = False
        rec = self._sup.records.get("command flush")
        if self._unsent() and not self._closing and (rec is None or rec.task is None or rec.task.done()):
            self._sup.start("command flush", self._flush)

    def _unsent(self) -> bool:
        return self._pending is not None and self._pending[0] not in self._in_flight

    async def _flush(self) -> None:
        if not self._unsent():
            return
        try:
            await self._send_pending()
        except BridgeError as exc:
            log.warning("command not sent, kept for the next step: %s", exc)

    async def _safe_command(self) -> None:
        self._replace(ActuatorCommand())
        await self._send_pending()

    async def send_message(self, msg) -> None:
        """Encode (and sign) one MAVLink message and send it to the board (after any command still queued)."""
        gen, data = self._command_bytes()
        try:
            data += self.codec.encode(msg)
        except BaseException:
            self._settle(gen, False)
            raise
        await self._send(data, gen)
