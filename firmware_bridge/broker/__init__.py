"""Files for a private mosquitto broker: config, password file and per-role ACL.

A rig (an emulated one in CI, a physical bench) starts its own broker from
the files that :func:`write_broker_files` writes into one directory::

    cfg = write_broker_files(tmp_dir, port, [
        BrokerUser("twin", twin_password, "twin"),
        BrokerUser("board", board_password, "board"),
    ])
    subprocess.Popen([mosquitto_path(), "-c", str(cfg.conf_path)])

What the shipped templates (``mosquitto.conf`` and ``acl.conf`` beside this
module) set, and why:

* ``allow_anonymous false``, a password file and an ACL file: every client is
  a user with one role, ``board``, ``twin`` or ``observer`` (read-only); the
  roles' topic rules are the sections of ``acl.conf``. A user may be limited
  to some satellite ids (``sat_ids``); ``+`` means all.
* ``set_tcp_nodelay true``: the broker's half of the Nagle fix (the link sets
  TCP_NODELAY on its own socket).
* persistence with ``autosave_on_changes true`` and ``autosave_interval 1``:
  the store is written after every change, so a broker killed with SIGKILL
  comes back with every acknowledged QoS 1 message and every persistent
  session (precisely: mosquitto saves at the end of the loop iteration that
  sent the PUBACK, so only a kill within those microseconds can lose the
  messages of that iteration). mosquitto fsyncs every save, which on a disk costs milliseconds per
  message (measured: ~4 ms on ext4), so the store goes by default to a fresh
  directory on tmpfs (``/dev/shm``): it survives a broker SIGKILL, not a power
  cut. Pass ``persistence_dir`` for a disk-backed store; call
  :meth:`BrokerConfig.remove_store` when the rig is torn down.
* bounds: 64 KiB packets, 1000 queued messages per offline session.

Passwords are hashed here in mosquitto 2's own ``$7$`` format (PBKDF2-SHA512,
101 iterations, 12-byte salt), so writing the files needs no
``mosquitto_passwd``. Files holding secrets are written mode 0600.
"""
from __future__ import annotations

import base64
import hashlib
import os
import pwd
import re
import secrets
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from string import Template

__all__ = ["ROLES", "BrokerConfig", "BrokerTls", "BrokerUser", "mosquitto_path", "write_broker_files"]

_HERE = Path(__file__).resolve().parent
_TMPFS = "/dev/shm"
ROLES = ("board", "twin", "observer")
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_SAT = re.compile(r"^(\+|[A-Za-z0-9_-]{1,64})$")


@dataclass(frozen=True)
class BrokerUser:
    """One broker login: ``role`` picks its ACL section, ``sat_ids`` the satellites it may touch."""

    name: str
    password: str
    role: str
    sat_ids: tuple[str, ...] = ("+",)


@dataclass(frozen=True)
class BrokerTls:
    """PEM files for a TLS listener (the broker then speaks only TLS on its port)."""

    cafile: Path
    certfile: Path
    keyfile: Path


@dataclass(frozen=True)
class BrokerConfig:
    """Where :func:`write_broker_files` put everything, and what the broker will listen on."""

    dir: Path
    host: str
    port: int
    conf_path: Path
    password_path: Path
    acl_path: Path
    persistence_dir: Path
    log_path: Path
    tls: BrokerTls | None = None

    def remove_store(self) -> None:
        """Delete the persistence directory if it lives outside ``dir`` (the tmpfs default)."""
        if not self.persistence_dir.is_relative_to(self.dir):
            shutil.rmtree(self.persistence_dir, ignore_errors=True)


def wait_until_listening(proc, host: str, port: int, timeout_s: float) -> str | None:
    """Wait for a just-started broker ``proc`` to accept connections on host:port.

    Returns None once it does, else why not ("exited with code N" or "not listening after T s").
    """
    import socket
    import time
    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            return f"exited with code {proc.returncode}"
        try:
            socket.create_connection((host, port), timeout=1).close()
            return None
        except OSError:
            if time.monotonic() > deadline:
                return f"not listening on {host}:{port} after {timeout_s:g} s"
            time.sleep(0.01)


def mosquitto_path() -> str:
    """The ``mosquitto`` executable (often in /usr/sbin, outside a user's PATH); raises if absent."""
    found = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")
    if not found:
        raise FileNotFoundError("mosquitto is not installed: apt-get install -y mosquitto mosquitto-clients")
    return found


def _hash_password(password: str) -> str:
    salt = secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, 101, 64)
    return f"$7$101${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def _acl_sections() -> dict[str, list[str]]:
    sections: dict[str, list[str]] = {}
    current = None
    for line in (_HERE / "acl.conf").read_text().splitlines():
        line = line.strip()
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
        elif line and not line.startswith("#") and current is not None:
            current.append(line)
    return sections


def _write_secret(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def write_broker_files(dir: str | os.PathLike, port: int, users: list[BrokerUser], *,
                       host: str = "127.0.0.1", tls: BrokerTls | None = None, tcp_nodelay: bool = True,
                       persistence_dir: str | os.PathLike | None = None) -> BrokerConfig:
    """Write ``mosquitto.conf``, ``passwd`` and ``acl`` into ``dir`` and return where they are.

    Raises ``ValueError`` for an unknown role, a user name or satellite id that
    could break the files' syntax, or a duplicate user. ``tcp_nodelay=False``
    exists only for the benchmark's baseline.
    """
    root = Path(dir)
    if any(ch.isspace() for ch in str(root.resolve())):
        raise ValueError(f"broker dir {root}: mosquitto.conf cannot quote paths with whitespace")
    root.mkdir(parents=True, exist_ok=True)
    sections = _acl_sections()
    passwd, acl = [], ["# written by firmware_bridge.broker.write_broker_files"]
    seen = set()
    for user in users:
        if user.role not in ROLES:
            raise ValueError(f"broker user {user.name!r}: unknown role {user.role!r}, expected one of {ROLES}")
        if not _NAME.match(user.name) or user.name in seen:
            raise ValueError(f"broker user name {user.name!r} is invalid or repeated")
        if not user.sat_ids or not all(_SAT.match(s) for s in user.sat_ids):
            raise ValueError(f"broker user {user.name!r}: bad sat_ids {user.sat_ids!r}")
        seen.add(user.name)
        passwd.append(f"{user.name}:{_hash_password(user.password)}")
        acl.append(f"\nuser {user.name}")
        acl += [Template(rule).substitute(sat=sat) for sat in user.sat_ids for rule in sections[user.role]]
    if persistence_dir is not None:
        persist = Path(persistence_dir)
        persist.mkdir(parents=True, exist_ok=True)
    elif os.path.isdir(_TMPFS) and os.access(_TMPFS, os.W_OK):
        persist = Path(tempfile.mkdtemp(prefix="firmware_bridge-broker-", dir=_TMPFS))
    else:
        persist = root / "persist"
        persist.mkdir(exist_ok=True)
    cfg = BrokerConfig(dir=root, host=host, port=int(port), conf_path=root / "mosquitto.conf",
                       password_path=root / "passwd", acl_path=root / "acl", persistence_dir=persist,
                       log_path=root / "mosquitto.log", tls=tls)
    tls_lines = "" if tls is None else (f"cafile {tls.cafile}\ncertfile {tls.certfile}\nkeyfile {tls.keyfile}\n")
    conf = Template((_HERE / "mosquitto.conf").read_text()).substitute(
        port=cfg.port, host=host, tls_lines=tls_lines, password_file=cfg.password_path,
        acl_file=cfg.acl_path, tcp_nodelay="true" if tcp_nodelay else "false",
        persistence_dir=persist, user=pwd.getpwuid(os.geteuid()).pw_name, log_file=cfg.log_path)
    _write_secret(cfg.password_path, "\n".join(passwd) + "\n")
    _write_secret(cfg.acl_path, "\n".join(acl) + "\n")
    cfg.conf_path.write_text(conf)
    return cfg
