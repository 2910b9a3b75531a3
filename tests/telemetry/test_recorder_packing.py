"""The recorder's column-wise packer gives exactly the bytes of records.rows_to_array, or steps aside.

(Here with the flight-software tests because the rows come from flight-software runs; the
recorder's own contract is in tests/telemetry.)
"""
import asyncio
import math
import struct
import warnings

import numpy as np
import pytest

from twin.hal import N_CHANNELS, ActuatorCommand, FswHousekeeping, SensorFrame
from twin.run import run_scenario
from twin.scenarios import load_scenario
from twin.telemetry import recorder as recorder_module
from twin.telemetry.recorder import TelemetryRecorder, _pack_columns
from twin.telemetry.records import row_of, rows_to_array


@pytest.fixture(scope="module")
def run_rows(tmp_path_factory):
    """Row tuples of a run with sensor faults: NaN readings and readings the board flags invalid."""
    path = tmp_path_factory.mktemp("sc") / "faulty.toml"
    path.write_text('extends = "node"\n[run]\nduration = "20m"\n'
                    '[[faults]]\nat = "5m"\nkind = "nan"\ntarget = "t_tpu1_c"\n'
                    '[[faults]]\nat = "10m"\nkind = "off"\ntarget = "t_battery_c"\n')
    rows = []
    real = recorder_module.row_of

    def spy(frame, cmd, hk):
        rows.append(real(frame, cmd, hk))
        return rows[-1]

    recorder_module.row_of = spy
    try:
        asyncio.run(run_scenario(load_scenario(str(path)), out_dir=None, plots=False))
    finally:
        recorder_module.row_of = real
    return rows


def test_same_bytes_as_rows_to_array_on_a_run(run_rows):
    assert len(run_rows) == 1200
    all_valid, some_invalid = run_rows[:590], run_rows[590:]
    assert any(not all(r[2]) for r in some_invalid) and all(all(r[2]) for r in all_valid)
    for rows in (all_valid, some_invalid, run_rows):
        assert _pack_columns(rows).tobytes() == rows_to_array(rows).tobytes()


def test_same_bytes_for_awkward_values():
    nan_payload = struct.unpack("<d", struct.pack("<Q", 0x7FF0000000000123))[0]
    values = [1e300, math.nan, -0.0, 5e-45, nan_payload, -math.inf, 3] + [0.1] * (N_CHANNELS - 7)
    frame = SensorFrame(7, values, [True] * (N_CHANNELS - 1) + [1], (1, 2, 3))
    cmd = ActuatorCommand([0.5, 1], 1, False, [0.1] * 4, [True, 0, 1, False], True, 0, 255, 2)
    hk = FswHousekeeping(soc_est=math.nan, next_contact_s=-1, task_faults=2**31 - 1, watchdog_ok=True)
    rows = [row_of(frame, cmd, hk)] * 3
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)   # 1e300 overflows float32 in both
        assert _pack_columns(rows).tobytes() == rows_to_array(rows).tobytes()


def test_malformed_rows_fall_back_and_only_the_bad_one_is_dropped(run_rows):
    rows = list(run_rows[:5])
    bad = list(rows[2])
    bad[1] = bad[1][:-1]                              # a frame one channel short
    rows[2] = tuple(bad)
    with pytest.raises(ValueError):
        _pack_columns(rows)
    rec = TelemetryRecorder([], chunk_rows=100)
    for r in rows:
        rec._pending.append(r)
    rec.flush()
    assert rec.dropped_rows == 1 and rec.n_rows == 4
    good = [r for k, r in enumerate(rows) if k != 2]
    assert rec.rows().tobytes() == rows_to_array(good).tobytes()


def test_a_column_that_would_broadcast_is_refused(run_rows):
    rows = [tuple(r[:4]) + ([0.5],) + tuple(r[5:]) for r in run_rows[:3]]   # one heater duty, not two
    with pytest.raises(ValueError):
        _pack_columns(rows)
    assert np.array(rows[0][4]).shape == (1,)


class ChunkSink:
    def __init__(self):
        self.chunks = []

    def write_chunk(self, rows):
        self.chunks.append(rows)

    def close(self):
        pass


@pytest.mark.parametrize("chunk_rows,batch_rows", [(100, 7), (100, 60), (5, 60), (3600, 60)])
def test_batches_change_neither_chunks_nor_digest(chunk_rows, batch_rows):
    import hashlib
    sink = ChunkSink()
    rec = TelemetryRecorder([sink], chunk_rows=chunk_rows, batch_rows=batch_rows)
    rows = []
    for t in range(253):
        frame = SensorFrame(t, [float(t)] * N_CHANNELS, [t % 5 != 0] * N_CHANNELS, (t, t, t))
        cmd = ActuatorCommand([0.5, 0.25], tpu_cap=[t / 253] * 4, watchdog_kick=t % 256).quantized()
        hk = FswHousekeeping(mode=t % 3, soc_est=t / 300, fdir_events=t)
        rec.record(frame, cmd, hk)
        rows.append(row_of(frame, cmd, hk))
        if t in (3, 130):                                  # mid-chunk: pending and packed batches both count
            expected = rows_to_array(rows)
            assert rec.n_rows == t + 1 and rec.rows().tobytes() == expected.tobytes()
            assert rec.digest == hashlib.sha256(expected.tobytes()).hexdigest()
    rec.close()
    expected = rows_to_array(rows)
    assert [len(c) for c in sink.chunks] == [chunk_rows] * (253 // chunk_rows) + ([253 % chunk_rows] if 253 % chunk_rows else [])
    assert np.concatenate(sink.chunks).tobytes() == expected.tobytes() == rec.rows().tobytes()
    assert rec.digest == hashlib.sha256(expected.tobytes()).hexdigest()
