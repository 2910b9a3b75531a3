"""`twin run` and `twin scenarios` as a user meets them: outputs, bad input, Ctrl-C."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from twin.cli import main

REQUIRED_SUMMARY_KEYS = {
    "scenario", "rig", "seed", "epoch", "sim_seconds", "wall_seconds", "realtime_factor", "eclipse_fraction",
    "eclipse_seconds", "harvested_energy_kwh", "consumed_energy_kwh", "min_battery_soc", "min_battery_temp_c",
    "max_battery_temp_c", "max_tpu_temp_c", "compute_delivered_tpu_hours", "ground_contact_seconds",
    "downlinked_bytes", "dropped_bytes", "limit_violations", "mode_transitions", "loop_overruns",
    "telemetry_digest", "complete",
}


def test_scenarios_lists_the_builtins(capsys):
    assert main(["scenarios"]) == 0
    out = capsys.readouterr().out
    assert "node " in out and "prototype " in out and "eclipse" in out


def test_run_writes_summary_telemetry_and_plots(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["run", "--duration", "20m", "--seed", "3", "--out", str(out), "--quiet"])
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert REQUIRED_SUMMARY_KEYS <= set(summary)
    assert summary["complete"] is True and summary["scenario"] == "node" and summary["seed"] == 3
    assert summary["epoch"] == "2027-06-21T00:00:00Z" and summary["sim_seconds"] == 1200
    assert len(summary["telemetry_digest"]) == 64
    for name in ("telemetry.tlog", "telemetry.csv", "temperatures.png", "power.png", "compute.png", "links.png"):
        assert (out / name).stat().st_size > 0, name
    assert len((out / "telemetry.csv").read_text().splitlines()) == 1201
    printed = capsys.readouterr().out
    assert "node" in printed and summary["telemetry_digest"] in printed


def test_epoch_override_changes_the_run(tmp_path):
    out = tmp_path / "run"
    assert main(["run", "--duration", "5m", "--epoch", "2027-12-21T00:00:00Z", "--out", str(out),
                 "--quiet", "--no-plots"]) == 0
    assert json.loads((out / "summary.json").read_text())["epoch"] == "2027-12-21T00:00:00Z"


@pytest.mark.parametrize("args,needle", [
    (["--scenario", "no-such"], "unknown scenario"),
    (["--duration=-5m"], "--duration"),
    (["--duration", "soon"], "not a duration"),
    (["--epoch", "tomorrow"], "--epoch"),
    (["--pace", "0"], "--pace"),
])
def test_bad_arguments_give_one_line_and_exit_2(tmp_path, capsys, args, needle):
    assert main(["run", "--out", str(tmp_path / "o"), "--quiet", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_bad_scenario_file_names_file_and_key(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text('extends = "node"\n[battery]\ncapacity_wh = -1\n')
    assert main(["run", "--scenario", str(bad), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert str(bad) in err and "battery.capacity_wh" in err and len(err.splitlines()) == 1
    broken = tmp_path / "broken.toml"
    broken.write_text("[battery\n")
    assert main(["run", "--scenario", str(broken), "--quiet"]) == 2
    assert "not valid TOML" in capsys.readouterr().err


def test_unwritable_output_folder(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert main(["run", "--duration", "1m", "--out", str(blocker / "sub"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "output folder" in err and len(err.splitlines()) == 1


def test_ctrl_c_leaves_readable_truncated_telemetry_and_incomplete_summary(tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen([sys.executable, "-m", "twin.cli", "run", "--duration", "30d", "--out", str(out),
                             "--no-plots", "--quiet"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        csv = out / "telemetry.csv"
        while time.monotonic() < deadline and (not csv.exists() or csv.stat().st_size < 100_000):
            time.sleep(0.2)
        assert csv.exists(), proc.stderr.read1().decode() if proc.poll() is not None else "no telemetry yet"
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert code == 130
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] is False and 0 < summary["sim_seconds"] < 30 * 86400
    from pymavlink import mavutil
    from firmware_bridge.dialect import register_with_mavutil
    dialect = register_with_mavutil()
    log = mavutil.mavlink_connection(str(out / "telemetry.tlog"), dialect=dialect)
    frames = 0
    while log.recv_match(type="SC_THERMAL_FRAME") is not None:
        frames += 1
    assert frames == summary["rows"]


def test_keygen_creates_a_private_32_byte_key_and_refuses_to_overwrite(tmp_path, capsys):
    key = tmp_path / "rig.key"
    assert main(["keygen", str(key)]) == 0
    assert key.stat().st_size == 32 and key.stat().st_mode & 0o077 == 0
    first = key.read_bytes()
    assert main(["keygen", str(key)]) == 2
    assert "exists" in capsys.readouterr().err
    assert key.read_bytes() == first
    assert main(["keygen", str(key), "--force"]) == 0 and key.read_bytes() != first
