"""Serial transport: a UART opened by a stable name, surviving unplugs.

On ``pyserial-asyncio-fast``'s ``SerialTransport``, with narrow fixes for its PR #36
(open against 0.16: the writer outlives the buffer, an ``AssertionError`` per loop
iteration) and pySerial #280 (a non-blocking ``write`` spins on ``EAGAIN``)."""
from __future__ import annotations

import asyncio
import errno
import os
import time
from collections import deque

import serial
from serial_asyncio_fast import SerialTransport

from ..errors import BridgeInitError, BridgeOperationError, LinkLost
from .base import Backoff, LinkCounters

__all__ = ["SerialLink"]

_NO_DEVICE, _DENIED = "no such device", "permission denied (is the user in the dialout group?)"
_REASONS = {errno.ENOENT: _NO_DEVICE, errno.ENODEV: _NO_DEVICE, errno.ENXIO: _NO_DEVICE, errno.EACCES: _DENIED,
            errno.EPERM: _DENIED, errno.EAGAIN: "busy (another process holds it exclusively)", errno.EBUSY: "busy"}


class _Serial(serial.Serial):
    """One syscall per call; ``EAGAIN`` surfaces as ``BlockingIOError``, for the transport to buffer."""

    def read(self, size: int = 1) -> bytes:
        try:
            data = os.read(self.fd, size)
        except (BlockingIOError, InterruptedError):
            return b""
        except OSError as exc:
            raise serial.SerialException(f"read failed: {exc}") from exc
        if not data:  # a hung-up tty reads as end of file
            raise serial.SerialException("read failed: device hung up")
        return data

    def write(self, data) -> int:
        try:
            return os.write(self.fd, data)
        except (BlockingIOError, InterruptedError):
            raise
        except OSError as exc:
            raise serial.SerialException(f"write failed: {exc}") from exc


class _Transport(SerialTransport):
    fatal: BaseException | None = None  # what made the transport abort, for send to raise from

    def __init__(self, loop, protocol, serial_instance, read_chunk: int):
        super().__init__(loop, protocol, serial_instance)
        self._max_read_size = read_chunk

    def _write_ready(self) -> None:
        if not self._write_buffer:
            self._remove_writer()
            return
        super()._write_ready()

    def _fatal_error(self, exc, message="Fatal error on serial transport") -> None:
        self.fatal = exc
        if isinstance(exc, serial.SerialException):
            self._abort(exc)  # an unplug: reported through connection_lost, not as a crash
        else:
            super()._fatal_error(exc, message)


class _Protocol(asyncio.Protocol):
    """One per connection: its close and its write flow control; data goes straight to the link."""

    def __init__(self, link: SerialLink):
        self.link, self.closed, self.writable = link, asyncio.get_running_loop().create_future(), asyncio.Event()
        self.writable.set()
        self.pause_writing, self.resume_writing = self.writable.clear, self.writable.set
        self.data_received = link._on_data

    def connection_lost(self, exc) -> None:
        self.writable.set()
        self.closed.set_result(None)
        self.link._on_lost(self, exc)


class SerialLink:
    """A serial port as a :class:`~firmware_bridge.transports.base.Transport` (a byte stream).

    ``port`` is a stable name (``/dev/serial/by-id/...``, any symlink), resolved on every
    (re)connect so that a board back as another ``/dev/ttyUSBn`` is found again;
    ``exclusive=True`` takes an advisory ``flock`` (a second such opener: busy). Reads
    take up to ``read_chunk`` bytes a syscall (a tty hands out at most its line
    discipline's 4 KiB per read); :meth:`recv` returns all bytes buffered, and reading
    pauses above ``rx_limit`` unread bytes, so memory stays bounded (the kernel then
    holds the rest; a UART overruns and drops, which the codec counts as ``seq_lost``). Entering opens the port or raises
    :class:`BridgeInitError` with a one-line reason (no such device, permission, busy).
    When the device goes away: state ``"down"``, ``counters.link_lost`` + 1, the bytes
    read before the drop delivered, then :meth:`recv` raises :class:`LinkLost` once; a
    supervised task reopens with capped, jittered backoff (then ``"up"``,
    ``counters.reconnects`` + 1). Open and close run in the default executor. Extra
    counters: ``device``, ``reconnect_attempts``, ``last_error``. One reader; reusable.
    """

    def __init__(self, port: str, baudrate: int = 921600, *, name: str | None = None,
                 backoff: Backoff | None = None, read_chunk: int = 65536, rx_limit: int = 262144,
                 exclusive: bool = True):
        self.port, self.baudrate, self.read_chunk, self.exclusive = str(port), baudrate, read_chunk, exclusive
        self.rx_limit = max(rx_limit, read_chunk)
        self.name = name or f"serial:{port}"
        self.backoff = backoff or Backoff()  # one per link: the attempt count is per link
        self.state, self.counters = "closed", LinkCounters()
        self._transport = self._proto = self._task = self._opening = self._failure = None
        self._rx, self._rx_bytes = deque(), 0  # bytearray chunks and the cause of each drop, in order
        self._rx_ready, self._lost = asyncio.Event(), asyncio.Event()  # made again per entry: they bind to a loop

    async def __aenter__(self) -> SerialLink:
        if self.state != "closed":
            raise RuntimeError(f"{self.name} is already open (SerialLink is not re-entrant)")
        self.state, self._failure, self._rx, self._rx_bytes = "connecting", None, deque(), 0
        self._rx_ready, self._lost = asyncio.Event(), asyncio.Event()
        try:
            await self._open()
        except BaseException:
            await self.aclose()
            raise
        self._task = asyncio.create_task(self._reconnect_loop(), name=f"{self.name} reconnect")
        self._task.add_done_callback(self._supervise)
        return self

    async def aclose(self, *_exc) -> None:
        """Close the port and cancel the reconnect task; idempotent, safe after a failed start."""
        self.state = "closed"
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        opening, self._opening = self._opening, None
        if opening is not None:  # an open cancelled mid-way still finishes in its thread
            _, ser = await opening
            if isinstance(ser, serial.Serial):
                await asyncio.get_running_loop().run_in_executor(None, ser.close)
        transport, proto, self._transport, self._proto = self._transport, self._proto, None, None
        if transport is not None:
            if not transport.is_closing():
                transport.abort()
            await proto.closed
        self._rx_ready.set()

    __aexit__ = aclose

    async def send(self, data: bytes) -> None:
        """Write ``data``, waiting (never blocking the loop) while the output buffer is above its mark.

        :class:`LinkLost` while down or if the link drops meanwhile; :class:`BridgeOperationError` once closed."""
        transport, proto = self._usable(), self._proto
        if transport is not None and not transport.is_closing():
            transport.write(bytes(data))
            if not transport.is_closing():
                self.counters.bytes_out += len(data)
                self.counters.chunks_out += 1
                await proto.writable.wait()
                if not transport.is_closing():
                    return
        self.counters.send_errors += 1
        cause = getattr(transport, "fatal", None)
        raise LinkLost("device lost" if transport else "link is down", link=self.name) from cause

    async def recv(self) -> bytes:
        """The bytes read since the last call (waits for some), or :class:`LinkLost` once per drop."""
        while not self._rx:
            self._usable()
            self._rx_ready.clear()
            await self._rx_ready.wait()
        item = self._rx.popleft()
        if isinstance(item, BaseException):
            raise LinkLost(f"device lost: {item}", link=self.name) from item
        self._rx_bytes -= len(item)
        if self._transport is not None and self._rx_bytes == 0:
            self._transport.resume_reading()
        return bytes(item)

    def _usable(self) -> _Transport | None:
        if self._failure is not None:
            raise BridgeOperationError("reconnect task failed", link=self.name) from self._failure
        if self.state == "closed":
            raise BridgeOperationError("link is closed", link=self.name)
        return self._transport

    def _open_blocking(self) -> tuple[str, _Serial | Exception]:
        path = os.path.realpath(self.port)
        try:
            return path, _Serial(path, self.baudrate, exclusive=self.exclusive, timeout=0, write_timeout=0)
        except (serial.SerialException, OSError, ValueError) as exc:
            return path, exc

    async def _open(self) -> None:
        loop = asyncio.get_running_loop()
        self._opening = loop.run_in_executor(None, self._open_blocking)
        path, ser = await asyncio.shield(self._opening)  # if cancelled, aclose reaps the open in its thread
        self._opening = None
        if isinstance(ser, Exception):
            reason = _REASONS.get(getattr(ser, "errno", None)) or str(ser).splitlines()[0]
            self.counters.extra["last_error"] = reason
            where = f" (-> {path})" if path != self.port else ""
            raise BridgeInitError(f"cannot open {self.port}{where}: {reason}", link=self.name) from ser
        self.counters.extra["device"] = path
        self._proto = _Protocol(self)
        self._transport = _Transport(loop, self._proto, ser, self.read_chunk)
        self.state = "up"

    async def _reconnect_loop(self) -> None:
        while True:
            await self._lost.wait()
            self._lost.clear()
            self.backoff.reset()
            while True:
                await asyncio.sleep(self.backoff.next())
                self.state, extra = "connecting", self.counters.extra
                extra["reconnect_attempts"] = extra.get("reconnect_attempts", 0) + 1
                try:
                    await self._open()
                    break
                except BridgeInitError:
                    self.state = "down"
            self.counters.reconnects += 1

    def _supervise(self, task: asyncio.Task) -> None:
        if not task.cancelled() and task.exception() is not None:
            self._failure = task.exception()  # stays visibly broken: recv and send raise from it
            self.state = "down"
            self._rx_ready.set()

    def _on_data(self, data: bytes) -> None:
        if self._rx and not isinstance(self._rx[-1], BaseException):
            self._rx[-1] += data
        else:
            self._rx.append(bytearray(data))
        self._rx_bytes += len(data)
        self.counters.bytes_in += len(data)
        self.counters.chunks_in += 1
        self.counters.last_rx_monotonic = time.monotonic()
        if self._rx_bytes > self.rx_limit:
            self._transport.pause_reading()
        self._rx_ready.set()

    def _on_lost(self, proto: _Protocol, exc: BaseException | None) -> None:
        if proto is not self._proto or self.state == "closed":
            return  # our own close, or a connection already replaced
        self._transport, self._proto, self.state = None, None, "down"
        self.counters.link_lost += 1
        self.counters.extra["last_error"] = str(exc)
        self._rx.append(exc or serial.SerialException("connection lost"))
        self._rx_ready.set()
        self._lost.set()
