"""A real mosquitto for tests and benchmarks, from the broker files the package ships.

``MosquittoBroker(tmp_dir)`` writes the config with
:func:`firmware_bridge.broker.write_broker_files` (users ``twin``, ``board``
and ``observer``, passwords in :data:`PASSWORDS`), starts mosquitto on
127.0.0.1 and a free port, and can stop it (SIGTERM or SIGKILL) and start it
again on the same port and store, or freeze it (SIGSTOP/SIGCONT). ``close()``
SIGKILLs whatever it still runs, by pid, and reaps it; use it in a finalizer::

    broker = MosquittoBroker(tmp_path)
    try:
        broker.start()
        ...
    finally:
        broker.close()

mosquitto missing is an error, never a skip: the tests that need it must fail
on a machine where ``scripts/test.sh`` did not install it.
"""
from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
from pathlib import Path
from typing import Self

from firmware_bridge.broker import (
    BrokerConfig,
    BrokerTls,
    BrokerUser,
    mosquitto_path,
    wait_until_listening,
    write_broker_files,
)

__all__ = ["PASSWORDS", "MosquittoBroker", "TcpRelay", "free_port"]

PASSWORDS = {"twin": "twin-secret-1", "board": "board-secret-2", "observer": "observer-secret-3"}
READY_GUARD_S = 15     # turns a broker that never comes up into an error; not a speed check


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MosquittoBroker:
    """One mosquitto process at a time on a fixed port; ``pids`` lists every one it started."""

    def __init__(self, tmp_dir: str | os.PathLike, *, tls: BrokerTls | None = None, tcp_nodelay: bool = True,
                 users: list[BrokerUser] | None = None, persistence_dir: str | os.PathLike | None = None):
        self.exe = mosquitto_path()
        users = users or [BrokerUser(name, pw, name) for name, pw in PASSWORDS.items()]
        self.config: BrokerConfig = write_broker_files(Path(tmp_dir) / "broker", free_port(), users, tls=tls,
                                                       tcp_nodelay=tcp_nodelay, persistence_dir=persistence_dir)
        self.host, self.port = self.config.host, self.config.port
        self.proc: subprocess.Popen | None = None
        self.pids: list[int] = []
        self._stderr = open(self.config.dir / "mosquitto.stderr", "ab")  # noqa: SIM115 -- the broker's, until close()

    def start(self) -> None:
        assert self.proc is None, "already running"
        self.proc = subprocess.Popen([self.exe, "-c", str(self.config.conf_path)], stdin=subprocess.DEVNULL,
                                     stdout=self._stderr, stderr=self._stderr, start_new_session=True)
        self.pids.append(self.proc.pid)
        problem = wait_until_listening(self.proc, self.host, self.port, READY_GUARD_S)
        if problem is not None:
            if self.proc.poll() is None:
                self.kill()
            self.proc = None
            raise RuntimeError(f"mosquitto {problem} on start:\n{self.log()}")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Send ``sig`` (SIGTERM: clean shutdown, store saved; SIGKILL: crash) and reap the process."""
        proc, self.proc = self.proc, None
        assert proc is not None, "not running"
        proc.send_signal(sig)
        proc.send_signal(signal.SIGCONT)     # a frozen broker acts on SIGTERM only once thawed
        try:
            return proc.wait(timeout=READY_GUARD_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise

    def restart(self, sig: int = signal.SIGTERM) -> None:
        self.stop(sig)
        self.start()

    def pause(self) -> None:
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.proc.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL the running broker (even a stopped one) by pid and reap it; idempotent."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()

    def close(self) -> None:
        self.kill()
        self._stderr.close()
        self.config.remove_store()

    def log(self) -> str:
        parts = [p.read_text(errors="replace") for p in (self.config.log_path, self.config.dir / "mosquitto.stderr")
                 if p.exists()]
        return "\n".join(parts)

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class TcpRelay:
    """A loopback TCP relay in front of the broker: a network fault one can switch on.

    ``blackhole = True`` swallows what clients send (their PUBACKs, pings)
    while still forwarding what the broker sends; ``cut()`` aborts every
    relayed connection, as a pulled cable would; ``refuse = True`` drops new
    connections at once. A broker that dies closes the client side too. Runs
    on the test's event loop.
    """

    def __init__(self, host: str, port: int):
        self.target = (host, port)
        self.blackhole = self.refuse = False
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task] = set()

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc) -> None:
        self._server.close()
        self.cut()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    def cut(self) -> None:
        for w in list(self._writers):
            w.transport.abort()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._tasks.add(asyncio.current_task())
        try:
            await self._relay_pair(reader, writer)
        finally:
            self._tasks.discard(asyncio.current_task())

    async def _relay_pair(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.refuse:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        pair = (writer, up_writer)
        for w in pair:
            w.transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._writers.update(pair)
        try:
            await asyncio.gather(self._pipe(reader, up_writer, upstream=True),
                                 self._pipe(up_reader, writer, upstream=False))
        finally:
            for w in pair:
                w.transport.abort()
                self._writers.discard(w)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, upstream: bool) -> None:
        try:
            while data := await reader.read(65536):
                if not (upstream and self.blackhole):
                    writer.write(data)
                    await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.transport.abort()       # one side gone: tear down both, like a dead peer
