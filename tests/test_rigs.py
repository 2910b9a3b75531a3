"""The same scenario and seed give the same telemetry on every rig; rigs leave nothing behind."""
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hil_rigs.rigs import RigError, open_rig
from twin.cli import main
from twin.scenarios import load_scenario

ROOT = Path(__file__).resolve().parents[1]


def emulator_processes() -> set[int]:
    out = subprocess.run(["pgrep", "-f", "hil_rigs.emulator|socat pty,raw|mosquitto -c .*twin-emulated"],
                         capture_output=True, text=True).stdout
    return {int(p) for p in out.split()}


@pytest.fixture(scope="module")
def digests(tmp_path_factory):
    """A 2 h run (it crosses an eclipse and a ground contact) on each built-in rig, from the command line."""
    out = {}
    for rig in ("sim", "emulated-serial", "emulated-mqtt"):
        d = tmp_path_factory.mktemp(rig)
        assert main(["run", "--rig", rig, "--duration", "2h", "--seed", "4", "--out", str(d), "--no-plots",
                     "--quiet"]) == 0
        out[rig] = json.loads((d / "summary.json").read_text())
    return out


def test_every_rig_gives_the_simulated_rigs_telemetry_digest(digests):
    sim = digests["sim"]
    assert sim["eclipse_seconds"] > 0 and sim["ground_contact_seconds"] > 0
    for rig in ("emulated-serial", "emulated-mqtt"):
        assert digests[rig]["rig"] == rig and digests[rig]["complete"]
        assert digests[rig]["telemetry_digest"] == sim["telemetry_digest"], rig
        assert digests[rig]["board_errors"] == 0


def test_no_emulator_socat_or_broker_is_left_behind(digests):
    assert emulator_processes() == set()


def test_ctrl_c_on_an_emulated_rig_stops_every_process(tmp_path):
    before = emulator_processes()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "twin.cli", "run", "--rig", "emulated-serial", "--duration", "1d",
                             "--out", str(tmp_path / "run"), "--no-plots", "--quiet"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (emulator_processes() - before):
            time.sleep(0.2)
        time.sleep(2.0)  # let it run a little
        assert emulator_processes() - before, "the rig never started its emulator"
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert code == 130
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["complete"] is False
    deadline = time.monotonic() + 10
    while emulator_processes() - before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert emulator_processes() - before == set()


def test_a_rig_that_cannot_come_up_says_why_in_one_line():
    scenario = load_scenario("node", duration="10s")

    async def go():
        async with open_rig("emulated-serial", "no-such-scenario", scenario):
            pass

    with pytest.raises(RigError) as err:
        asyncio.run(go())
    message = str(err.value)
    assert "emulator exited" in message and "unknown scenario" in message and "\n" not in message
    assert emulator_processes() == set()


def test_unknown_rig_is_a_one_line_error(capsys):
    assert main(["run", "--rig", "bench-42", "--duration", "1m", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "unknown rig 'bench-42'" in err and "emulated-serial" in err and len(err.splitlines()) == 1


def test_an_emulator_does_not_outlive_a_killed_rig(tmp_path):
    """Kill the twin outright (no cleanup runs): its emulator notices and exits by itself."""
    before = emulator_processes()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "twin.cli", "run", "--rig", "emulated-serial", "--duration", "1d",
                             "--out", str(tmp_path / "run"), "--no-plots", "--quiet"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (emulator_processes() - before):
            time.sleep(0.2)
        spawned = emulator_processes() - before
        assert spawned, "the rig never started its emulator"
        time.sleep(1.0)
    finally:
        proc.kill()
        proc.wait()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        left = subprocess.run(["pgrep", "-f", "hil_rigs.emulator"], capture_output=True, text=True).stdout.split()
        if not set(map(int, left)) & spawned:
            break
        time.sleep(0.2)
    assert not set(map(int, left)) & spawned, "the emulator outlived its rig"
    for pid in spawned:  # socat has no such watch: reap what the killed rig left (test hygiene)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
