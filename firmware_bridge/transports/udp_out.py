"""Stream a running twin's telemetry as MAVLink 2 over UDP, for standard tools (MAVProxy, mavutil, QGC).

``MavlinkUdpOut("udp:127.0.0.1:14550")`` is an executive observer: each tick
it may send a HEARTBEAT (once per wall second) and the tick's three sensor
frames, command and housekeeping. A run much faster than real time would flood
a ground tool, so frames go out at most ``max_rate_hz`` per wall second (paced
runs at a few times real time send every tick). The socket is non-blocking:
a full send buffer drops the datagram and counts it, never stalls the loop.
"""
from __future__ import annotations

import re
import socket
import time

from firmware_bridge.codec import MavlinkCodec
from firmware_bridge.dialect import load_dialect
from firmware_bridge.messages import command_to_message, frame_to_messages, housekeeping_to_message

__all__ = ["MavlinkUdpOut", "parse_udp_url"]

_URL = re.compile(r"^udp:(?P<host>[^:]+):(?P<port>\d{1,5})$")


def parse_udp_url(url: str) -> tuple[str, int]:
    """('host', port) from 'udp:HOST:PORT'; ValueError with the expected form otherwise."""
    m = _URL.match(url.strip())
    if not m or not 0 < int(m.group("port")) < 65536:
        raise ValueError(f"not a UDP address: {url!r} (expected udp:HOST:PORT, e.g. udp:127.0.0.1:14550)")
    return m.group("host"), int(m.group("port"))


class MavlinkUdpOut:
    def __init__(self, url: str, *, max_rate_hz: float = 50.0, system_id: int = 1):
        host, port = parse_udp_url(url)
        self.name = url
        self.max_rate_hz = max_rate_hz
        self.codec = MavlinkCodec(src_system=system_id, src_component=1)
        self._dialect = load_dialect()
        try:
            self.addr = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0][4]
            family = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0][0]
        except socket.gaierror as exc:
            raise ValueError(f"{url}: cannot resolve {host!r} ({exc.strerror})") from None
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.setblocking(False)
        self.sent = self.dropped = 0
        self._next_frame = 0.0
        self._next_heartbeat = 0.0
        self._cmd_seq = 0

    def _send(self, msg) -> None:
        try:
            self.sock.sendto(self.codec.encode(msg), self.addr)
            self.sent += 1
        except (BlockingIOError, OSError):
            self.dropped += 1

    def record(self, frame, cmd, hk) -> None:
        """Called by the executive every tick."""
        now = time.monotonic()
        if now >= self._next_heartbeat:
            self._next_heartbeat = now + 1.0
            d = self._dialect
            self._send(d.MAVLink_heartbeat_message(d.MAV_TYPE_GENERIC, d.MAV_AUTOPILOT_GENERIC, 0, cmd.fsw_mode,
                                                   d.MAV_STATE_ACTIVE, 3))
        if now < self._next_frame:
            return
        self._next_frame = now + 1.0 / self.max_rate_hz
        for msg in frame_to_messages(frame):
            self._send(msg)
        self._cmd_seq += 1
        self._send(command_to_message(cmd, self._cmd_seq, frame.t_ns))
        self._send(housekeeping_to_message(hk, frame.t_ns))

    def close(self) -> None:
        self.sock.close()
