"""Rig files: a physical bench described in TOML, for ``twin run --rig bench.toml`` and ``pytest --rig``.

Every key is in ``docs/rigs.md`` and in the commented examples
``examples/rigs/bench-serial.toml`` and ``bench-mqtt.toml``. In short::

    name = "bench-1"                  # default: the file's stem
    transport = "serial"              # serial | mqtt
    key_file = "bench.key"            # signing key (twin keygen); paths are relative to the rig file
    state_dir = "state"               # replay table and signing clock (default ~/.local/state/suncatcher-twin/<name>)
    unsigned_telemetry = "reject"     # reject | accept
    lockstep = false                  # false: the board streams on its own clock (physical boards)
    realtime = true                   # run on the wall clock (default: not lockstep; required when not lockstep)
    step_timeout_s = 1.0              # wait for a frame (lockstep reply / first streamed frame)
    retries = 2                       # lockstep step retries
    [serial]   device = "/dev/serial/by-id/...", baud = 921600
    [mqtt]     broker = "mqtts://host:8883", sat_id, user, password_file | password_env, ca_file, keepalive_s
    [sensors.<twin channel>]  board = "<board channel>", scale/offset | poly, raw_unit, unit
    [actuators.heater_duty]   order = ["battery", "avionics"], scale = [1.0, 1.0]
    [actuators.tpu_cap]       order = [0, 1, 2, 3], scale = [...]
    [actuators.isl_enable]    order = [0, 1, 2, 3]

:func:`load_rig_file` validates everything it can without touching the bench
and raises :class:`RigFileError` (``file: key 'serial.baud': reason``, one
line) at the first problem; :func:`open_rig_file` then opens the link.
"""
from __future__ import annotations

import contextlib
import difflib
import os
import re
import ssl
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from hil_rigs.calibration import CalibratedBoard, Calibration, ChannelMap
from hil_rigs.rigs import RigError, add_scenario_link_faults
from twin.hal import CHANNEL_INDEX, CHANNELS, HEATER_ZONES, N_ISL, N_TPU_GROUPS

__all__ = ["RigFile", "RigFileError", "load_rig_file", "open_rig_file"]

TRANSPORTS = ("serial", "mqtt")
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_TOP = {"name", "transport", "key_file", "state_dir", "unsigned_telemetry", "lockstep", "realtime", "step_timeout_s",
        "retries", "serial", "mqtt", "sensors", "actuators"}
_SERIAL = {"device", "baud"}
_MQTT = {"broker", "sat_id", "user", "password_file", "password_env", "ca_file", "keepalive_s"}
_SENSOR = {"board", "scale", "offset", "poly", "raw_unit", "unit"}
_ACTUATORS = {"heater_duty": (HEATER_ZONES, True), "tpu_cap": (tuple(range(N_TPU_GROUPS)), True),
              "isl_enable": (tuple(range(N_ISL)), False)}
_BAUDS = (9600, 19200, 38400, 57600, 115200, 230400, 460800, 500000, 921600, 1000000, 1500000, 2000000, 3000000,
          4000000)


class RigFileError(RigError):
    """A rig file is unusable; the message names the file, the key and the reason, on one line."""

    def __init__(self, source: str, key: str | None, reason: str):
        super().__init__(f"{source}: key '{key}': {reason}" if key else f"{source}: {reason}")
        self.source, self.key, self.reason = source, key, reason


@dataclass(frozen=True)
class SerialSettings:
    device: str
    baud: int = 921600


@dataclass(frozen=True)
class MqttSettings:
    broker: str
    sat_id: str = "sat1"
    user: str = "twin"
    password_file: Path | None = None
    password_env: str | None = None
    ca_file: Path | None = None
    keepalive_s: int = 5


@dataclass(frozen=True)
class RigFile:
    """A validated rig file."""

    path: Path
    name: str
    transport: str
    key_file: Path
    state_dir: Path
    unsigned_telemetry: str = "reject"
    lockstep: bool = False
    realtime: bool = True
    step_timeout_s: float = 1.0
    retries: int = 2
    serial: SerialSettings | None = None
    mqtt: MqttSettings | None = None
    channel_map: ChannelMap = field(default_factory=ChannelMap)


class _Reader:
    """Typed access to one TOML table, with errors that name file and key."""

    def __init__(self, src: str, table: dict, prefix: str, known: set[str]):
        self.src, self.t, self.prefix = src, table, prefix
        for k in table:
            if k not in known:
                close = difflib.get_close_matches(k, sorted(known), n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else f" (known: {', '.join(sorted(known))})"
                raise self.error(k, "unknown key" + hint)

    def key(self, k: str) -> str:
        return f"{self.prefix}{k}"

    def error(self, k: str | None, reason: str) -> RigFileError:
        return RigFileError(self.src, self.key(k) if k is not None else self.prefix.rstrip(".") or None, reason)

    def get(self, k: str, kind: type, default=None, *, required: bool = False):
        if k not in self.t:
            if required:
                raise self.error(k, "required")
            return default
        v = self.t[k]
        if kind is float and isinstance(v, int) and not isinstance(v, bool):
            v = float(v)
        if not isinstance(v, kind) or (kind is int and isinstance(v, bool)):
            raise self.error(k, f"must be {_KIND_NAMES[kind]}, got {v!r}")
        return v

    def choice(self, k: str, options: tuple, default):
        v = self.get(k, str, default)
        if v not in options:
            raise self.error(k, f"must be one of {', '.join(options)}, got {v!r}")
        return v

    def path(self, k: str, base: Path, *, must_exist: bool = True, required: bool = False) -> Path | None:
        v = self.get(k, str, None, required=required)
        if v is None:
            return None
        p = Path(os.path.expanduser(v))
        p = p if p.is_absolute() else base / p
        if must_exist and not p.is_file():
            raise self.error(k, f"no such file: {p}")
        return p

    def numbers(self, k: str, n: int | None = None) -> tuple[float, ...] | None:
        v = self.get(k, list, None)
        if v is None:
            return None
        if not v or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v):
            raise self.error(k, f"must be a list of numbers, got {v!r}")
        if n is not None and len(v) != n:
            raise self.error(k, f"must be a list of {n} numbers, got {len(v)}")
        return tuple(float(x) for x in v)


_KIND_NAMES = {str: "a string", int: "a whole number", float: "a number", bool: "true or false", list: "a list",
               dict: "a table"}


def _table(r: _Reader, k: str) -> dict | None:
    return r.get(k, dict, None)


def _sensor(src: str, name: str, table: dict) -> tuple[int, Calibration | None]:
    r = _Reader(src, table, f"sensors.{name}.", _SENSOR)
    twin = CHANNEL_INDEX[name]
    ch = CHANNELS[twin]
    board_name = r.get("board", str, name)
    if board_name not in CHANNEL_INDEX:
        close = difflib.get_close_matches(board_name, list(CHANNEL_INDEX), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise r.error("board", f"unknown board channel {board_name!r}{hint}")
    board = CHANNEL_INDEX[board_name]
    if CHANNELS[board].group != ch.group:
        raise r.error("board", f"{board_name} is in the {CHANNELS[board].group} group and {name} in the {ch.group} "
                               "group: a channel can only be mapped within its group (one sample time per group)")
    unit = r.get("unit", str, None)
    if unit is not None and unit != ch.unit:
        raise r.error("unit", f"{name} is in {ch.unit}, not {unit!r} (calibrate the raw reading into {ch.unit})")
    raw_unit = r.get("raw_unit", str, "")
    poly = r.numbers("poly")
    scale, offset = r.get("scale", float, None), r.get("offset", float, None)
    if poly is not None and (scale is not None or offset is not None):
        raise r.error("poly", "give either poly or scale/offset, not both")
    if poly is None and scale is None and offset is None:
        return board, None
    if ch.discrete:
        raise r.error("poly" if poly is not None else ("scale" if scale is not None else "offset"),
                      f"{name} is a discrete channel ({ch.unit}): it can be mapped, not calibrated")
    if poly is None:
        poly = (offset or 0.0, 1.0 if scale is None else scale)
    if len(poly) > 8:
        raise r.error("poly", f"at most 8 coefficients, got {len(poly)}")
    return board, Calibration(poly, raw_unit)


def _actuator(src: str, name: str, table: dict) -> tuple[tuple[int, ...], tuple[float, ...] | None]:
    outputs, scalable = _ACTUATORS[name]
    r = _Reader(src, table, f"actuators.{name}.", {"order", "scale"} if scalable else {"order"})
    order_raw = r.get("order", list, list(outputs))
    if sorted(map(str, order_raw)) != sorted(map(str, outputs)) or len(order_raw) != len(outputs):
        raise r.error("order", f"must list each of {', '.join(map(str, outputs))} once (board output k is driven "
                               f"by the twin's output order[k]), got {order_raw!r}")
    order = tuple(list(map(str, outputs)).index(str(x)) for x in order_raw)
    scale = r.numbers("scale", len(outputs)) if scalable else None
    if scale is not None and not all(0.0 < s <= 10.0 for s in scale):
        raise r.error("scale", f"each factor must be within 0 .. 10 (exclusive of 0), got {list(scale)}")
    return order, scale


def load_rig_file(path: str | os.PathLike) -> RigFile:
    """Read and validate a rig file (nothing is opened); :class:`RigFileError` at the first problem."""
    path = Path(path)
    src = str(path)
    try:
        data = tomllib.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise RigFileError(src, None, "no such rig file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RigFileError(src, None, f"cannot read it ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise RigFileError(src, None, f"not valid TOML: {exc}") from None
    base = path.resolve().parent
    r = _Reader(src, data, "", _TOP)
    name = r.get("name", str, path.stem)
    if not _NAME.match(name):
        raise r.error("name", f"letters, digits, '.', '_' and '-' only (it names the state folder), got {name!r}")
    transport = r.choice("transport", TRANSPORTS, None) if "transport" in data else None
    if transport is None:
        raise r.error("transport", "required (serial or mqtt)")
    key_file = r.path("key_file", base, required=True)
    state = r.get("state_dir", str, None)
    state_dir = (Path(os.path.expanduser(state)) if state else
                 Path(os.environ.get("XDG_STATE_HOME", Path.home() / ".local" / "state")) / "suncatcher-twin" / name)
    if not state_dir.is_absolute():
        state_dir = base / state_dir
    lockstep = r.get("lockstep", bool, False)
    realtime = r.get("realtime", bool, not lockstep)
    if not lockstep and not realtime:
        raise r.error("realtime", "a free-running board needs the wall clock (lockstep = false streams frames on "
                                  "the board's own clock): set realtime = true or lockstep = true")
    step_timeout_s = r.get("step_timeout_s", float, 1.0)
    if not 0.001 <= step_timeout_s <= 60:
        raise r.error("step_timeout_s", f"must be within 0.001 .. 60 s, got {step_timeout_s}")
    retries = r.get("retries", int, 2)
    if not 0 <= retries <= 10:
        raise r.error("retries", f"must be within 0 .. 10, got {retries}")
    serial = mqtt = None
    for other in TRANSPORTS:
        if other != transport and other in data:
            raise r.error(other, f"a [{other}] table on a {transport} rig (transport = {transport!r})")
    if transport == "serial":
        s = _Reader(src, _table(r, "serial") or {}, "serial.", _SERIAL)
        baud = s.get("baud", int, 921600)
        if baud not in _BAUDS:
            raise s.error("baud", f"must be a standard rate ({', '.join(map(str, _BAUDS))}), got {baud}")
        serial = SerialSettings(s.get("device", str, required=True), baud)
    else:
        m = _Reader(src, _table(r, "mqtt") or {}, "mqtt.", _MQTT)
        broker = m.get("broker", str, required=True)
        if not (broker.startswith("mqtt://") or broker.startswith("mqtts://")):
            raise m.error("broker", f"must be mqtt://host:port or mqtts://host:port, got {broker!r}")
        from firmware_bridge.transports.mqtt_wire import broker_address
        try:
            broker_address(broker, None, None)
        except ValueError as exc:
            raise m.error("broker", str(exc)) from None
        pw_file, pw_env = m.path("password_file", base), m.get("password_env", str, None)
        if pw_file is not None and pw_env is not None:
            raise m.error("password_env", "give either password_file or password_env, not both")
        keepalive = m.get("keepalive_s", int, 5)
        if not 1 <= keepalive <= 600:
            raise m.error("keepalive_s", f"must be within 1 .. 600 s, got {keepalive}")
        mqtt = MqttSettings(broker, m.get("sat_id", str, "sat1"), m.get("user", str, "twin"), pw_file, pw_env,
                            m.path("ca_file", base), keepalive)
    sources, calibrations = list(range(len(CHANNELS))), {}
    for cname, table in (_table(r, "sensors") or {}).items():
        if cname not in CHANNEL_INDEX:
            close = difflib.get_close_matches(cname, list(CHANNEL_INDEX), n=1)
            raise RigFileError(src, f"sensors.{cname}", "unknown twin channel (see twin/hal/channels.py)"
                               + (f"; did you mean '{close[0]}'?" if close else ""))
        if not isinstance(table, dict):
            raise RigFileError(src, f"sensors.{cname}", f"must be a table, got {table!r}")
        board, cal = _sensor(src, cname, table)
        sources[CHANNEL_INDEX[cname]] = board
        if cal is not None:
            calibrations[CHANNEL_INDEX[cname]] = cal
    if len(set(sources)) != len(sources):
        twice = sorted({CHANNELS[b].name for b in sources if sources.count(b) > 1})
        raise RigFileError(src, "sensors", f"board channel {twice[0]} feeds two twin channels (a map must be "
                                           "one to one: move the channel whose slot it took as well)")
    act = _Reader(src, _table(r, "actuators") or {}, "actuators.", set(_ACTUATORS))
    orders = {}
    for aname in _ACTUATORS:
        table = act.get(aname, dict, None)
        orders[aname] = _actuator(src, aname, table) if table is not None else (None, None)
    plain = ChannelMap()
    cmap = ChannelMap(
        tuple(sources), calibrations,
        orders["heater_duty"][0] or plain.heater_order, orders["heater_duty"][1] or plain.heater_scale,
        orders["tpu_cap"][0] or plain.tpu_order, orders["tpu_cap"][1] or plain.tpu_cap_scale,
        orders["isl_enable"][0] or plain.isl_order)
    return RigFile(path, name, transport, key_file, state_dir, r.choice("unsigned_telemetry", ("reject", "accept"),
                                                                        "reject"),
                   lockstep, realtime, step_timeout_s, retries, serial, mqtt, cmap)


def _transport(rig: RigFile):
    if rig.serial is not None:
        from firmware_bridge.transports.serial_link import SerialLink
        return SerialLink(rig.serial.device, rig.serial.baud)
    from firmware_bridge.transports.mqtt_link import MqttLink
    m = rig.mqtt
    password = None
    if m.password_file is not None:
        try:
            password = m.password_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise RigFileError(str(rig.path), "mqtt.password_file",
                               f"cannot read {m.password_file} ({getattr(exc, 'strerror', None) or exc})") from None
    elif m.password_env is not None:
        password = os.environ.get(m.password_env)
        if password is None:
            raise RigFileError(str(rig.path), "mqtt.password_env", f"environment variable {m.password_env} is not set")
    tls = None
    if m.ca_file is not None:
        try:
            tls = ssl.create_default_context(cafile=str(m.ca_file))
        except (ssl.SSLError, OSError) as exc:
            raise RigFileError(str(rig.path), "mqtt.ca_file", f"not a usable CA file ({exc})") from None
    return MqttLink(m.broker, sat_id=m.sat_id, role="twin", username=m.user, password=password, tls=tls,
                    keepalive=m.keepalive_s)


@contextlib.asynccontextmanager
async def open_rig_file(path, scenario, *, step_timeout_s: float | None = None, retries: int | None = None):
    """The board a rig file describes: signed RemoteBoard over a FaultyLink, behind its channel map.

    Link faults: drop, delay, duplicate, reorder, corrupt (a bench has no
    switch to pull its cable: no ``disconnect``).
    """
    from firmware_bridge.codec import MavlinkCodec
    from firmware_bridge.errors import BridgeError
    from firmware_bridge.keys import load_key
    from firmware_bridge.remote_board import RemoteBoard
    from firmware_bridge.signing import ReplayTable, SigningClock, SigningPolicy
    from firmware_bridge.transports.faulty import FaultyLink

    rig = path if isinstance(path, RigFile) else load_rig_file(path)
    try:
        key = load_key(rig.key_file)
    except BridgeError as exc:
        raise RigFileError(str(rig.path), "key_file", str(exc)) from None
    replay = None
    try:
        try:
            rig.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            replay = ReplayTable(rig.state_dir / "twin.replay")
            policy = SigningPolicy(key, replay, SigningClock(rig.state_dir / "twin.clock"),
                                   unsigned_telemetry=rig.unsigned_telemetry)
        except BaseException:
            if replay is not None:  # the clock failed after the replay table was opened
                replay.close()
            raise
    except OSError as exc:
        raise RigFileError(str(rig.path), "state_dir", f"cannot use {rig.state_dir} ({exc.strerror or exc})") from None
    except BridgeError as exc:
        raise RigFileError(str(rig.path), "state_dir", str(exc)) from None
    try:
        link = FaultyLink(_transport(rig), seed=scenario.run.seed)
        remote = RemoteBoard(link, MavlinkCodec(signing=policy, link_id=1), rig=rig.name, lockstep=rig.lockstep,
                             step_timeout_s=rig.step_timeout_s if step_timeout_s is None else step_timeout_s,
                             retries=rig.retries if retries is None else retries)
        link.now_ns = lambda: remote.t_ns
        remote.link_faults = link
        add_scenario_link_faults(link, scenario, rig.name)
        yield remote if rig.channel_map.identity else CalibratedBoard(remote, rig.channel_map)
    finally:
        policy.replay.close()
        policy.clock.close()
