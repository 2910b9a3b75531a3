"""One aiomqtt 2.x client, re-entered across reconnects, with the gaps the MQTT link needs closed.

The same ``aiomqtt.Client`` (hence the same paho client) is kept for the
link's whole life, because paho holds the unacknowledged outgoing QoS 1
messages of the session and resends them after a reconnect. aiomqtt 2.x
(checked against 2.5.1) needs four things done around it, each reaching one
private attribute, all covered by ``tests/bridge/test_mqtt_link.py``:

* PUBACK reason codes: ``Client.publish`` waits for the PUBACK and drops its
  MQTT 5 reason code, so an ACL refusal (0x87) looks like success. We publish
  through the paho client and chain paho's ``on_publish`` to read it per mid.
* Re-entry after an unexpected drop leaves ``_connected`` completed, so the
  next ``__aenter__`` returns before -- or despite a refused -- CONNACK; and
  leaves ``_disconnected`` completed with an exception that is never read.
* A connect that timed out or was cancelled leaves paho's socket half-open,
  with aiomqtt's reader and housekeeping task on it, until paho's keepalive
  closes it; the housekeeping task is cancelled, never awaited.
* Writes: aiomqtt arms an event-loop writer for every outgoing packet with
  ``call_soon_threadsafe``, so a packet leaves two loop iterations after it was
  queued, and an arming still pending when the socket closes hits a closed fd.
  We write at once -- ``publish`` flushes before it returns, a PUBACK paho
  queued while reading goes out on the next iteration -- and arm a writer only
  for what the kernel did not take, never for a socket paho has replaced.
* TCP_NODELAY goes through aiomqtt's public ``socket_options``; we read it
  back from the paho socket to report it.
* Reads: aiomqtt queues each message and its ``messages`` iterator spends a
  task and an ``asyncio.wait`` per message, two loop iterations before the
  owner sees it. With ``deliver`` set, paho's ``on_message`` (which runs on
  the event loop, inside aiomqtt's reader callback) hands each message to it
  at once; ``client.messages`` then only tells the owner of a disconnect.
"""
from __future__ import annotations

import asyncio
import socket
import ssl
import threading
from typing import Callable

import aiomqtt
import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

__all__ = ["MqttSession"]

_CORK = getattr(socket, "TCP_CORK", None)  # Linux only; elsewhere each packet is its own segment


class MqttSession:
    """``enter``/``leave`` one connection at a time; ``publish`` returns the broker's reason code."""

    def __init__(self, host: str, port: int, *, username: str, password: str, client_id: str,
                 tls: ssl.SSLContext | None, keepalive: int, timeout: float, will_topic: str, clean: bool,
                 session_expiry_s: int, tcp_nodelay: bool, ack_delay_s: float = 0.002):
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 0 if clean else session_expiry_s
        self.client = aiomqtt.Client(
            host, port, username=username, password=password, identifier=client_id,
            protocol=aiomqtt.ProtocolVersion.V5, clean_start=clean, properties=props, keepalive=keepalive,
            timeout=timeout, tls_context=tls, will=aiomqtt.Will(will_topic, b"offline", qos=1, retain=True),
            socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, int(tcp_nodelay))])
        self.connected = False
        self._paho: paho.Client = self.client._client
        self._acks: dict[int, asyncio.Future] = {}
        aiomqtt_on_publish = self._paho.on_publish

        def on_publish(client, userdata, mid, reason_code, properties):
            fut = self._acks.pop(mid, None)
            if fut is not None and not fut.done():
                fut.set_result(reason_code)
            aiomqtt_on_publish(client, userdata, mid, reason_code, properties)
        self._paho.on_publish = on_publish
        #: ``deliver(topic, payload)``, called for each incoming message; None: aiomqtt's queue.
        self.deliver: Callable[[str, bytes], None] | None = None
        aiomqtt_on_message = self._paho.on_message

        def on_message(client, userdata, message):
            if self.deliver is None:
                aiomqtt_on_message(client, userdata, message)
            else:
                self.deliver(message.topic, message.payload)
        self._paho.on_message = on_message
        self._loop, self._loop_thread = asyncio.get_running_loop(), threading.get_ident()
        self._armed: socket.socket | None = None
        self._ack_delay, self._delayed = ack_delay_s, None
        self._paho.on_socket_register_write = self._on_register_write
        self._paho.on_socket_unregister_write = self._on_unregister_write

    def _on_register_write(self, client, userdata, sock) -> None:
        if threading.get_ident() != self._loop_thread:  # aiomqtt's connect thread
            self._loop.call_soon_threadsafe(self._flush, sock)
        elif self._delayed is None:
            self._delayed = self._loop.call_later(self._ack_delay, self._flush_delayed, sock)

    def _flush_delayed(self, sock) -> None:
        self._delayed = None
        self._flush(sock)

    def _flush(self, sock) -> None:
        if self._paho.socket() is not sock or self._armed is sock or not self._paho.want_write():
            return
        self._write()
        if self._paho.want_write() and self._paho.socket() is sock:
            self._armed = sock
            self._loop.add_writer(sock.fileno(), self._write)

    def _on_unregister_write(self, client, userdata, sock) -> None:
        if self._armed is sock:
            self._armed = None
            if threading.get_ident() == self._loop_thread:
                self._loop.remove_writer(sock.fileno())
            else:
                self._loop.call_soon_threadsafe(self._loop.remove_writer, sock.fileno())

    def _write(self) -> None:
        sock = self._paho.socket()
        corked = isinstance(sock, socket.socket) and sock.type == socket.SOCK_STREAM and _CORK is not None
        try:
            if corked:
                sock.setsockopt(socket.IPPROTO_TCP, _CORK, 1)
            try:
                self._paho.loop_write()
            finally:
                if corked:
                    sock.setsockopt(socket.IPPROTO_TCP, _CORK, 0)
        except Exception as exc:  # noqa: BLE001 -- as aiomqtt does: a broken socket ends the connection
            if not self.client._disconnected.done():
                self.client._disconnected.set_exception(exc)

    async def enter(self) -> None:
        """Connect; raises ``aiomqtt.MqttError`` (``MqttConnectError`` for a refused CONNACK)."""
        c = self.client
        if c._disconnected.done() and not c._disconnected.cancelled():
            c._disconnected.exception()
        if c._connected.done():
            c._connected = asyncio.get_running_loop().create_future()
        await c.__aenter__()
        self.connected = True

    async def leave(self) -> None:
        """Disconnect (gracefully if still connected); idempotent."""
        if self.connected:
            self.connected = False
            try:
                await self.client.__aexit__(None, None, None)
            except aiomqtt.MqttError:
                pass      # already gone: __aexit__ only had to release the client

    async def abandon(self) -> None:
        """``leave``, close a socket that a failed connect left half-open, end aiomqtt's housekeeping."""
        await self.leave()
        if self._delayed is not None:
            self._delayed.cancel()
            self._delayed = None
        if self._paho.socket() is not None:
            self._paho._sock_close()
        misc = self.client._misc_task
        if misc is not None and not misc.done():
            misc.cancel()
            await asyncio.gather(misc, return_exceptions=True)

    def tcp_nodelay(self) -> int:
        sock = self._paho.socket()
        return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) if isinstance(sock, socket.socket) else -1

    async def publish(self, topic: str, payload: bytes, qos: int, retain: bool, timeout: float) -> ReasonCode | None:
        """Hand the message to paho and wait for its PUBACK's reason code (None at QoS 0).

        Raises ``aiomqtt.MqttCodeError`` if paho did not take it, ``TimeoutError``
        if no PUBACK came within ``timeout`` (the session keeps the message).
        """
        info = self._paho.publish(topic, payload, qos, retain)
        # NO_CONN with QoS > 0 still means taken: paho stores it and sends it on reconnect.
        if info.rc != paho.MQTT_ERR_SUCCESS and (qos == 0 or info.rc != paho.MQTT_ERR_NO_CONN):
            raise aiomqtt.MqttCodeError(info.rc, f"could not publish to {topic}")
        self._flush(self._paho.socket())
        if qos == 0:
            return None
        fut = self._loop.create_future()
        self._acks[info.mid] = fut
        try:
            async with asyncio.timeout(timeout):  # not wait_for: on 3.11 it can swallow a cancel racing the PUBACK
                return await fut
        finally:
            self._acks.pop(info.mid, None)

    def fail_pending(self, exc: BaseException) -> None:
        for fut in self._acks.values():
            if not fut.done():
                fut.set_exception(exc)
        self._acks.clear()
