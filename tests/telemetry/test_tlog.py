"""The tlog writer: byte-identical to pymavlink, readable by mavutil and mavlogdump, robust to truncation."""
import json
import runpy
import struct
from pathlib import Path

import numpy as np
import pytest

from firmware_bridge.dialect import load_dialect, register_with_mavutil
from firmware_bridge.messages import command_to_message, frame_to_messages, housekeeping_to_message
from twin.hal import (CHANNEL_INDEX, CHANNELS, FSW_HOUSEKEEPING_FIELDS, N_CHANNELS, ActuatorCommand,
                      FswHousekeeping, SensorFrame)
from twin.telemetry.records import RECORD_DTYPE, row_of, rows_to_array
from twin.telemetry.tlog import TlogWriter

EPOCH_S = 1_750_000_000.25
EPOCH_US = 1_750_000_000_250_000
TYPES_PER_ROW = ["HEARTBEAT", "SC_THERMAL_FRAME", "SC_POWER_FRAME", "SC_STATUS_FRAME", "SC_ACTUATOR_COMMAND",
                 "SC_FSW_HOUSEKEEPING"]
HK_KIND = {name: type(getattr(FswHousekeeping(), name)) for name in FSW_HOUSEKEEPING_FIELDS}


def random_rows(n: int, seed: int = 0) -> np.ndarray:
    """Rows with anything a row can hold: NaN, infinities, out-of-range discretes, runs of zeros."""
    rng = np.random.default_rng(seed)
    rows = np.zeros(n, RECORD_DTYPE)
    rows["t_ns"] = np.cumsum(rng.integers(1, 2 * 10**9, n))
    rows["sample_t_ns"] = rows["t_ns"][:, None] - rng.integers(0, 10**6, (n, 3))
    values = rng.normal(0, 100, (n, N_CHANNELS))
    discrete = [i for i, c in enumerate(CHANNELS) if c.discrete]
    values[:, discrete] = rng.integers(-3, 70000, (n, len(discrete))) / rng.choice([1, 2], (n, len(discrete)))
    values[rng.random((n, N_CHANNELS)) < 0.05] = np.nan
    values[rng.random((n, N_CHANNELS)) < 0.02] = np.inf
    values[rng.random((n, N_CHANNELS)) < 0.3] = 0
    rows["values"] = values
    rows["valid"] = rng.integers(0, 3, (n, N_CHANNELS))
    for name in ("heater_duty", "tpu_cap"):
        x = rng.normal(0.5, 0.6, rows[name].shape)
        x[rng.random(x.shape) < 0.1] = np.nan
        rows[name] = x
    for name in ("switch_tpu", "switch_optical", "isl_enable", "downlink_enable", "charge_enable", "watchdog_kick"):
        rows[name] = rng.integers(0, 256, rows[name].shape) * (rng.random(rows[name].shape) < 0.5)
    rows["fsw_mode"] = rng.integers(0, 3, n)
    for name, kind in HK_KIND.items():
        col = rows[f"hk_{name}"]
        col[:] = rng.normal(0, 1e9, n) if kind is float else rng.integers(-5, 2**31 - 1, n)
        col[rng.random(n) < 0.3] = 0
    return rows


def reference_tlog(rows: np.ndarray) -> bytes:
    """What pymavlink writes for the messages of firmware_bridge.messages, one MAVLink sequence for all."""
    mod = load_dialect()
    mav = mod.MAVLink(None, srcSystem=1, srcComponent=1)
    out = bytearray()
    for i, r in enumerate(rows):
        t = int(r["t_ns"])
        frame = SensorFrame(t, [float(v) for v in r["values"]], [bool(v) for v in r["valid"]],
                            tuple(int(s) for s in r["sample_t_ns"]))
        cmd = ActuatorCommand(
            heater_duty=[float(x) for x in r["heater_duty"]], switch_tpu=bool(r["switch_tpu"]),
            switch_optical=bool(r["switch_optical"]), tpu_cap=[float(x) for x in r["tpu_cap"]],
            isl_enable=[bool(x) for x in r["isl_enable"]], downlink_enable=bool(r["downlink_enable"]),
            charge_enable=bool(r["charge_enable"]), watchdog_kick=int(r["watchdog_kick"]), fsw_mode=int(r["fsw_mode"]))
        hk = FswHousekeeping(**{name: kind(r[f"hk_{name}"]) for name, kind in HK_KIND.items()})
        msgs = [mod.MAVLink_heartbeat_message(45, 0, 1, int(r["fsw_mode"]), 4, 3), *frame_to_messages(frame),
                command_to_message(cmd, i, t), housekeeping_to_message(hk, t)]
        for m in msgs:
            out += struct.pack(">Q", EPOCH_US + t // 1000) + m.pack(mav)
            mav.seq = (mav.seq + 1) % 256
    return bytes(out)


def frame_ends(data: bytes) -> list[int]:
    """End offset of every (timestamp + frame) record of a tlog, walked by hand."""
    ends, pos = [], 0
    while pos + 8 + 2 <= len(data):
        assert data[pos + 8] == 0xFD
        pos += 8 + 12 + data[pos + 9]
        ends.append(pos)
    return ends


def realistic_rows(n: int) -> np.ndarray:
    rows = []
    for i in range(n):
        t = (i + 1) * 10**9 + 123_456
        values = [float(np.float32(20 + 0.5 * k + i)) if not c.discrete else float(k % 3) for k, c in enumerate(CHANNELS)]
        frame = SensorFrame(t, values, [k % 7 != 0 for k in range(N_CHANNELS)], (t, t - 10**6, t))
        cmd = ActuatorCommand(heater_duty=[0.25, 0.0], switch_tpu=True, fsw_mode=i % 3, watchdog_kick=i).quantized()
        rows.append(row_of(frame, cmd, FswHousekeeping(mode=i % 3, soc_est=0.5, generated_bytes=1e12 + i)))
    return rows_to_array(rows)


@pytest.fixture
def mavutil(monkeypatch):
    """pymavlink's mavutil with our dialect, its process-wide state restored afterwards."""
    monkeypatch.setenv("MAVLINK_DIALECT", "all")  # mavutil sets both at import or on first use
    monkeypatch.setenv("MAVLINK20", "1")
    from pymavlink import mavutil

    monkeypatch.setattr(mavutil, "mavlink", mavutil.mavlink)
    monkeypatch.setattr(mavutil, "current_dialect", mavutil.current_dialect)
    return mavutil


def read_all(mavutil, path: Path) -> list:
    mlog = mavutil.mavlink_connection(str(path), dialect=register_with_mavutil())
    msgs = []
    while (m := mlog.recv_match()) is not None:
        msgs.append(m)
    return msgs, mlog


def test_bytes_are_identical_to_pymavlink_pack(tmp_path):
    rows = random_rows(300)
    rows.flags.writeable = False  # the recorder shares chunks read-only between sinks
    path = tmp_path / "run.tlog"
    with TlogWriter(path, EPOCH_S) as w:
        for a, b in [(0, 0), (0, 7), (7, 8), (8, 300)]:  # chunk boundaries must not disturb the sequence
            w.write_chunk(rows[a:b])
    assert path.read_bytes() == reference_tlog(rows)


def test_readable_by_mavutil_with_scenario_timestamps_and_values(tmp_path, mavutil):
    rows = realistic_rows(50)
    path = tmp_path / "run.tlog"
    with TlogWriter(path, EPOCH_S) as w:
        w.write_chunk(rows)
    msgs, mlog = read_all(mavutil, path)
    assert [m.get_type() for m in msgs] == TYPES_PER_ROW * len(rows)
    assert [m.get_seq() for m in msgs] == [k % 256 for k in range(len(msgs))]
    assert mlog.sysid_state[1].mav_type == load_dialect().MAV_TYPE_SPACECRAFT_ORBITER
    for k, m in enumerate(msgs):
        r = rows[k // len(TYPES_PER_ROW)]
        assert round(m._timestamp * 1e6) == EPOCH_US + int(r["t_ns"]) // 1000
        if m.get_type() == "SC_THERMAL_FRAME":
            assert m.t_ns == r["t_ns"] and m.t_coldplate_c == r["values"][CHANNEL_INDEX["t_coldplate_c"]]
        elif m.get_type() == "SC_STATUS_FRAME":
            assert m.sample_t_ns == r["sample_t_ns"][2] and m.isl1_state == r["values"][CHANNEL_INDEX["isl1_state"]]
            assert m.valid == sum(1 << b for b, c in enumerate(c for c in CHANNELS if c.group == "status")
                                  if r["valid"][CHANNEL_INDEX[c.name]])
        elif m.get_type() == "SC_ACTUATOR_COMMAND":
            assert m.cmd_seq == k // len(TYPES_PER_ROW) and m.fsw_mode == r["fsw_mode"]
            assert m.heater_duty == [0.25, 0.0] and m.watchdog_kick == r["watchdog_kick"]
        elif m.get_type() == "SC_FSW_HOUSEKEEPING":
            assert m.generated_bytes == r["hk_generated_bytes"] and m.soc_est == 0.5


def test_mavlogdump_prints_the_frames(tmp_path, mavutil, monkeypatch, capsys):
    rows = realistic_rows(5)
    path = tmp_path / "run.tlog"
    with TlogWriter(path, EPOCH_S) as w:
        w.write_chunk(rows)
    register_with_mavutil()
    tool = Path(mavutil.__file__).parent / "tools" / "mavlogdump.py"
    monkeypatch.setattr("sys.argv", [str(tool), "--format", "json", "--dialect", "suncatcher",
                                     "--types", "SC_POWER_FRAME", str(path)])
    runpy.run_path(str(tool), run_name="__main__")
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [round(x["meta"]["timestamp"] * 1e6) for x in lines] == [EPOCH_US + t // 1000 for t in rows["t_ns"]]
    assert [x["data"]["v_bus_v"] for x in lines] == [float(r["values"][CHANNEL_INDEX["v_bus_v"]]) for r in rows]


@pytest.mark.parametrize("cut_from_end", [1, 5, 20, 37, 150, 400])
def test_truncated_tlog_yields_every_complete_frame_before_the_cut(tmp_path, mavutil, cut_from_end):
    rows = realistic_rows(20)
    path = tmp_path / "run.tlog"
    with TlogWriter(path, EPOCH_S) as w:
        w.write_chunk(rows)
    data = path.read_bytes()
    cut = len(data) - cut_from_end
    complete = sum(end <= cut for end in frame_ends(data))
    assert cut not in frame_ends(data)  # the cut lands inside a record
    path.write_bytes(data[:cut])
    msgs, _ = read_all(mavutil, path)
    assert [m.get_type() for m in msgs] == (TYPES_PER_ROW * len(rows))[:complete]
    starts = [0] + frame_ends(data)[:-1]
    assert [bytes(m.get_msgbuf()) for m in msgs] == [data[s + 8:e] for s, e in zip(starts, frame_ends(data))][:complete]


def test_each_chunk_is_on_disk_before_close(tmp_path, mavutil):
    rows = realistic_rows(6)
    path = tmp_path / "run.tlog"
    w = TlogWriter(path, EPOCH_S)
    w.write_chunk(rows[:4])
    msgs, _ = read_all(mavutil, path)  # the writer is still open, as after a crash
    assert len(msgs) == 4 * len(TYPES_PER_ROW)
    w.write_chunk(rows[4:])
    w.close()
    w.close()
    assert len(read_all(mavutil, path)[0]) == 6 * len(TYPES_PER_ROW)


def test_same_rows_same_file(tmp_path):
    rows = random_rows(40, seed=3)
    for name in ("a.tlog", "b.tlog"):
        with TlogWriter(tmp_path / name, EPOCH_S) as w:
            w.write_chunk(rows)
    assert (tmp_path / "a.tlog").read_bytes() == (tmp_path / "b.tlog").read_bytes()


def test_bad_rows_are_refused(tmp_path):
    with TlogWriter(tmp_path / "x.tlog", EPOCH_S) as w:
        with pytest.raises(TypeError):
            w.write_chunk(np.zeros(3, [("t_ns", "<i8")]))
        rows = random_rows(3)
        rows["t_ns"][1] = -1
        with pytest.raises(ValueError):
            w.write_chunk(rows)
