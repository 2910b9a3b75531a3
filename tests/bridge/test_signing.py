"""MAVLink 2 signing: keys, the signature, the shared replay table, the clock, and the codec's policy.

Incoming signed frames are built by pymavlink's own generated signing code
(``MAVLink.signing``), an implementation independent of ours; the signature of
our outgoing frames is recomputed here with hashlib.
"""
import asyncio
import hashlib
import os
import stat

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_bridge.codec import MavlinkCodec
from firmware_bridge.dialect import load_dialect
from firmware_bridge.errors import BridgeInitError
from firmware_bridge.keys import create_key_file, load_key
from firmware_bridge.signing import ReplayTable, SigningClock, SigningPolicy

MOD = load_dialect()
KEY = bytes(range(1, 33))
OTHER_KEY = bytes(range(101, 133))
WALL0 = 1_800_000_000.0                                 # 2027-01-15, Unix seconds
TS0 = int(round((WALL0 - 1_420_070_400) * 100_000))    # the same instant in 10 us units since 2015-01-01
PROPERTY = settings(max_examples=150, deadline=None, derandomize=True, database=None)


class Wall:
    """An injectable wall clock (Unix seconds) that tests move by hand, backwards too."""

    def __init__(self, t=WALL0):
        self.t = t

    def __call__(self):
        return self.t


def x25(data: bytes) -> int:
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
    return crc


def policy(tmp_path=None, *, key=KEY, unsigned="reject", wall=None, replay=None, clock=None):
    wall = wall or Wall()
    if replay is None:
        replay = ReplayTable(tmp_path / "replay.json" if tmp_path else None, wall_clock=wall)
    if clock is None:
        clock = SigningClock(tmp_path / "clock.json" if tmp_path else None, wall_clock=wall)
    return SigningPolicy(key, replay, clock, unsigned_telemetry=unsigned)


def pymavlink_signer(key=KEY, *, ts=TS0, link_id=1, sysid=2, compid=3):
    """pymavlink's own signing: each ``pack`` signs with the next timestamp."""
    mav = MOD.MAVLink(None, srcSystem=sysid, srcComponent=compid)
    mav.signing.secret_key, mav.signing.sign_outgoing = key, True
    mav.signing.link_id, mav.signing.timestamp = link_id, ts
    return mav


def pack(mav, msg) -> bytes:
    data = msg.pack(mav)
    mav.seq = (mav.seq + 1) % 256
    return data


def step(i):
    return MOD.MAVLink_sc_step_request_message(i, 10**9 * i)


def thermal(i):
    return MOD.MAVLink_sc_thermal_frame_message(i, i, 0x1FF, *[float(i)] * 9)


def unsigned(msg) -> bytes:
    return msg.pack(MOD.MAVLink(None, srcSystem=2, srcComponent=3))


def raw(msgs):
    return [bytes(m.get_msgbuf()) for m in msgs]


# ---- keys ---------------------------------------------------------------------------------------

def test_a_created_key_file_is_private_random_and_loads(tmp_path):
    old = os.umask(0)  # the file must come out 0600 whatever the umask
    try:
        a, b = create_key_file(tmp_path / "a.key"), create_key_file(tmp_path / "b.key")
    finally:
        os.umask(old)
    assert stat.S_IMODE(a.stat().st_mode) == 0o600 and a.stat().st_size == 32
    assert load_key(a) == a.read_bytes() and load_key(a) != load_key(b)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary left behind


def test_an_existing_key_file_is_kept_unless_overwrite_is_asked(tmp_path):
    path = create_key_file(tmp_path / "rig.key")
    before = path.read_bytes()
    with pytest.raises(BridgeInitError, match="exists"):
        create_key_file(path)
    assert path.read_bytes() == before
    create_key_file(path, overwrite=True)
    assert path.read_bytes() != before and len(path.read_bytes()) == 32


def test_key_files_are_created_where_hard_links_are_not_supported(tmp_path, monkeypatch):
    def no_links(src, dst):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    path = create_key_file(tmp_path / "rig.key")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and len(load_key(path)) == 32
    with pytest.raises(BridgeInitError, match="exists"):
        create_key_file(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rig.key"]


@pytest.mark.parametrize("content, mode, match", [
    (None, 0o600, "not found"),
    (b"\x01" * 31, 0o600, "31 bytes"),
    (b"\x01" * 33, 0o600, "more than 32"),
    (b"", 0o600, "0 bytes"),
    (b"\x01" * 32, 0o640, "chmod 600"),
    (b"\x01" * 32, 0o604, "chmod 600"),
])
def test_a_bad_key_file_is_a_clear_init_error(tmp_path, content, mode, match):
    path = tmp_path / "rig.key"
    if content is not None:
        path.write_bytes(content)
        path.chmod(mode)
    with pytest.raises(BridgeInitError, match=match):
        load_key(path)


def test_a_key_path_that_is_not_a_regular_file_is_refused_without_hanging(tmp_path):
    with pytest.raises(BridgeInitError, match="not a regular file"):
        load_key(tmp_path)
    os.mkfifo(tmp_path / "fifo", 0o600)
    with pytest.raises(BridgeInitError, match="not a regular file"):
        load_key(tmp_path / "fifo")


def test_policy_and_codec_configuration_errors_are_init_errors():
    with pytest.raises(BridgeInitError, match="32 bytes"):
        policy(key=KEY[:16])
    with pytest.raises(BridgeInitError, match="unsigned_telemetry"):
        policy(unsigned="sometimes")
    bad = SigningPolicy(KEY, ReplayTable(), SigningClock(), command_messages=frozenset({"SC_NO_SUCH"}))
    with pytest.raises(BridgeInitError, match="SC_NO_SUCH"):
        MavlinkCodec(signing=bad)


# ---- the signature ------------------------------------------------------------------------------

def test_an_encoded_frame_carries_the_spec_signature_and_matches_pymavlink(tmp_path):
    codec = MavlinkCodec(signing=policy(), link_id=7, src_system=2, src_component=3)
    frame = codec.encode(step(5))
    assert frame[2] & 0x01 and len(frame) == 12 + frame[1] + 13
    body, link_id, ts, sig = frame[:-13], frame[-13], int.from_bytes(frame[-12:-6], "little"), frame[-6:]
    assert link_id == 7 and ts == TS0
    assert x25(body[1:-2] + bytes([step(5).crc_extra])) == int.from_bytes(body[-2:], "little")
    assert sig == hashlib.sha256(KEY + frame[:-6]).digest()[:6]
    assert frame == pack(pymavlink_signer(ts=TS0, link_id=7), step(5))


def test_good_signed_frames_are_accepted():
    mav = pymavlink_signer(link_id=4)
    frames = [pack(mav, m) for m in (step(1), thermal(2), MOD.MAVLink_heartbeat_message(1, 2, 3, 4, 5, 3))]
    codec = MavlinkCodec(signing=policy())
    msgs = codec.feed(b"".join(frames))
    assert raw(msgs) == frames
    assert all(m.get_signed() and m.get_link_id() == 4 for m in msgs)
    assert codec.counters.signed_ok == 3 and codec.counters.frames_ok == 3


COMMANDS = [step(1), MOD.MAVLink_sc_actuator_command_message(1, 2, [0.5, 0.5], 1, 0, [1, 1, 1, 1], [1, 0, 1, 0],
                                                              1, 1, 3, 2),
            MOD.MAVLink_command_long_message(1, 1, 246, 0, 1, 0, 0, 0, 0, 0, 0),
            MOD.MAVLink_command_int_message(1, 1, 0, 246, 0, 0, 1, 0, 0, 0, 0, 0, 0),
            MOD.MAVLink_param_set_message(1, 1, b"SC_RATE", 2.0, 9),
            MOD.MAVLink_sc_fsw_housekeeping_message(1, 2, 0, 0.5, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 1)]


@pytest.mark.parametrize("unsigned_telemetry", ["reject", "accept"])
@pytest.mark.parametrize("msg", COMMANDS, ids=lambda m: m.get_type())
def test_an_unsigned_command_is_rejected_whatever_the_telemetry_policy(msg, unsigned_telemetry):
    codec = MavlinkCodec(signing=policy(unsigned=unsigned_telemetry))
    assert codec.feed(unsigned(msg)) == []
    assert codec.counters.unsigned_rejected == 1 and codec.counters.frames_ok == 0


@pytest.mark.parametrize("msg", [thermal(1), MOD.MAVLink_heartbeat_message(1, 2, 3, 4, 5, 3),
                                 MOD.MAVLink_sc_step_reply_message(1, 2)], ids=lambda m: m.get_type())
def test_unsigned_telemetry_follows_the_rig_policy(msg):
    rejecting, accepting = MavlinkCodec(signing=policy()), MavlinkCodec(signing=policy(unsigned="accept"))
    frame = unsigned(msg)
    assert rejecting.feed(frame) == [] and rejecting.counters.unsigned_rejected == 1
    [got] = accepting.feed(frame)
    assert bytes(got.get_msgbuf()) == frame and not got.get_signed() and accepting.counters.unsigned == 1


def test_a_frame_signed_with_another_key_is_rejected_and_leaves_no_trace():
    table = ReplayTable(wall_clock=Wall())
    codec = MavlinkCodec(signing=policy(replay=table))
    assert codec.feed(pack(pymavlink_signer(OTHER_KEY), step(1))) == []
    assert codec.counters.bad_signature == 1 and table.streams() == {}


def _flip(frame: bytes, index: int, bit: int, fix_crc: bool) -> bytes:
    out = bytearray(frame)
    out[index] ^= 1 << bit
    if fix_crc:  # an attacker who rewrites the checksum: only the signature can catch it
        end = 10 + out[1]
        out[end:end + 2] = x25(bytes(out[1:end]) + bytes([step(0).crc_extra])).to_bytes(2, "little")
    return bytes(out)


@pytest.mark.parametrize("where", ["signature", "timestamp", "link_id", "payload", "sysid"])
@pytest.mark.parametrize("bit", [0, 5])
def test_a_bit_flip_in_a_signed_frame_is_rejected(where, bit):
    frame = pack(pymavlink_signer(), step(3))
    index = {"signature": len(frame) - 2, "timestamp": len(frame) - 9, "link_id": len(frame) - 13,
             "payload": 12, "sysid": 5}[where]
    covered = where in ("payload", "sysid")
    for fix_crc in ([False, True] if covered else [False]):
        codec = MavlinkCodec(signing=policy())
        assert codec.feed(_flip(frame, index, bit, fix_crc)) == []
        c = codec.counters
        assert (c.crc_errors, c.bad_signature) == ((1, 0) if covered and not fix_crc else (0, 1))
        assert raw(codec.feed(pack(pymavlink_signer(ts=TS0 + 1), step(4))))  # and nothing was poisoned


# ---- replays ------------------------------------------------------------------------------------

def test_a_replay_on_the_same_link_is_rejected():
    mav = pymavlink_signer()
    first, second = pack(mav, step(1)), pack(mav, step(2))
    codec = MavlinkCodec(signing=policy())
    assert raw(codec.feed(first + second)) == [first, second]
    assert codec.feed(first) == [] and codec.feed(second) == []
    assert codec.counters.replays == 2 and codec.counters.signed_ok == 2


def test_a_replay_on_another_link_sharing_the_table_is_rejected():
    shared = policy()
    serial, mqtt = MavlinkCodec(signing=shared, link_id=0), MavlinkCodec(signing=shared, link_id=1)
    frame = pack(pymavlink_signer(), step(1))
    assert len(serial.feed(frame)) == 1
    assert mqtt.feed(frame) == [] and mqtt.counters.replays == 1


def test_a_replay_after_a_restart_is_rejected(tmp_path):
    mav = pymavlink_signer()
    frames = [pack(mav, step(i)) for i in range(3)]
    before = policy(tmp_path)
    assert len(MavlinkCodec(signing=before).feed(b"".join(frames))) == 3
    before.replay.close()
    after = MavlinkCodec(signing=policy(tmp_path, wall=Wall(WALL0 + 5)))
    assert after.feed(b"".join(frames)) == [] and after.counters.replays == 3
    assert raw(after.feed(pack(mav, step(3)))) and after.counters.signed_ok == 1


def test_a_replay_after_a_crash_is_rejected_once_autosave_ran(tmp_path):
    mav = pymavlink_signer()
    frame = pack(mav, step(1))
    table = ReplayTable(tmp_path / "replay.json", wall_clock=Wall())

    async def run():
        saver = asyncio.create_task(table.autosave(interval_s=0.01))
        MavlinkCodec(signing=policy(replay=table)).feed(frame)
        for _ in range(500):  # until the saver has run; no close: this is the crash
            await asyncio.sleep(0.01)
            if (tmp_path / "replay.json").exists():
                break
        saver.cancel()

    asyncio.run(run())
    reloaded = ReplayTable(tmp_path / "replay.json", wall_clock=Wall())
    assert reloaded.last((1, 2, 3)) == TS0
    assert MavlinkCodec(signing=policy(replay=reloaded)).feed(frame) == []


@pytest.mark.parametrize("established", [True, False])
def test_a_badly_signed_far_future_frame_does_not_poison_the_stream(established):
    mav = pymavlink_signer()
    good = [pack(mav, step(i)) for i in range(4)]
    forged = pack(pymavlink_signer(OTHER_KEY, ts=TS0 + 100 * 365 * 86400 * 100_000), step(99))
    garbled = bytearray(pack(pymavlink_signer(ts=TS0 + 10**12), step(98)))
    garbled[-1] ^= 0xFF  # our own key, a far-future timestamp, a wrong signature
    codec = MavlinkCodec(signing=policy())
    stream = (good[0] if established else b"") + forged + bytes(garbled) + b"".join(good[1:])
    assert raw(codec.feed(stream)) == (good if established else good[1:])
    assert codec.counters.bad_signature == 2 and codec.counters.replays == 0


@pytest.mark.parametrize("offset_s, ok", [(-61, False), (-59, True), (59, True), (61, False)])
def test_a_new_stream_is_accepted_only_within_the_window_of_local_time(offset_s, ok):
    frame = pack(pymavlink_signer(ts=TS0 + offset_s * 100_000), step(1))
    codec = MavlinkCodec(signing=policy())
    assert len(codec.feed(frame)) == ok and codec.counters.replays == (not ok)


def test_an_unknown_id_is_dropped_before_any_signature_or_replay_bookkeeping():
    body = bytes([0xFD, 3, 0x01, 0, 0, 2, 3, 0x56, 0x34, 0x12, 1, 2, 3])
    body += x25(body[1:] + b"\x07").to_bytes(2, "little") + b"\x01" + (TS0 + 10**12).to_bytes(6, "little")
    alien = body + hashlib.sha256(KEY + body).digest()[:6]  # validly signed, far in the future
    assert 0x123456 not in MOD.mavlink_map
    table = ReplayTable(wall_clock=Wall())
    codec = MavlinkCodec(signing=policy(replay=table))
    good = pack(pymavlink_signer(), step(1))
    assert raw(codec.feed(alien + good)) == [good]
    assert codec.counters.unknown_ids == 1 and table.last((1, 2, 3)) == TS0


def test_mavlink1_frames_are_dropped_and_counted_under_signing():
    v1 = MOD.MAVLink_heartbeat_message(1, 2, 3, 4, 5, 3).pack(MOD.MAVLink(None, 2, 3), force_mavlink1=True)
    good = pack(pymavlink_signer(), step(1))
    codec = MavlinkCodec(signing=policy(unsigned="accept"))
    assert raw(codec.feed(v1 + good + v1)) == [good]
    assert codec.counters.mavlink1_dropped == 2


def test_no_exception_escapes_feed_even_from_the_replay_table(monkeypatch):
    table = ReplayTable(wall_clock=Wall())
    monkeypatch.setattr(table, "accept", lambda *a: 1 / 0)
    codec = MavlinkCodec(signing=policy(replay=table))
    assert codec.feed(pack(pymavlink_signer(), step(1))) == [] and codec.counters.internal_errors == 1


# ---- the clock and the state files -------------------------------------------------------------

def test_the_signing_clock_never_goes_backwards_across_restarts(tmp_path):
    wall = Wall()
    clock = SigningClock(tmp_path / "clock.json", wall_clock=wall)
    first = [clock.next() for _ in range(3)]
    assert first == [TS0, TS0 + 1, TS0 + 2]
    wall.t -= 3600
    assert clock.next() == TS0 + 3
    # A crash (no close), then a restart with the wall clock an hour behind.
    again = SigningClock(tmp_path / "clock.json", wall_clock=Wall(WALL0 - 3600))
    resumed = again.next()
    assert resumed > TS0 + 3
    again.close()
    # A clean close records the exact last one.
    assert SigningClock(tmp_path / "clock.json", wall_clock=Wall(WALL0 - 7200)).next() == resumed + 1
    wall.t = WALL0 + 100
    assert SigningClock(tmp_path / "clock.json", wall_clock=wall).next() == TS0 + 100 * 100_000


def test_codecs_sharing_a_clock_sign_with_strictly_increasing_timestamps():
    shared = policy()
    a, b = MavlinkCodec(signing=shared, link_id=0), MavlinkCodec(signing=shared, link_id=1)
    stamps = [int.from_bytes((a if i % 3 else b).encode(step(i))[-12:-6], "little") for i in range(30)]
    assert stamps == list(range(TS0, TS0 + 30))


@pytest.mark.parametrize("name, content", [("replay.json", b"{not json"), ("replay.json", b'{"version": 1}'),
                                           ("replay.json", b'{"version": 1, "streams": [[1, 2, 300, 5]]}'),
                                           ("replay.json", b"[]"), ("clock.json", b'{"last": -4}'),
                                           ("clock.json", b'{"last": "soon"}')])
def test_a_malformed_state_file_is_a_clear_init_error(tmp_path, name, content):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(BridgeInitError, match=name):
        (ReplayTable if name == "replay.json" else SigningClock)(tmp_path / name)


def test_state_files_are_private(tmp_path):
    p = policy(tmp_path)
    MavlinkCodec(signing=p).feed(pack(pymavlink_signer(), step(1)))
    p.replay.close()
    p.clock.close()
    for name in ("replay.json", "clock.json"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600


# ---- damaged signed streams -------------------------------------------------------------------

def _signed_stream():
    mav = pymavlink_signer()
    msgs = [step(1), thermal(2), MOD.MAVLink_heartbeat_message(1, 2, 3, 4, 5, 3), COMMANDS[1], COMMANDS[5],
            MOD.MAVLink_sc_board_status_message(1, 2, 3, b"sc-board 1.0"), thermal(3), step(4),
            MOD.MAVLink_statustext_message(6, b"\xfd\xfe\xfd hello", 0, 0), step(5), thermal(6), step(7)]
    return [pack(mav, m) for m in msgs]


SIGNED = _signed_stream()
NOISE = st.lists(st.sampled_from([0xFD, 0xFE, 0x00, 0xFF]) | st.integers(0, 255), max_size=40).map(bytes)
MUTATIONS = ["intact"] * 4 + ["flip", "truncate", "len0", "len255", "replay"]


@st.composite
def damaged_streams(draw):
    """(stream, frames that must come out, replays in it): noise between frames, frames damaged or replayed."""
    pieces, intact, replays = [], [], 0
    for frame in SIGNED:
        pieces.append(draw(NOISE))
        kind = draw(st.sampled_from(MUTATIONS))
        if kind == "intact" or (kind == "replay" and not intact):
            pieces.append(frame)
            intact.append(frame)
            continue
        damaged = bytearray(frame)
        if kind == "flip":
            bit = draw(st.integers(0, 8 * len(frame) - 1))
            damaged[bit // 8] ^= 1 << (bit % 8)
        elif kind == "truncate":
            damaged = damaged[:draw(st.integers(1, len(frame) - 1))]
        elif kind in ("len0", "len255"):
            damaged[1] = 0 if kind == "len0" else 255
        else:  # replay the last frame that went through
            damaged = bytearray(intact[-1])
            replays += 1
        pieces.append(bytes(damaged))
        pieces.append(draw(NOISE))
    return b"".join(pieces), intact, replays


@PROPERTY
@given(damaged_streams(), st.lists(st.integers(0, 10**4), max_size=10))
def test_a_damaged_signed_stream_never_raises_and_keeps_every_intact_frame(case, cuts):
    stream, intact, replays = case
    now = [0.0]  # monotonic time stands still while the stream is fed
    codec = MavlinkCodec(signing=policy(), clock=lambda: now[0])
    out, last = [], 0
    for cut in sorted(set(c % (len(stream) + 1) for c in cuts)) + [len(stream)]:
        out += codec.feed(stream[last:cut])
        last = cut
    now[0] += 1.0
    codec.flush_stale(now[0])
    assert raw(out) == intact
    c = codec.counters
    assert c.internal_errors == 0 and c.signed_ok == len(intact) and c.replays == replays and codec.pending == 0
    assert sum(map(len, intact)) + c.bytes_dropped == len(stream)
