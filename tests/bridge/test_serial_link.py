"""SerialLink over real pty pairs: the master end of each pty plays the board's UART."""
import asyncio
import fcntl
import functools
import os
import random
import struct
import termios
import threading

import pytest
import serial

from firmware_bridge.errors import BridgeInitError, BridgeOperationError, LinkLost
from firmware_bridge.transports import Backoff, Transport
from firmware_bridge.transports.serial_link import SerialLink

HANG_GUARD_S = 30  # turns a hang into a failure; never a speed assertion
FAST = dict(first_s=0.001, cap_s=0.01)


class Board:
    """One pty pair under a stable name; the test drives the master end without blocking the loop."""

    def __init__(self, link, *, plug_in=True):
        self.master, self.slave = os.openpty()  # the slave fd stays open so the master never sees EIO early
        os.set_blocking(self.master, False)
        self.device, self.link, self.plugged = os.ttyname(self.slave), link, True
        if plug_in:
            self.plug_in()

    def plug_in(self) -> None:
        """Point the stable name here atomically, as udev does for /dev/serial/by-id."""
        os.symlink(self.device, self.link.with_suffix(".new"))
        os.replace(self.link.with_suffix(".new"), self.link)

    def unplug(self) -> None:
        """Pull the cable: udev removes the by-id link and the pty goes (its number free for reuse)."""
        if os.path.realpath(self.link) == self.device:
            os.unlink(self.link)
        os.close(self.master)
        os.close(self.slave)
        self.plugged = False

    async def _io(self, op, data, add, remove):
        while True:
            try:
                return op(self.master, data)
            except BlockingIOError:
                ready = asyncio.get_running_loop().create_future()
                add(self.master, ready.set_result, None)
                try:
                    await ready
                finally:
                    remove(self.master)

    async def write(self, data: bytes) -> None:
        loop, view = asyncio.get_running_loop(), memoryview(data)
        while view:
            view = view[await self._io(os.write, view, loop.add_writer, loop.remove_writer):]

    async def read(self, n: int) -> bytes:
        loop, out = asyncio.get_running_loop(), bytearray()
        while len(out) < n:
            out += await self._io(os.read, n - len(out), loop.add_reader, loop.remove_reader)
        return bytes(out)


async def read_n(link: SerialLink, n: int) -> bytes:
    out = bytearray()
    while len(out) < n:
        out += await link.recv()
    return bytes(out)


async def until(condition) -> None:
    while not condition():
        await asyncio.sleep(0.002)


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def on_loop(test):
    """Run an async test on a fresh loop; fail on anything the loop's exception handler saw, or a thread left."""
    @functools.wraps(test)
    def run(*args, **kwargs):
        errors, threads = [], threading.active_count()

        async def body():
            asyncio.get_running_loop().set_exception_handler(lambda loop, ctx: errors.append(ctx))
            async with asyncio.timeout(HANG_GUARD_S):
                await test(*args, **kwargs)
        asyncio.run(body())
        assert errors == [] and threading.active_count() == threads
    return run


@pytest.fixture
def board(tmp_path):
    fds = fd_count()
    b = Board(tmp_path / "usb-Suncatcher_OBC_0001-if00")
    yield b
    if b.plugged:
        b.unplug()
    assert fd_count() == fds


async def back_and_talking(sl: SerialLink, b2: Board) -> None:
    """The board comes back as another pty under the same name: found again, traffic resumes both ways."""
    b2.plug_in()
    await until(lambda: sl.state == "up")
    assert sl.counters.reconnects == 1 and sl.counters.extra["device"] == b2.device
    await sl.send(b"resumed")
    assert await b2.read(7) == b"resumed"
    await b2.write(b"ack")
    assert await read_n(sl, 3) == b"ack"  # no second LinkLost: a drop is reported once
    assert sl.counters.link_lost == 1
    b2.unplug()


@on_loop
async def test_bytes_both_ways_intact_large_payloads_chunked_memory_flat(board):
    """Above 64 unread chunks the link stops reading: the pty pushes back on the board, nothing is lost."""
    payload_in, payload_out = random.Random(1).randbytes(1 << 20), random.Random(2).randbytes(1 << 20)
    async with SerialLink(str(board.link), read_chunk=4096) as sl:
        assert isinstance(sl, Transport) and sl.state == "up" and sl.name == f"serial:{board.link}"
        writer = asyncio.create_task(board.write(payload_in))
        await until(lambda: sl.counters.bytes_in > 64 * 4096)
        for _ in range(200):
            await asyncio.sleep(0)
        assert sl.counters.bytes_in <= 65 * 4096 and not writer.done()  # nobody called recv yet
        assert await read_n(sl, len(payload_in)) == payload_in
        await writer
        reader = asyncio.create_task(board.read(len(payload_out)))
        for i in range(0, len(payload_out), 100_000):  # larger than the pty buffer: partial writes
            await sl.send(payload_out[i:i + 100_000])
        assert await reader == payload_out
        for _ in range(3):
            await asyncio.sleep(0)  # a writer left registered after the drain would fire here
        c = sl.counters
        assert (c.bytes_in, c.bytes_out, c.link_lost) == (1 << 20, 1 << 20, 0) and c.extra["device"] == board.device
        assert (1 << 20) // 4096 <= c.chunks_in < (1 << 20) // 1024 and c.last_rx_monotonic > 0  # not 1024 a read


@on_loop
async def test_a_full_output_buffer_never_blocks_the_loop(board):
    """The board stops reading while small frames keep coming: they queue, the loop never spins (pySerial #280)."""
    frames = [bytes([i % 256]) * 16 for i in range(4000)]  # 64,000 B: beyond the pty buffer, under the high-water mark
    queued, seen = threading.Event(), {"data": bytearray()}

    def board_reads():
        seen["queued_first"] = queued.wait(HANG_GUARD_S)  # times out only if a write spun the loop
        seen["kernel_held"], = struct.unpack("i", fcntl.ioctl(board.master, termios.FIONREAD, bytes(4)))
        os.set_blocking(board.master, True)
        while len(seen["data"]) < 64_000:
            seen["data"] += os.read(board.master, 65536)

    async with SerialLink(str(board.link)) as sl:
        reader = threading.Thread(target=board_reads)
        reader.start()
        try:
            for f in frames:
                await sl.send(f)
        finally:
            queued.set()
            await asyncio.to_thread(reader.join)
    assert seen["queued_first"] and seen["kernel_held"] < 64_000  # so the link held the rest
    assert bytes(seen["data"]) == b"".join(frames)


@on_loop
async def test_hangup_mid_frame_on_read_then_back_under_the_same_name(board):
    async with SerialLink(str(board.link), backoff=Backoff(**FAST)) as sl:
        await board.write(bytes(300))  # the first 300 bytes of a frame
        assert await read_n(sl, 300) == bytes(300)
        b2 = Board(board.link, plug_in=False)  # made first, so it is another /dev/pts/N
        board.unplug()
        with pytest.raises(LinkLost) as lost:
            await sl.recv()
        assert isinstance(lost.value.__cause__, serial.SerialException) and sl.state in ("down", "connecting")
        with pytest.raises(LinkLost):
            await sl.send(b"while down")
        await back_and_talking(sl, b2)
        assert b2.device != board.device


@on_loop
async def test_hangup_mid_frame_on_write_then_back(board):
    frame = random.Random(3).randbytes(512 * 1024)  # far more than the pty and the write high-water mark
    async with SerialLink(str(board.link), backoff=Backoff(**FAST)) as sl:
        sending = asyncio.create_task(sl.send(frame))
        assert await board.read(10_000) == frame[:10_000]
        assert not sending.done()  # the rest of the frame is still queued
        b2 = Board(board.link, plug_in=False)
        board.unplug()
        with pytest.raises(LinkLost):
            await sending
        with pytest.raises(LinkLost):
            await sl.recv()
        await back_and_talking(sl, b2)


@pytest.mark.parametrize("target, reason", [("ttyUSB7", "no such device"), ("board.log", "Inappropriate ioctl")])
@on_loop
async def test_a_port_that_cannot_be_opened_is_an_init_error_naming_it(tmp_path, target, reason):
    stable = tmp_path / "usb-FTDI_FT232R_A50285BI-if00-port0"
    os.symlink(tmp_path / target, stable)
    if target.endswith(".log"):
        (tmp_path / target).write_bytes(b"not a tty")
    fds = fd_count()
    with pytest.raises(BridgeInitError) as err:
        async with SerialLink(str(stable)):
            pass
    message = str(err.value)
    assert str(stable) in message and target in message and reason in message and "\n" not in message
    assert err.value.link == f"serial:{stable}" and fd_count() == fds
    assert asyncio.all_tasks() == {asyncio.current_task()}


@on_loop
async def test_exclusive_open_of_a_busy_port_is_refused(board):
    async with SerialLink(str(board.link)) as first:
        with pytest.raises(BridgeInitError, match="busy"):
            async with SerialLink(board.device):
                pass
        await first.send(b"still mine")
        assert await board.read(10) == b"still mine"


@on_loop
async def test_leaving_closes_fds_and_cancels_tasks_even_while_reconnecting(board):
    """Also: a write into a port hung up while idle raises LinkLost from the OS error."""
    fds = fd_count()
    async with SerialLink(str(board.link)) as sl:
        assert fd_count() > fds
    assert sl.state == "closed" and fd_count() == fds and asyncio.all_tasks() == {asyncio.current_task()}
    with pytest.raises(BridgeOperationError, match="closed"):
        await sl.recv()
    async with SerialLink(str(board.link), backoff=Backoff(**FAST)) as sl:  # the same device, again
        board.unplug()
        with pytest.raises(LinkLost) as lost:
            await sl.send(b"\xfd\x09")  # before the loop has seen the hang-up
        assert "Input/output error" in str(lost.value.__cause__) and sl.counters.send_errors == 1
        with pytest.raises(LinkLost):
            await sl.recv()
        await until(lambda: sl.counters.extra.get("reconnect_attempts", 0) >= 3)
        assert sl.state in ("down", "connecting")
    assert fd_count() == fds - 2 and asyncio.all_tasks() == {asyncio.current_task()}
