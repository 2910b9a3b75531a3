"""Rig files: validation with one-line errors, the channel map, and `twin run --rig FILE` end to end.

The end-to-end runs point a rig file at a board emulator the test starts
itself, on a socat pty pair or behind a private mosquitto: to the twin, a bench.
"""
import asyncio
import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from firmware_bridge.keys import create_key_file
from hil_rigs.calibration import CalibratedBoard, Calibration, ChannelMap
from hil_rigs.rigfile import load_rig_file
from tests.bridge.mqtt_broker import PASSWORDS, MosquittoBroker
from twin.cli import main
from twin.hal import CHANNEL_INDEX, ActuatorCommand
from twin.scenarios import load_scenario
from twin.sim.simboard import SimBoard

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "rigs"


def write_rig(tmp_path, text, name="bench.toml"):
    create_key_file(tmp_path / "bench.key", overwrite=True)
    path = tmp_path / name
    path.write_text(text)
    return path


SERIAL_HEAD = 'transport = "serial"\nkey_file = "bench.key"\n'


# -- validation -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("text,key,reason", [
    ('transport = "usb"\nkey_file = "bench.key"\n', "transport", "must be one of serial, mqtt"),
    ('key_file = "bench.key"\n', "transport", "required"),
    ('name = "../etc"\n' + SERIAL_HEAD + '[serial]\ndevice = "/dev/x"\n', "name", "letters, digits"),
    ('transport = "serial"\n[serial]\ndevice = "/dev/x"\n', "key_file", "required"),
    ('transport = "serial"\nkey_file = "nope.key"\n[serial]\ndevice = "/dev/x"\n', "key_file", "no such file"),
    (SERIAL_HEAD + '[serial]\nbaud = 115200\n', "serial.device", "required"),
    (SERIAL_HEAD + '[serial]\ndevice = "/dev/x"\nbaud = "fast"\n', "serial.baud", "must be a whole number"),
    (SERIAL_HEAD + '[serial]\ndevice = "/dev/x"\nbaud = 12345\n', "serial.baud", "standard rate"),
    (SERIAL_HEAD + '[serial]\ndevice = "/dev/x"\nbaudrate = 9600\n', "serial.baudrate", "did you mean 'baud'"),
    (SERIAL_HEAD + 'lockstep = "yes"\n[serial]\ndevice = "/dev/x"\n', "lockstep", "must be true or false"),
    (SERIAL_HEAD + 'step_timeout_s = 0\n[serial]\ndevice = "/dev/x"\n', "step_timeout_s", "within"),
    (SERIAL_HEAD + 'lockstep = false\nrealtime = false\n[serial]\ndevice = "/dev/x"\n', "realtime",
     "a free-running board needs the wall clock"),
    (SERIAL_HEAD + '[serial]\ndevice = "/dev/x"\n[mqtt]\nbroker = "mqtt://h:1"\n', "mqtt", "on a serial rig"),
    ('transport = "mqtt"\nkey_file = "bench.key"\n[mqtt]\nbroker = "http://h:1"\n', "mqtt.broker", "mqtt://"),
    ('transport = "mqtt"\nkey_file = "bench.key"\n[mqtt]\nbroker = "mqtt://h:1"\npassword_file = "bench.key"\n'
     'password_env = "X"\n', "mqtt.password_env", "either password_file or password_env"),
    (SERIAL_HEAD + '[serial]\ndevice = "/dev/x"\n[sensors.t_batery_c]\nscale = 2\n', "sensors.t_batery_c",
     "did you mean 't_battery_c'"),
    (SERIAL_HEAD + '[serial]\ndevice = "/dev/x"\n[sensors.t_battery_c]\nboard = "v_bus_v"\n',
     "sensors.t_battery_c.board", "within its group"),
    (SERIAL_HEAD + '[serial]\ndevice = "/dev/x"\n[sensors.t_battery_c]\nboard = "t_avionics_c"\n',
     "sensors", "feeds two twin channels"),
    (SERIAL_HEAD + '[serial]\ndevice = "/dev/x"\n[sensors.t_battery_c]\npoly = [1, 2]\nscale = 2.0\n',
     "sensors.t_battery_c.poly", "either poly or scale/offset"),
    (SERIAL_HEAD + '[serial]\ndevice = "/dev/x"\n[sensors.sun_present]\nscale = 2.0\n',
     "sensors.sun_present.scale", "discrete"),
    (SERIAL_HEAD + '[serial]\ndevice = "/dev/x"\n[sensors.v_bus_v]\nunit = "mV"\nscale = 0.001\n',
     "sensors.v_bus_v.unit", "is in V"),
    (SERIAL_HEAD + '[serial]\ndevice = "/dev/x"\n[actuators.heater_duty]\norder = ["battery", "battery"]\n',
     "actuators.heater_duty.order", "each of battery, avionics once"),
    (SERIAL_HEAD + '[serial]\ndevice = "/dev/x"\n[actuators.tpu_cap]\nscale = [1, 1]\n',
     "actuators.tpu_cap.scale", "list of 4 numbers"),
])
def test_a_bad_rig_file_is_one_line_naming_file_key_and_reason(tmp_path, capsys, text, key, reason):
    path = write_rig(tmp_path, text)
    assert main(["run", "--rig", str(path), "--duration", "1m", "--quiet", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert str(path) in err and f"key '{key}'" in err and reason in err, err


def test_not_toml_and_missing_file(tmp_path, capsys):
    path = write_rig(tmp_path, "transport = [serial\n")
    assert main(["run", "--rig", str(path), "--quiet"]) == 2
    assert "not valid TOML" in capsys.readouterr().err
    assert main(["run", "--rig", str(tmp_path / "absent.toml"), "--quiet"]) == 2
    assert "no such rig file" in capsys.readouterr().err


def test_a_bench_that_is_not_there_is_a_one_line_error(tmp_path, capsys):
    path = write_rig(tmp_path, SERIAL_HEAD + f'state_dir = "state"\n[serial]\ndevice = "{tmp_path}/no-such-tty"\n')
    assert main(["run", "--rig", str(path), "--duration", "10s", "--quiet", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    errors = [line for line in err.splitlines() if line.startswith("twin: error:")]
    assert "Traceback" not in err and len(errors) == 1, err
    assert "no such device" in errors[0] and "no-such-tty" in errors[0], err


@pytest.mark.parametrize("example", ["bench-serial.toml", "bench-mqtt.toml"])
def test_the_shipped_examples_are_valid(tmp_path, example):
    shutil.copy(EXAMPLES / example, tmp_path / example)
    for name in ("bench.key", "twin.password", "ca.pem"):
        (tmp_path / name).write_bytes(b"x" * 32)
    rig = load_rig_file(tmp_path / example)
    assert rig.transport == example.split("-")[1].split(".")[0]
    assert rig.realtime and not rig.lockstep
    assert not rig.channel_map.identity


# -- the channel map, over the simulated board ---------------------------------------------------------

def test_channel_map_moves_calibrates_and_maps_commands_back():
    scenario = load_scenario("node", duration="1m", seed=3)
    tb, ta, vb = CHANNEL_INDEX["t_battery_c"], CHANNEL_INDEX["t_avionics_c"], CHANNEL_INDEX["v_bus_v"]
    sources = list(range(len(CHANNEL_INDEX)))
    sources[tb], sources[ta] = ta, tb  # the bench's thermistors are swapped
    cmap = ChannelMap(tuple(sources), {vb: Calibration((0.0, 0.001), "mV"), tb: Calibration((1.0, 2.0, 0.5))},
                      heater_order=(1, 0), heater_scale=(1.0, 0.5))

    async def go():
        plain, board = SimBoard(scenario, 3), CalibratedBoard(SimBoard(scenario, 3), cmap)
        async with plain, board:
            raw = await plain.step_to(0)
            seen = await board.step_to(0)
            await board.command(ActuatorCommand(heater_duty=[0.8, 0.2]))
            return raw, seen, board.inner.plant.act.heater_duty[0].tolist()

    raw, seen, duty = asyncio.run(go())
    a = np.float32(raw.values[ta])
    assert seen.values[tb] == float(np.float32(1.0 + 2.0 * float(a) + 0.5 * float(a) ** 2))
    assert seen.values[ta] == raw.values[tb]
    assert seen.values[vb] == float(np.float32(raw.values[vb] * 0.001))
    assert duty == [float(np.float32(0.2)), float(np.float32(0.4))]  # board output 0 <- twin avionics zone


# -- end to end: twin run --rig FILE against an emulator the test starts -----------------------------------

def start_emulator(tmp_path, where: list[str], key: Path, *extra: str) -> subprocess.Popen:
    log = open(tmp_path / "emulator.log", "wb")  # noqa: SIM115 -- the emulator's, closed with it
    proc = subprocess.Popen([sys.executable, "-m", "hil_rigs.emulator", *where, "--key", str(key), "--seed", "4",
                             "--state-dir", str(tmp_path), "--parent-pid", str(os.getpid()), *extra],
                            stdout=log, stderr=log, env={**os.environ, "PYTHONPATH": str(ROOT)})
    deadline = time.monotonic() + 60
    while b"emulator ready" not in (tmp_path / "emulator.log").read_bytes():
        assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "emulator.log").read_text()
        time.sleep(0.05)
    return proc


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(params=[[]], ids=["lockstep"])
def serial_bench(tmp_path, request):
    """A socat pty pair (stable names) and the board emulator on one end (extra emulator arguments: param)."""
    twin_end, board_end = tmp_path / "ttyBENCH-twin", tmp_path / "ttyBENCH-board"
    socat = subprocess.Popen(["socat", f"pty,raw,echo=0,link={twin_end}", f"pty,raw,echo=0,link={board_end}"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    emu = None
    try:
        deadline = time.monotonic() + 10
        while not (twin_end.exists() and board_end.exists()):
            assert time.monotonic() < deadline, "socat made no pty pair"
            time.sleep(0.02)
        key = create_key_file(tmp_path / "bench.key")
        emu = start_emulator(tmp_path, ["--serial", str(board_end)], key, *request.param)
        yield twin_end
    finally:
        if emu is not None:
            stop(emu)
        stop(socat)


def read_csv(path):
    with open(path) as f:
        rows = list(csv.DictReader(f))
    return {k: [r[k] for r in rows] for k in rows[0]}


def test_twin_run_on_a_serial_rig_file_applies_its_calibration(tmp_path, serial_bench):
    """The bench reports t_solar_array_c raw; the rig file calibrates it (x1.25 - 10 degC); undone, it is the
    simulated rig's reading, and every other column is the simulated rig's."""
    rig = tmp_path / "bench.toml"
    rig.write_text(f'''
transport = "serial"
key_file = "bench.key"
state_dir = "state"
lockstep = true
step_timeout_s = 2.0
[serial]
device = "{serial_bench}"
baud = 921600
[sensors.t_solar_array_c]
raw_unit = "degC (uncalibrated)"
scale = 1.25
offset = -10.0
''')
    out_rig, out_sim = tmp_path / "rig", tmp_path / "sim"
    assert main(["run", "--rig", str(rig), "--duration", "10m", "--seed", "4", "--out", str(out_rig),
                 "--no-plots", "--quiet"]) == 0
    assert main(["run", "--duration", "10m", "--seed", "4", "--out", str(out_sim), "--no-plots", "--quiet"]) == 0
    summary = json.loads((out_rig / "summary.json").read_text())
    assert summary["complete"] and summary["rig"] == "bench" and summary["board_errors"] == 0
    a, b = read_csv(out_rig / "telemetry.csv"), read_csv(out_sim / "telemetry.csv")
    assert len(a["t_s"]) == 600
    for column in a:
        if column != "t_solar_array_c":
            assert a[column] == b[column], column
    undone = (np.array(a["t_solar_array_c"], float) + 10.0) / 1.25
    assert np.allclose(undone, np.array(b["t_solar_array_c"], float), rtol=0, atol=1e-4)
    assert not np.allclose(np.array(a["t_solar_array_c"], float), np.array(b["t_solar_array_c"], float), atol=1)


@pytest.mark.parametrize("serial_bench", [["--free-running", "10"]], ids=["streaming"], indirect=True)
def test_a_streaming_bench_runs_on_the_wall_clock_by_default(tmp_path, serial_bench):
    rig = tmp_path / "bench.toml"
    rig.write_text(f'transport = "serial"\nkey_file = "bench.key"\nstate_dir = "state"\n'
                   f'[serial]\ndevice = "{serial_bench}"\n')
    assert main(["run", "--rig", str(rig), "--duration", "4s", "--out", str(tmp_path / "rig"), "--no-plots",
                 "--quiet"]) == 0
    summary = json.loads((tmp_path / "rig" / "summary.json").read_text())
    assert summary["complete"] and summary["rows"] == 4
    assert summary["wall_seconds"] >= 3.0  # paced by the wall clock: 4 ticks of 1 s (a lower bound, not a speed)
    rows = read_csv(tmp_path / "rig" / "telemetry.csv")
    assert all(float(v) > -80 for v in rows["t_battery_c"][1:])  # real readings streamed by the board


def test_twin_run_on_an_mqtt_rig_file_gives_the_simulated_rigs_digest(tmp_path, monkeypatch):
    broker = MosquittoBroker(tmp_path)
    emu = None
    try:
        broker.start()
        key = create_key_file(tmp_path / "bench.key")
        (tmp_path / "board.pw").write_text(PASSWORDS["board"])
        emu = start_emulator(tmp_path, ["--mqtt", f"{broker.host}:{broker.port}", "--user", "board",
                                        "--password-file", str(tmp_path / "board.pw")], key)
        monkeypatch.setenv("BENCH_TWIN_PASSWORD", PASSWORDS["twin"])
        rig = tmp_path / "bench-mqtt.toml"
        rig.write_text(f'''
transport = "mqtt"
key_file = "bench.key"
state_dir = "state"
lockstep = true
[mqtt]
broker = "mqtt://{broker.host}:{broker.port}"
sat_id = "sat1"
user = "twin"
password_env = "BENCH_TWIN_PASSWORD"
''')
        assert main(["run", "--rig", str(rig), "--duration", "10m", "--seed", "4", "--out", str(tmp_path / "rig"),
                     "--no-plots", "--quiet"]) == 0
    finally:
        if emu is not None:
            stop(emu)
        broker.close()
    assert main(["run", "--duration", "10m", "--seed", "4", "--out", str(tmp_path / "sim"), "--no-plots",
                 "--quiet"]) == 0
    on_rig = json.loads((tmp_path / "rig" / "summary.json").read_text())
    on_sim = json.loads((tmp_path / "sim" / "summary.json").read_text())
    assert on_rig["complete"] and on_rig["rig"] == "bench-mqtt"
    assert on_rig["telemetry_digest"] == on_sim["telemetry_digest"]


def test_a_wrong_broker_password_is_a_one_line_error(tmp_path, capsys, monkeypatch):
    broker = MosquittoBroker(tmp_path)
    try:
        broker.start()
        create_key_file(tmp_path / "bench.key")
        monkeypatch.setenv("BENCH_TWIN_PASSWORD", "wrong")
        rig = tmp_path / "bench.toml"
        rig.write_text(f'transport = "mqtt"\nkey_file = "bench.key"\nstate_dir = "s"\n[mqtt]\n'
                       f'broker = "mqtt://{broker.host}:{broker.port}"\npassword_env = "BENCH_TWIN_PASSWORD"\n')
        assert main(["run", "--rig", str(rig), "--duration", "10s", "--quiet", "--out", str(tmp_path / "o")]) == 2
    finally:
        broker.close()
    err = capsys.readouterr().err.strip()
    errors = [line for line in err.splitlines() if line.startswith("twin: error:")]
    assert "Traceback" not in err and len(errors) == 1 and "refused login as 'twin'" in errors[0], err


def test_a_signing_clock_that_fails_closes_the_replay_table_it_opened(tmp_path, monkeypatch):
    import asyncio
    import firmware_bridge.signing as signing
    from hil_rigs.rigfile import RigFileError, open_rig_file
    closed = []
    real_close = signing.ReplayTable.close
    monkeypatch.setattr(signing.ReplayTable, "close", lambda self: (closed.append(self), real_close(self))[1])

    def broken_clock(path):
        raise OSError(13, "Permission denied")

    monkeypatch.setattr(signing, "SigningClock", broken_clock)
    path = write_rig(tmp_path, SERIAL_HEAD + f'state_dir = "state"\n[serial]\ndevice = "{tmp_path}/tty"\n')

    async def open_it():
        async with open_rig_file(path, load_scenario("node", seed=1)):
            pass

    with pytest.raises(RigFileError, match="state_dir"):
        asyncio.run(open_it())
    assert len(closed) == 1


@pytest.mark.parametrize("spoil", ["removed", "not utf-8"])
def test_a_password_file_that_cannot_be_read_is_a_rig_file_error(tmp_path, spoil):
    import asyncio
    from hil_rigs.rigfile import RigFileError, open_rig_file
    pw = tmp_path / "broker.password"
    pw.write_text("secret")
    rig = load_rig_file(write_rig(tmp_path, 'transport = "mqtt"\nkey_file = "bench.key"\nstate_dir = "state"\n'
                                            '[mqtt]\nbroker = "mqtt://127.0.0.1:1"\npassword_file = "broker.password"\n'))
    if spoil == "removed":  # gone between reading the rig file and opening the rig
        pw.unlink()
    else:
        pw.write_bytes(b"\xff\xfe")

    async def open_it():
        async with open_rig_file(rig, load_scenario("node", seed=1)):
            pass

    with pytest.raises(RigFileError) as info:
        asyncio.run(open_it())
    assert info.value.key == "mqtt.password_file" and "cannot read" in info.value.reason and str(pw) in str(info.value)
