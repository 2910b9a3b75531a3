"""Signing secrets and state on disk: one 32-byte key per rig in a key file; atomic state files.

A key file holds exactly the 32 raw key bytes, readable by its owner only
(mode 0600). Board firmware needs the same bytes, e.g. as a C array:
``xxd -i rig.key``.

    create_key_file(path, overwrite=False) -> Path   32 random bytes from ``secrets``
    load_key(path) -> bytes                          BridgeInitError on any problem
    atomic_write(path, data, overwrite=True)         temporary file, fsync, rename
    StateFile                                        base of the replay table's and signing clock's files
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import stat
import tempfile
from pathlib import Path

from .errors import BridgeInitError, BridgeOperationError

__all__ = ["KEY_LEN", "create_key_file", "load_key", "atomic_write", "StateFile"]

logger = logging.getLogger(__name__)

KEY_LEN = 32


def atomic_write(path: str | os.PathLike, data: bytes, *, overwrite: bool = True) -> Path:
    """Write ``data`` to ``path`` (mode 0600) so that readers see the old file or the new one, never a mix.

    With ``overwrite=False`` an existing file is left alone and
    ``FileExistsError`` raised. ``OSError`` propagates; callers map it.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o600)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)  # fails if path exists, where a rename would clobber it
            except FileExistsError:
                raise
            except OSError:  # no hard links on this mount (some FUSE, FAT): an exclusive create instead
                with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    with contextlib.suppress(OSError):  # the rename is durable once its directory is
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    return path


def create_key_file(path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write a new random key to ``path`` (mode 0600); refuse to replace an existing file unless ``overwrite``.

    Raises :class:`~firmware_bridge.errors.BridgeInitError` if the file exists
    (and ``overwrite`` is false) or cannot be written.
    """
    path = Path(path)
    try:
        return atomic_write(path, secrets.token_bytes(KEY_LEN), overwrite=overwrite)
    except FileExistsError as exc:
        raise BridgeInitError(f"key file {path} exists; refusing to overwrite it (a new key locks out every "
                              f"board holding the old one)") from exc
    except OSError as exc:
        raise BridgeInitError(f"cannot write key file {path}: {exc.strerror or exc}") from exc


def load_key(path: str | os.PathLike) -> bytes:
    """The 32-byte key in ``path``.

    Raises :class:`~firmware_bridge.errors.BridgeInitError` when the file is
    missing or unreadable, is not a regular file, is readable or writable by
    group or others (``chmod 600`` it), or does not hold exactly 32 bytes.
    """
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO planted there must not hang the start
    except FileNotFoundError as exc:
        raise BridgeInitError(f"key file {path} not found (create one with `twin keygen {path}`)") from exc
    except OSError as exc:
        raise BridgeInitError(f"cannot open key file {path}: {exc.strerror or exc}") from exc
    try:
        st = os.fstat(fd)  # the file opened, not whatever the path names by now
        if not stat.S_ISREG(st.st_mode):
            raise BridgeInitError(f"key file {path} is not a regular file")
        if st.st_mode & 0o077:
            raise BridgeInitError(f"key file {path} has mode {stat.S_IMODE(st.st_mode):04o}: group or others "
                                  f"may access it; run `chmod 600 {path}`")
        key = os.read(fd, KEY_LEN + 1)
    except OSError as exc:
        raise BridgeInitError(f"cannot read key file {path}: {exc.strerror or exc}") from exc
    finally:
        os.close(fd)
    if len(key) != KEY_LEN:
        raise BridgeInitError(f"key file {path} holds {'more than ' if len(key) > KEY_LEN else ''}"
                              f"{min(len(key), KEY_LEN)} bytes; a MAVLink signing key is exactly {KEY_LEN}")
    return key


class StateFile:
    """A small JSON state file: loaded at start, saved atomically on demand, from a thread, and on close."""

    def __init__(self, path: str | os.PathLike | None):
        self.path = Path(path) if path is not None else None
        self.save_errors = 0
        self.closed = False

    def _load(self) -> dict | None:
        if self.path is None:
            return None
        try:
            return json.loads(self.path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise BridgeInitError(f"cannot read signing state {self.path}: {exc}; moving it aside forgets "
                                  f"what it guards") from exc

    def _snapshot(self, final: bool) -> dict | None:
        """What to write now, or None if the file is up to date."""
        raise NotImplementedError

    def _saved(self, snap: dict, final: bool) -> None:
        """``snap`` is on disk."""

    def _write(self, snap: dict) -> None:
        atomic_write(self.path, json.dumps(snap, separators=(",", ":")).encode())

    def save(self, *, final: bool = False) -> None:
        """Write the state now if it changed; ``BridgeOperationError`` if it cannot be written."""
        snap = self._snapshot(final) if self.path is not None else None
        if snap is None:
            return
        try:
            self._write(snap)
        except OSError as exc:
            self.save_errors += 1
            raise BridgeOperationError(f"cannot save signing state {self.path}: {exc}") from exc
        self._saved(snap, final)

    async def autosave(self, interval_s: float = 1.0) -> None:
        """Save every ``interval_s`` from a worker thread, forever; failures are logged and counted."""
        while True:
            await asyncio.sleep(interval_s)
            snap = self._snapshot(False) if self.path is not None and not self.closed else None
            if snap is None:
                continue
            try:
                await asyncio.to_thread(self._write, snap)
            except OSError as exc:
                self.save_errors += 1
                logger.warning("cannot save signing state %s: %s", self.path, exc)
            else:
                self._saved(snap, False)

    def close(self) -> None:
        """Save for the last time (idempotent)."""
        if not self.closed:
            self.save(final=True)
            self.closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
