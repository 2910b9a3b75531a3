"""FaultyLink: link-level faults between the twin and a board, around any transport.

``FaultyLink(inner, seed=..., now_ns=..., disconnector=...)`` is itself a
:class:`~firmware_bridge.transports.base.Transport`; the owner (``RemoteBoard``)
sees a worse wire. Faults are scheduled in *scenario* time with :meth:`add`
(objects with ``kind``, ``target``, ``value`` and ``active_at(t_s)``, e.g.
:class:`twin.sim.faults.FaultSpec`); ``now_ns()`` says what scenario time the
link is at (the rig passes the board's last step target). ``target`` picks
the direction: ``"to_board"``, ``"to_twin"``, or ``""`` for both.

Per MAVLink 2 frame (a sent or received chunk is split at frame boundaries;
the bytes of a frame cut across two chunks pass untouched):

* ``drop``, ``duplicate``, ``corrupt`` (one bit flipped in the payload or CRC,
  so the codec counts a CRC error), ``reorder`` (the frame is held back and
  goes out after the next one): with probability ``value``;
* ``delay``: everything in that direction goes out ``value`` seconds of wall
  time later (the link is slow; the scenario clock is not touched).

Decisions come from one ``random.Random`` per direction seeded from ``seed``,
so a run repeats. ``disconnect`` is real, done by the rig's ``disconnector``
(``async unplug()`` / ``async replug()``: kill and restart socat, stop and
restart the broker). While scenario time is inside the outage, ``send`` raises
:class:`~firmware_bridge.errors.LinkLost` at once (the executive counts a board
error and moves on: an outage of N ticks costs N failed steps, not N step
timeouts). The first ``send`` at or after the outage's end replugs and waits
(up to ``reconnect_timeout_s`` of wall time) for the inner link to be up again.

With no fault active the chunk goes straight through (one time check).
:attr:`stats` counts what was done; :attr:`kinds` is what this link can inject.
"""
from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import random
import time
from dataclasses import dataclass
from typing import Callable, Protocol

from ..errors import BridgeOperationError, LinkLost
from ..frames import STX, frame_length

__all__ = ["FaultyLink", "LinkFaultStats", "Disconnector", "FRAME_FAULTS", "LINK_FAULT_KINDS"]

log = logging.getLogger(__name__)

FRAME_FAULTS = ("drop", "delay", "duplicate", "reorder", "corrupt")
LINK_FAULT_KINDS = FRAME_FAULTS + ("disconnect",)
_DIRECTIONS = ("to_board", "to_twin")
_POLL_S = 0.01
_EXIT_SEND_S = 1.0  # on exit, how long delayed sends still due may take to go out


class Disconnector(Protocol):
    """What makes a ``disconnect`` real on a rig."""

    async def unplug(self) -> None: ...

    async def replug(self) -> None: ...


@dataclass
class LinkFaultStats:
    """What a :class:`FaultyLink` did, frames counted per direction together."""

    dropped: int = 0
    delayed: int = 0
    duplicated: int = 0
    reordered: int = 0
    corrupted: int = 0
    disconnects: int = 0
    refused_while_down: int = 0   # sends refused (LinkLost) during an outage
    delayed_send_errors: int = 0  # delayed sends that failed (other than on a lost link)


def split_frames(data: bytes) -> list[tuple[bytes, bool]]:
    """``data`` cut at MAVLink 2 frame boundaries: (piece, True) for a whole frame, (piece, False) for other bytes."""
    out, pos, n = [], 0, len(data)
    while pos < n:
        whole = False
        if data[pos] != STX:
            nxt = data.find(b"\xfd", pos + 1)
            end = n if nxt < 0 else nxt
        else:
            length = frame_length(data, pos)
            if length is None or pos + length > n:
                end = n                      # the start of a frame whose rest is in the next chunk
            elif length == 0:
                end = pos + 1                # not a MAVLink 2 header
            else:
                end, whole = pos + length, True
        out.append((data[pos:end], whole))
        pos = end
    return out


def _corrupt(frame: bytes, rng: random.Random) -> bytes:
    b = bytearray(frame)
    if len(b) >= 12 and b[0] == STX:
        first, stop = 10, min(len(b), 12 + b[1])  # payload and checksum, never the header
    else:
        first, stop = 0, len(b)
    i = rng.randrange(first, stop)
    b[i] ^= 1 << rng.randrange(8)
    return bytes(b)


class FaultyLink:
    """A transport that applies scheduled link faults to ``inner``; see the module docstring."""

    def __init__(self, inner, *, seed: int = 0, now_ns: Callable[[], int] | None = None,
                 disconnector: Disconnector | None = None, reconnect_timeout_s: float = 30.0):
        self.inner = inner
        self.name = inner.name
        self.now_ns = now_ns or (lambda: 0)
        self.disconnector = disconnector
        self.reconnect_timeout_s = reconnect_timeout_s
        self.kinds = frozenset(LINK_FAULT_KINDS if disconnector is not None else FRAME_FAULTS)
        self.stats = LinkFaultStats()
        self._specs: list = []
        self._rng = {d: random.Random(f"link-faults:{seed}:{d}") for d in _DIRECTIONS}
        self._held: dict[str, bytes | None] = dict.fromkeys(_DIRECTIONS)
        self._cache_t: int | None = None
        self._cache: dict[str, dict[str, float]] = {d: {} for d in _DIRECTIONS}
        self._down = False
        self._switching = asyncio.Lock()  # one unplug or replug at a time, whichever task sends first
        self._broken: BaseException | None = None
        self._rx_ready: list[bytes] = []  # chunks to hand out, in order
        self._rx_delayed: list = []     # heap of (release monotonic, n, chunk)
        self._order = itertools.count()
        self._rx_task: asyncio.Task | None = None
        self._tx_tasks: set[asyncio.Task] = set()
        self._hurry = asyncio.Event()  # set on exit: delayed sends go out at once

    # -- the transport ---------------------------------------------------------------------------

    @property
    def state(self) -> str:
        return self.inner.state

    @property
    def counters(self):
        return self.inner.counters

    @property
    def acked_send(self) -> bool:
        """As the inner transport's (``send`` returns once the peer's broker acknowledged)."""
        return bool(getattr(self.inner, "acked_send", False))

    async def __aenter__(self) -> "FaultyLink":
        await self.inner.__aenter__()
        return self

    async def __aexit__(self, *exc) -> None:
        # Delayed sends still due go out now (the last may be the board's safe command), within a time limit.
        tx = list(self._tx_tasks)
        self._tx_tasks.clear()
        self._hurry.set()
        if tx:
            _, late = await asyncio.wait(tx, timeout=_EXIT_SEND_S)
            for t in late:
                t.cancel()
            await asyncio.gather(*tx, return_exceptions=True)
        rx, self._rx_task = self._rx_task, None
        if rx is not None:
            rx.cancel()
            await asyncio.gather(rx, return_exceptions=True)
        await self.inner.__aexit__(*exc)

    def add(self, spec) -> None:
        """Schedule a link fault (scenario time); ``ValueError`` for a kind or direction this link cannot do."""
        from twin.sim.faults import unsupported_link_fault
        problem = unsupported_link_fault(spec.kind, self.kinds, self.name)
        if problem:
            raise ValueError(problem)
        if spec.target not in ("", *_DIRECTIONS):
            raise ValueError(f"link fault {spec.kind}: target must be to_board, to_twin or empty, not {spec.target!r}")
        self._specs.append(spec)
        self._cache_t = None

    async def send(self, data: bytes) -> None:
        await self._gate()
        faults = self._active("to_board")
        if not faults and self._held["to_board"] is None:
            await self.inner.send(data)
            return
        out, delay = self._apply("to_board", faults, data)
        if not out:
            return
        payload = b"".join(out)
        if delay > 0:
            task = asyncio.create_task(self._send_later(payload, delay), name=f"{self.name} delayed send")
            self._tx_tasks.add(task)
            task.add_done_callback(self._tx_tasks.discard)
        else:
            await self.inner.send(payload)

    async def recv(self) -> bytes:
        while True:
            if self._rx_ready:
                return self._rx_ready.pop(0)
            now = time.monotonic()
            while self._rx_delayed and self._rx_delayed[0][0] <= now:
                self._rx_ready.append(heapq.heappop(self._rx_delayed)[2])
            if self._rx_ready:
                continue
            if self._rx_task is None and not self._rx_delayed:
                try:
                    data = await self.inner.recv()
                except LinkLost:
                    self._held["to_twin"] = None
                    raise
            else:
                if self._rx_task is None:
                    self._rx_task = asyncio.ensure_future(self.inner.recv())
                wait = self._rx_delayed[0][0] - now if self._rx_delayed else None
                done, _ = await asyncio.wait({self._rx_task}, timeout=wait)
                if not done:
                    continue
                task, self._rx_task = self._rx_task, None
                if task.exception() is not None:
                    if isinstance(task.exception(), LinkLost):
                        self._held["to_twin"] = None
                    raise task.exception()
                data = task.result()
            faults = self._active("to_twin")
            if not faults and self._held["to_twin"] is None:
                return data
            out, delay = self._apply("to_twin", faults, data)
            if delay > 0:
                for chunk in out:
                    heapq.heappush(self._rx_delayed, (time.monotonic() + delay, next(self._order), chunk))
            else:
                self._rx_ready.extend(out)

    # -- scheduling ------------------------------------------------------------------------------

    def _active(self, direction: str) -> dict[str, float]:
        t = self.now_ns()
        if t != self._cache_t:
            self._cache_t = t
            t_s = t / 1e9
            for d in _DIRECTIONS:
                act: dict[str, float] = {}
                for s in self._specs:
                    if s.kind != "disconnect" and s.target in ("", d) and s.active_at(t_s):
                        act[s.kind] = max(act.get(s.kind, 0.0), float(s.value))
                self._cache[d] = act
        return self._cache[direction]

    def _disconnected(self) -> bool:
        t_s = self.now_ns() / 1e9
        return any(s.kind == "disconnect" and s.active_at(t_s) for s in self._specs)

    async def _gate(self) -> None:
        if self._broken is not None:
            raise BridgeOperationError("link fault: the link could not be restored", link=self.name) \
                from self._broken
        if self.disconnector is None:
            return
        if self._disconnected() != self._down:
            async with self._switching:
                down = self._disconnected()
                if down and not self._down:
                    self._down = True
                    self.stats.disconnects += 1
                    log.info("%s: link fault: unplugging at t=%.3f s", self.name, self.now_ns() / 1e9)
                    await self._call(self.disconnector.unplug)
                    await self._wait_state(lambda s: s != "up", 10.0)
                elif not down and self._down:
                    log.info("%s: link fault: replugging at t=%.3f s", self.name, self.now_ns() / 1e9)
                    await self._call(self.disconnector.replug)
                    await self._wait_state(lambda s: s == "up", self.reconnect_timeout_s)
                    self._down = False
        if self._down:
            self.stats.refused_while_down += 1
            raise LinkLost(f"link fault: disconnected at t={self.now_ns() / 1e9:g} s", link=self.name)

    async def _call(self, fn) -> None:
        try:
            await fn()
        except Exception as exc:  # a rig that cannot restore its link stays visibly broken
            self._broken = exc
            log.error("%s: link fault could not be applied: %s", self.name, exc)
            raise BridgeOperationError(f"link fault: {exc}", link=self.name) from exc

    async def _wait_state(self, ok: Callable[[str], bool], timeout_s: float) -> None:
        """Wait for the inner link's state; on timeout the link is broken for good (``BridgeOperationError``)."""
        deadline = time.monotonic() + timeout_s
        while not ok(self.inner.state):
            if time.monotonic() >= deadline:
                err = BridgeOperationError(f"link fault: the link is still {self.inner.state!r} after "
                                           f"{timeout_s:g} s", link=self.name)
                self._broken = err
                log.error("%s: %s", self.name, err)
                raise err
            await asyncio.sleep(_POLL_S)

    # -- frames ----------------------------------------------------------------------------------

    def _apply(self, direction: str, faults: dict[str, float], data: bytes) -> tuple[list[bytes], float]:
        rng, st, out = self._rng[direction], self.stats, []
        held = self._held[direction]
        p_drop, p_dup = faults.get("drop", 0.0), faults.get("duplicate", 0.0)
        p_corrupt, p_reorder = faults.get("corrupt", 0.0), faults.get("reorder", 0.0)
        for frame, whole in split_frames(data):
            if not whole:
                out.append(frame)
                continue
            if p_drop and rng.random() < p_drop:
                st.dropped += 1
                continue
            if p_corrupt and rng.random() < p_corrupt:
                frame = _corrupt(frame, rng)
                st.corrupted += 1
            copies = [frame]
            if p_dup and rng.random() < p_dup:
                copies.append(frame)
                st.duplicated += 1
            for c in copies:
                if held is not None:
                    out += (c, held)
                    held = None
                elif p_reorder and rng.random() < p_reorder:
                    held = c
                    st.reordered += 1
                else:
                    out.append(c)
        self._held[direction] = held
        delay = faults.get("delay", 0.0)
        if delay > 0 and out:
            st.delayed += len(out)
        return out, delay

    async def _send_later(self, payload: bytes, delay: float) -> None:
        try:
            await asyncio.wait_for(self._hurry.wait(), delay)
        except TimeoutError:
            pass
        try:
            await self.inner.send(payload)
        except LinkLost:
            pass  # lost on a link that went down meanwhile, as it would be
        except Exception as exc:  # nobody awaits this task: say so here, not as "never retrieved"
            self.stats.delayed_send_errors += 1
            log.warning("%s: a delayed send failed: %s", self.name, exc)
