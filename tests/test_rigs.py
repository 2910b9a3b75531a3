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


def children_of(pid: int) -> dict[int, str]:
    """pid -> command line of the live children of ``pid`` (from /proc)."""
    out = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            out[int(entry.name)] = cmd
    return out


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def rig_processes(parent: int | None = None) -> dict[int, str]:
    """The live emulator, socat and mosquitto children of ``parent`` (default: this test process).

    By parentage, not by name: other test sessions on the machine run rigs too.
    """
    kids = children_of(os.getpid() if parent is None else parent)
    return {p: c for p, c in kids.items() if any(k in c for k in ("hil_rigs.emulator", "socat", "mosquitto"))}


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
    assert rig_processes() == {}


def test_ctrl_c_on_an_emulated_rig_stops_every_process(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "twin.cli", "run", "--rig", "emulated-serial", "--duration", "1d",
                             "--out", str(tmp_path / "run"), "--no-plots", "--quiet"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    kids: dict[int, str] = {}
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(kids) < 2:
            kids = rig_processes(proc.pid)
            time.sleep(0.2)
        time.sleep(2.0)  # let it run a little
        assert any("hil_rigs.emulator" in c for c in kids.values()), "the rig never started its emulator"
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert code == 130
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["complete"] is False
    assert not [kids[p] for p in kids if alive(p)]
    emulator = next(c for c in kids.values() if "hil_rigs.emulator" in c).split()
    work = Path(emulator[emulator.index("--key") + 1]).parent
    assert not work.exists(), "the rig's own cleanup did not run"


def test_a_rig_that_cannot_come_up_says_why_in_one_line():
    scenario = load_scenario("node", duration="10s")

    async def go():
        async with open_rig("emulated-serial", "no-such-scenario", scenario):
            pass

    with pytest.raises(RigError) as err:
        asyncio.run(go())
    message = str(err.value)
    assert "emulator exited" in message and "unknown scenario" in message and "\n" not in message
    assert rig_processes() == {}


def test_unknown_rig_is_a_one_line_error(capsys):
    assert main(["run", "--rig", "bench-42", "--duration", "1m", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "unknown rig 'bench-42'" in err and "emulated-serial" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("rig,helper", [("emulated-serial", "socat"), ("emulated-mqtt", "mosquitto")])
def test_nothing_outlives_a_twin_killed_with_sigkill(tmp_path, rig, helper):
    """SIGKILL runs no cleanup at all: the rig's processes must go by themselves, checked by pid."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    csv = tmp_path / "run" / "telemetry.csv"
    proc = subprocess.Popen([sys.executable, "-m", "twin.cli", "run", "--rig", rig, "--duration", "1d",
                             "--out", str(tmp_path / "run"), "--no-plots", "--quiet"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    kids: dict[int, str] = {}
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            kids = children_of(proc.pid)
            if csv.exists() and csv.stat().st_size > 0 and len(kids) >= 2:
                break
            time.sleep(0.2)
        assert any("hil_rigs.emulator" in c for c in kids.values()), f"no emulator among {kids}"
        assert any(helper in c for c in kids.values()), f"no {helper} among {kids}"
    finally:
        proc.kill()
        proc.wait()
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(alive(p) for p in kids):
            time.sleep(0.1)
        assert not [kids[p] for p in kids if alive(p)], "outlived the twin"
    finally:
        for pid in kids:  # hygiene if the assertion failed
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


# -- TwinSession: leaving it always leaves the board --------------------------------------------------

class _CountingBoard:
    """A SimBoard that counts how often it was entered and left."""

    def __init__(self, scenario):
        from twin.sim.simboard import SimBoard
        self.inner = SimBoard(scenario, scenario.run.seed)
        self.info, self.faults, self.link_faults = self.inner.info, self.inner.faults, None
        self.entered = self.exited = 0

    async def __aenter__(self):
        self.entered += 1
        return await self.inner.__aenter__()

    async def __aexit__(self, *exc):
        self.exited += 1
        await self.inner.__aexit__(*exc)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def _session():
    from hil_rigs.session import TwinSession
    scenario = load_scenario("node", seed=1)
    board = _CountingBoard(scenario)
    return TwinSession(board, scenario, rig="sim"), board


@pytest.mark.parametrize("part", ["recorder", "clock"])
def test_session_exit_leaves_the_board_even_when_closing_a_part_raises(part):
    session, board = _session()

    async def run():
        async with session:
            await session.run_for("3s")
            getattr(session, part).close = _raise

    with pytest.raises(OSError, match="disk gone"):
        asyncio.run(run())
    assert (board.entered, board.exited) == (1, 1)


def _raise(*_):
    raise OSError("disk gone")


def test_session_enter_leaves_the_board_when_the_start_raises():
    session, board = _session()
    session.executive.start = _raise
    with pytest.raises(OSError, match="disk gone"):
        asyncio.run(session.__aenter__())
    assert (board.entered, board.exited) == (1, 1)


def test_session_exit_undoes_the_executives_gc_freeze():
    import gc
    session, _ = _session()

    async def run():
        async with session:
            assert gc.get_freeze_count() > 0  # the executive froze what was built before the run
            await session.run_for("2s")

    asyncio.run(run())
    assert gc.get_freeze_count() == 0


def test_rig_processes_refuse_to_start_once_stopped():
    from hil_rigs.rigs import _Processes
    procs = _Processes()
    first = procs.start(["sleep", "30"])
    procs.stop_all()
    assert first.poll() is not None
    # A rig's start-up thread still running after Ctrl-C must not start an emulator nothing would stop.
    with pytest.raises(RigError, match="stopped"):
        procs.start(["sleep", "30"])
    assert all(p.poll() is not None for p in procs.procs)


@pytest.mark.parametrize("error", ["LinkLost", "BridgeTimeout"])
def test_a_lost_link_while_sending_a_fault_injection_is_a_link_error_not_a_capability_error(error):
    import firmware_bridge.errors as errors
    from hil_rigs.session import RigCapabilityError
    session, board = _session()
    board.capabilities = frozenset({"lockstep", "fault_injection"})
    board.faults = None  # as on an emulated board: the injection goes out as a message

    async def send_message(msg):
        raise getattr(errors, error)("the line went away")

    board.send_message = send_message
    session.capabilities = frozenset(board.capabilities)

    async def run():
        async with session:
            session.inject("nan", "t_battery_c")
            await session.run_for("1s")

    with pytest.raises(errors.BridgeError) as info:
        asyncio.run(run())
    assert not isinstance(info.value, RigCapabilityError) and type(info.value).__name__ == error


# -- one link-fault window and one "what this rig can inject" message for every rig --------------------

def test_a_link_fault_is_active_from_its_onset_up_to_but_not_at_its_end():
    from twin.sim.faults import FaultSpec
    spec = FaultSpec(at="10s", kind="disconnect", duration="5s")
    assert [spec.active_at(t) for t in (9.999, 10.0, 14.999, 15.0)] == [False, True, True, False]
    forever = FaultSpec(at="0s", kind="drop", value=0.5)
    assert forever.active_at(0.0) and forever.active_at(1e9)


def test_every_rig_refuses_a_link_fault_it_cannot_inject_with_the_same_words():
    from hil_rigs.session import RigCapabilityError
    from hil_rigs.rigs import add_scenario_link_faults
    from twin.sim.faults import FaultSpec, SimLinkFaults, unsupported_link_fault
    spec = FaultSpec(at="1s", kind="corrupt", value=0.1)
    assert unsupported_link_fault("corrupt", {"disconnect"}, "rig x") == \
        "rig x cannot inject link fault 'corrupt' (it can: disconnect)"
    assert unsupported_link_fault("corrupt", None, "rig x").endswith("(it can: none)")
    assert unsupported_link_fault("disconnect", {"disconnect"}, "rig x") is None
    with pytest.raises(ValueError, match=r"the simulated rig cannot inject link fault 'corrupt' \(it can: disconnect\)"):
        SimLinkFaults().add(spec)
    scenario = _with_faults(load_scenario("node", seed=1), spec)
    with pytest.raises(RigError, match=r"rig sim cannot inject link fault 'corrupt' \(it can: disconnect\)"):
        add_scenario_link_faults(SimLinkFaults(), scenario, "sim")
    session, _ = _session()
    session.board.link_faults = SimLinkFaults()
    with pytest.raises(RigCapabilityError, match=r"rig sim cannot inject link fault 'corrupt' \(it can: disconnect\)"):
        session.inject("corrupt", value=0.1)


def _with_faults(scenario, *specs):
    import dataclasses
    return dataclasses.replace(scenario, faults=(*scenario.faults, *specs))
