"""MQTT transport: one satellite's frames through a mosquitto broker, on aiomqtt 2.x (MQTT 5).

Topics and payloads are in :mod:`.mqtt_wire`: ``suncatcher/<sat_id>/tlm``
(board -> twin), ``/cmd`` (twin -> board), ``/status/<role>`` (retained
"online", last will "offline"), ``/state`` (retained last-known state); each
data payload is an 8-byte big-endian sequence number, then the frames.

Session: client id ``<role>-<sat_id>`` (one link per role and satellite on a
broker: a second one takes the session over), clean start off and a session
expiry, so the broker keeps the subscriptions and queued QoS 1 messages while
the link is away and paho keeps the unacknowledged outgoing ones. On a drop
the link reports it (``state`` "down", ``counters.link_lost``, one
:class:`LinkLost` from ``recv``), then re-enters the same client with capped
backoff and jitter and subscribes again; redelivered messages are dropped by
sequence number. ``clean_start=True`` wipes the session once when the link
opens (stale commands of an earlier run), never on reconnects.

``send`` returns once the broker acknowledged the message. An ACL refusal is
read from the MQTT 5 PUBACK reason code (aiomqtt drops it; see
:mod:`._mqtt_session`) and raises :class:`SecurityError` there. mosquitto 2.0
grants a forbidden subscription and delivers nothing, so a denied *read*
shows only as silence on the receiving side. Without a PUBACK within
``send_timeout``: :class:`BridgeTimeout`; the message stays in the session
and may still be delivered (QoS 1 is at least once).

Health: TCP_NODELAY on every socket (read back into ``counters.extra
["tcp_nodelay"]``; without it a request/response pays Nagle plus delayed ACK).
A hung broker is caught by MQTT keepalive: paho pings after ``keepalive`` s
without traffic and drops the link when no answer came ``keepalive`` s later
(~2x keepalive, plus up to 1 s of paho's housekeeping tick). A login refused
on opening raises :class:`BridgeInitError`; refused on a reconnect, it stops
the link for good (state "down"; ``send`` and ``recv`` raise it).
"""
from __future__ import annotations

import asyncio
import ssl
from typing import Self

import aiomqtt
from aiomqtt.exceptions import MqttConnectError

from ..errors import (
    BridgeError,
    BridgeInitError,
    BridgeOperationError,
    BridgeTimeout,
    LinkLost,
    SecurityError,
)
from ._mqtt_session import MqttSession
from .base import Backoff, LinkCounters
from .mqtt_wire import Inbox, LinkTopics, broker_address, first_sequence, frame

__all__ = ["MqttLink"]

_NOT_AUTHORIZED = 0x87
_AUTH_REFUSALS = {4, 5, 0x86, 0x87}   # MQTT 3 bad credentials / not authorised; MQTT 5 the same two
_EXTRA = ("duplicates", "bad_payload", "acl_denied", "dropped_in", "connect_failures", "unexpected_topic",
          "stale_state", "tcp_nodelay")


class MqttLink:
    """One satellite's link, as the twin (``send`` -> cmd, ``recv`` <- tlm) or as the board (the reverse).

    ``host`` is a name or ``mqtt://host:port`` / ``mqtts://host:port``
    (``mqtts`` without ``tls`` uses ``ssl.create_default_context()``); ``tls``
    is an ``ssl.SSLContext``. ``peer_online`` follows the peer's status (None
    until known); ``last_state`` (twin side) the board's :meth:`publish_state`.
    ``rx_limit`` bounds the receive queue (the oldest message is dropped and
    counted in ``dropped_in``); ``dedup_window`` must exceed what the broker
    can redeliver (see :mod:`.mqtt_wire`).
    """

    def __init__(self, host: str, port: int | None = None, *, sat_id: str, role: str, username: str,
                 password: str, tls: ssl.SSLContext | None = None, keepalive: int = 5, qos: int = 1,
                 clean_start: bool = False, session_expiry_s: int = 86400, backoff: Backoff | None = None,
                 connect_timeout: float = 5.0, send_timeout: float = 5.0, rx_limit: int = 4096,
                 dedup_window: int = 4096, max_payload: int = 65536, tcp_nodelay: bool = True):
        self.topics = LinkTopics.of(sat_id, role)
        if qos not in (0, 1, 2):
            raise ValueError(f"qos must be 0, 1 or 2, not {qos!r}")
        self.acked_send = qos > 0
        self.host, self.port, tls = broker_address(host, port, tls)
        self.sat_id, self.role, self.tls, self.qos = sat_id, role, tls, qos
        self.client_id = f"{role}-{sat_id}"
        self.name = f"mqtt:{self.host}:{self.port}/{sat_id}/{role}"
        self.state = "closed"
        self.counters = LinkCounters(extra=dict.fromkeys(_EXTRA, 0))
        self.send_timeout, self.max_payload, self.clean_start = send_timeout, max_payload, clean_start
        self._username = username
        self._session_args = {"username": username, "password": password, "client_id": self.client_id, "tls": tls,
                              "keepalive": int(keepalive), "timeout": connect_timeout,
                              "will_topic": self.topics.status, "session_expiry_s": session_expiry_s,
                              "tcp_nodelay": tcp_nodelay}
        self._backoff = backoff or Backoff(0.05, 2.0)
        self._seq = first_sequence()
        self._inbox = Inbox(self.topics, self.counters, limit=rx_limit, window=dedup_window, max_payload=max_payload)
        self._rx_event, self._state_changed = asyncio.Event(), asyncio.Event()
        self._lost_pending = False
        self._fatal: BridgeError | None = None
        self._session: MqttSession | None = None
        self._task: asyncio.Task | None = None

    # -- lifetime --------------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._task is not None:
            raise RuntimeError(f"{self.name}: MqttLink is reusable but not re-entrant")
        self._fatal, self._lost_pending, self._session = None, False, None
        self._set_state("connecting")
        try:
            if self.clean_start:
                wipe = MqttSession(self.host, self.port, clean=True, **self._session_args)
                try:
                    await wipe.enter()
                finally:
                    await wipe.abandon()
            self._session = MqttSession(self.host, self.port, clean=False, **self._session_args)
            self._session.deliver = self._deliver
            await self._open_session()
        except BaseException as exc:
            if self._session is not None:
                await self._session.abandon()
            self._set_state("closed")
            if isinstance(exc, aiomqtt.MqttError):
                raise BridgeInitError(_one_line(exc, self._username), link=self.name) from exc
            raise
        self._set_state("up")
        self._task = asyncio.create_task(self._run(), name=f"{self.name}:supervisor")
        return self

    async def __aexit__(self, *exc) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        session = self._session
        if session is not None and session.connected:
            try:
                await self._publish(self.topics.status, b"offline", retain=True, timeout=1.0)
            except (BridgeError, TimeoutError):
                pass      # the last will says "offline" for us
        if session is not None:
            await session.abandon()
            session.fail_pending(LinkLost("link closed", link=self.name))
        self._set_state("closed")
        self._rx_event.set()

    async def _open_session(self) -> None:
        """Connect, subscribe (again), announce "online"."""
        await self._session.enter()
        self.counters.extra["tcp_nodelay"] = self._session.tcp_nodelay()
        try:
            subs = [(self.topics.rx, self.qos), (self.topics.peer_status, 1)]
            if self.role == "twin":
                subs.append((self.topics.state, 1))
            await self._session.client.subscribe(subs)
            await self._publish(self.topics.status, b"online", retain=True)
        except (aiomqtt.MqttError, BridgeError) as exc:
            await self._session.leave()
            raise aiomqtt.MqttError(f"session setup failed: {exc}") from exc

    async def _run(self) -> None:
        """Supervisor: a bug leaves the link visibly broken, never silently dead."""
        try:
            await self._pump_and_reconnect()
        except Exception as exc:  # noqa: BLE001 -- whatever it is, the owner must see it
            self._fatal = BridgeOperationError(f"link supervisor failed: {exc!r}", link=self.name)
            self._fatal.__cause__ = exc
            self._set_state("down")
            self._rx_event.set()

    def _deliver(self, topic: str, payload: bytes) -> None:
        if self._inbox.put(topic, payload):
            self._rx_event.set()

    async def _pump_and_reconnect(self) -> None:
        while True:
            try:
                async for msg in self._session.client.messages:  # messages come through _deliver: ends on a drop
                    self._deliver(msg.topic.value, msg.payload)
            except aiomqtt.MqttError:
                pass
            await self._session.leave()
            self.counters.link_lost += 1
            self._lost_pending = True
            self._set_state("down")
            self._rx_event.set()
            while True:
                await asyncio.sleep(self._backoff.next())
                try:
                    await self._open_session()
                    break
                except MqttConnectError as exc:
                    if _reason(exc) in _AUTH_REFUSALS:
                        self._fatal = BridgeInitError(_one_line(exc, self._username), link=self.name)
                        self._rx_event.set()
                        return
                    self.counters.extra["connect_failures"] += 1
                except (aiomqtt.MqttError, OSError):
                    self.counters.extra["connect_failures"] += 1
            self._backoff.reset()
            self.counters.reconnects += 1
            self._set_state("up")

    # -- bytes in and out ----------------------------------------------------------------------

    async def send(self, data: bytes) -> None:
        """Publish ``data`` to the peer; returns once the broker acknowledged it.

        Raises LinkLost while the link is down (the message was not taken),
        SecurityError if the broker's ACL refused it, BridgeTimeout if no PUBACK
        came within ``send_timeout`` (the message may still be delivered).
        """
        await self._publish(self.topics.tx, self._framed(data))
        self.counters.bytes_out += len(data)
        self.counters.chunks_out += 1

    async def publish_state(self, data: bytes) -> None:
        """Board only: publish ``data`` as the retained last-known state."""
        if self.role != "board":
            raise BridgeOperationError("only the board publishes state", link=self.name)
        await self._publish(self.topics.state, self._framed(data), retain=True)

    async def recv(self) -> bytes:
        """The next de-duplicated payload from the peer; raises LinkLost once per drop."""
        while True:
            if self._fatal is not None:
                raise self._fatal
            if self._lost_pending:
                self._lost_pending = False
                raise LinkLost("broker connection lost; reconnecting", link=self.name)
            if self._inbox.data:
                return self._inbox.data.popleft()
            if self.state == "closed":
                raise BridgeOperationError("link is closed", link=self.name)
            self._rx_event.clear()
            await self._rx_event.wait()

    async def wait_state(self, *states: str, timeout: float) -> str:
        """Wait until ``state`` is one of ``states``; BridgeTimeout after ``timeout`` s."""
        try:
            async with asyncio.timeout(timeout):
                while self.state not in states:
                    await self._state_changed.wait()
        except TimeoutError:
            raise BridgeTimeout(f"still {self.state!r} after {timeout} s, wanted {states}", link=self.name) from None
        return self.state

    def _framed(self, data: bytes) -> bytes:
        if len(data) + 8 > self.max_payload:
            raise ValueError(f"{self.name}: {len(data)} bytes exceed max_payload {self.max_payload}")
        self._seq += 1
        return frame(self._seq, data)

    async def _publish(self, topic: str, payload: bytes, *, retain: bool = False, timeout: float | None = None):
        if self._fatal is not None:
            raise self._fatal
        if self._session is None or not self._session.connected:
            raise LinkLost(f"link is {self.state}", link=self.name)
        try:
            reason = await self._session.publish(topic, payload, self.qos, retain, timeout or self.send_timeout)
        except aiomqtt.MqttError as exc:
            self.counters.send_errors += 1
            raise BridgeOperationError(str(exc), link=self.name) from exc
        except TimeoutError:
            self.counters.send_errors += 1
            raise BridgeTimeout(f"no PUBACK for {topic} within {timeout or self.send_timeout} s",
                                link=self.name) from None
        if reason is not None and reason.is_failure:
            self.counters.send_errors += 1
            if reason.value == _NOT_AUTHORIZED:
                self.counters.extra["acl_denied"] += 1
                raise SecurityError(f"broker ACL refused publish to {topic} as {self._username!r}", link=self.name)
            raise BridgeOperationError(f"broker refused publish to {topic}: {reason}", link=self.name)

    @property
    def peer_online(self) -> bool | None:
        return self._inbox.peer_online

    @property
    def last_state(self) -> bytes | None:
        return self._inbox.last_state

    def _set_state(self, state: str) -> None:
        self.state = state
        self._state_changed.set()
        self._state_changed = asyncio.Event()


def _reason(exc: aiomqtt.MqttCodeError) -> int | None:
    return getattr(exc.rc, "value", exc.rc)


def _one_line(exc: aiomqtt.MqttError, username: str) -> str:
    if isinstance(exc, MqttConnectError) and _reason(exc) in _AUTH_REFUSALS:
        return f"broker refused login as {username!r} ({exc}); check the user name and password"
    return f"cannot connect to the broker: {' '.join(str(exc).split()) or type(exc).__name__}"
