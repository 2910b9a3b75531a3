"""TelemetryRecorder (chunking, digest, failing sinks) and CsvSink (round trip)."""
import csv
import hashlib
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from twin.hal import CHANNELS, N_CHANNELS, S_T_BATTERY, S_V_BUS, ActuatorCommand, FswHousekeeping, SensorFrame
from twin.telemetry.csv_sink import CsvSink, csv_columns
from twin.telemetry.records import row_of, rows_to_array
from twin.telemetry.recorder import TelemetryRecorder

EPOCH = 1813536000  # 2027-06-21T00:00:00Z


def tick(i: int):
    """A deterministic, float32-exact frame/command/housekeeping triple for tick ``i``."""
    values = [float(np.float32(0.25 * i + 0.5 * c)) for c in range(N_CHANNELS)]
    frame = SensorFrame(i * 10**9, values, [True] * N_CHANNELS, (i * 10**9,) * 3)
    cmd = ActuatorCommand(heater_duty=[0.125, 0.5], switch_tpu=True, tpu_cap=[1.0, 0.5, 0.25, 0.0],
                          watchdog_kick=i % 256, fsw_mode=2)
    hk = FswHousekeeping(mode=2, soc_est=0.9 - i / 1000, queue_bytes=1000.0 * i, watchdog_ok=True)
    return frame, cmd, hk


class ListSink:
    def __init__(self, fail_on_write: int | None = None, fail_close: bool = False):
        self.chunks, self.writes, self.closes = [], 0, 0
        self.fail_on_write, self.fail_close = fail_on_write, fail_close

    def write_chunk(self, rows):
        self.writes += 1
        if self.writes == self.fail_on_write:
            raise OSError("disk full")
        self.chunks.append(rows.copy())

    def close(self):
        self.closes += 1
        if self.fail_close:
            raise OSError("close failed")


def record_all(ticks, chunk_rows, sinks=()):
    rec = TelemetryRecorder(list(sinks), chunk_rows=chunk_rows)
    for t in ticks:
        rec.record(*t)
    rec.close()
    return rec


def test_digest_is_sha256_of_all_rows_whatever_the_chunking():
    ticks = [tick(i) for i in range(10)]
    expected = hashlib.sha256(rows_to_array([row_of(*t) for t in ticks]).tobytes()).hexdigest()
    for chunk_rows, sizes in ((1, [1] * 10), (3, [3, 3, 3, 1]), (4, [4, 4, 2]), (10, [10]), (100, [10])):
        sink = ListSink()
        rec = record_all(ticks, chunk_rows, [sink])
        assert rec.digest == expected
        assert rec.n_rows == 10
        assert [len(c) for c in sink.chunks] == sizes


def test_digest_changes_when_one_value_changes():
    ticks = [tick(i) for i in range(10)]
    base = record_all(ticks, 4).digest
    ticks[7][0].values[S_V_BUS] += 0.5
    assert record_all(ticks, 4).digest != base


def test_digest_and_rows_include_pending_rows_before_close():
    ticks = [tick(i) for i in range(5)]
    rec = TelemetryRecorder([], chunk_rows=3)
    for t in ticks:
        rec.record(*t)
    assert rec.n_rows == 5 and len(rec.rows()) == 5
    before = rec.digest
    rec.close()
    assert rec.digest == before
    assert rec.rows().tobytes() == rows_to_array([row_of(*t) for t in ticks]).tobytes()


def test_failing_sink_is_disabled_and_others_lose_nothing():
    ticks = [tick(i) for i in range(10)]
    bad, good = ListSink(fail_on_write=2, fail_close=True), ListSink()
    rec = record_all(ticks, 3, [bad, good])
    assert rec.sink_errors == 2  # the failed write and the failed close
    assert bad.writes == 2  # disabled after its failure
    assert good.closes == 1 and bad.closes == 1  # every close attempted
    assert np.concatenate(good.chunks).tobytes() == rec.rows().tobytes()
    assert len(rec.rows()) == 10 and rec.active_sinks == 1


def test_close_is_idempotent_and_record_after_close_raises():
    sink = ListSink()
    rec = record_all([tick(0)], 10, [sink])
    rec.close()
    assert sink.closes == 1
    with pytest.raises(RuntimeError):
        rec.record(*tick(1))


def test_malformed_row_is_dropped_alone():
    ticks = [tick(i) for i in range(4)]
    ticks[2][0].values.append(1.0)  # one value too many
    sink = ListSink()
    rec = record_all(ticks, 10, [sink])
    assert rec.dropped_rows == 1
    assert np.concatenate(sink.chunks)["t_ns"].tolist() == [0, 10**9, 3 * 10**9]


def test_csv_round_trip(tmp_path):
    ticks = [tick(i) for i in range(7)]
    ticks[3][0].values[S_T_BATTERY] = float("nan")
    ticks[4][0].valid[S_T_BATTERY] = False
    ticks[4][0].valid[S_V_BUS] = False
    path = tmp_path / "telemetry.csv"
    record_all(ticks, 3, [CsvSink(path, EPOCH)])

    with open(path, newline="") as f:
        lines = list(csv.reader(f))
    assert lines[0] == csv_columns() and len(lines) == 8
    table = [dict(zip(lines[0], line)) for line in lines[1:]]
    for i, (frame, cmd, hk) in enumerate(ticks):
        row = table[i]
        assert float(row["t_s"]) == i
        assert row["utc"] == (datetime(2027, 6, 21, tzinfo=timezone.utc) + timedelta(seconds=i)).strftime(
            "%Y-%m-%dT%H:%M:%S.000Z")
        for c, ch in enumerate(CHANNELS):
            if frame.values[c] != frame.values[c]:
                assert row[ch.name] == "nan"
            else:
                assert np.float32(row[ch.name]) == np.float32(frame.values[c])
        assert float(row["tpu_cap1"]) == 0.5 and row["switch_tpu"] == "1" and row["switch_optical"] == "0"
        assert int(row["watchdog_kick"]) == i and row["fsw_mode"] == "2"
        assert float(row["hk_soc_est"]) == hk.soc_est and float(row["hk_queue_bytes"]) == 1000.0 * i
    assert table[4]["board_invalid_channels"] == "t_battery_c;v_bus_v"
    assert [r["board_invalid_channels"] for r in table if r is not table[4]] == [""] * 6

    data = np.genfromtxt(path, delimiter=",", names=True, dtype=None, encoding="utf-8")
    assert data["t_s"].tolist() == list(range(7))
    assert np.isnan(data["t_battery_c"][3]) and data["hk_queue_bytes"][6] == 6000.0


def test_csv_formats_long_runs_of_held_values_like_fresh_ones(tmp_path):
    ticks = [tick(i) for i in range(200)]
    for i, (frame, cmd, hk) in enumerate(ticks):
        frame.values[0] = float(np.float32(0.1)) if i < 150 else float("nan")
    path = tmp_path / "t.csv"
    record_all(ticks, 200, [CsvSink(path, EPOCH)])
    with open(path, newline="") as f:
        col = [r["t_tpu0_c"] for r in csv.DictReader(f)]
    assert col == ["%.9g" % np.float32(0.1)] * 150 + ["nan"] * 50
