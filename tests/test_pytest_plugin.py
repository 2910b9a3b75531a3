"""The pytest plugin (hil_rigs.pytest_plugin), tested with pytester: options, fixtures, skips, JUnit facts.

Each inner run is a subprocess (as a user runs pytest); one run serves several checks, since a
run costs seconds of imports.
"""
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[1]

SUITE = """
import pytest
from hil_rigs.session import RigCapabilityError


def test_facts(rig_name, seed, scenario_ref, scenario):
    print("FACTS", rig_name, seed, scenario_ref, scenario.name, scenario.run.seed)


@pytest.mark.scenario("short.toml")
async def test_nominal(twin):
    s = await twin.run_until(lambda t: t.mode == "NOMINAL", within="5m")
    assert s.t_s == 20
    twin.assert_telemetry_complete()
    assert len(twin.telemetry) == 21


async def test_never(twin):
    await twin.run_until(lambda t: t.mode == "SAFE" and t.t_battery_c > 90, within="90s")


@pytest.mark.rig_needs("free_running")
async def test_needs_wall_clock(twin):
    pass


@pytest.mark.rig_needs("link_faults:corrupt")
async def test_needs_corruption(twin):
    pass


@pytest.mark.rig_needs("lockstep", "fault_injection")
async def test_served(twin):
    twin.inject("nan", "t_battery_c")
    s = await twin.run_for("1s")
    assert s.t_battery_c != s.t_battery_c


async def test_bad_injections(twin):
    with pytest.raises(RigCapabilityError, match="cannot inject link fault 'corrupt'"):
        twin.inject("corrupt", value=0.1)
    with pytest.raises(ValueError, match="unknown channel"):
        twin.inject("nan", "t_nowhere_c")
    await twin.run_for("3s")
    with pytest.raises(ValueError, match="past"):
        twin.inject("nan", "t_battery_c", at="1s")
"""


@pytest.fixture
def run(pytester, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    monkeypatch.chdir(pytester.path)
    pytester.makefile(".toml", short='extends = "node"\n[fsw.fdir]\nsafe_exit_dwell_s = 20.0\n')
    return lambda *args: pytester.runpytest_subprocess("-p", "hil_rigs.pytest_plugin", "-p", "no:cacheprovider", *args)


def junit(path: Path) -> tuple[dict, dict]:
    root = ET.parse(path).getroot()
    suite = {p.get("name"): p.get("value") for s in root.iter("testsuite") for p in s.findall("properties/property")}
    cases = {c.get("name"): {p.get("name"): p.get("value") for p in c.findall("properties/property")}
             for c in root.iter("testcase")}
    return suite, cases


def test_the_plugin_is_declared_as_a_pytest11_entry_point():
    import tomllib
    eps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]["pytest11"]
    assert eps == {"hil_rigs.pytest_plugin": "hil_rigs.pytest_plugin"}


def test_a_suite_on_the_default_rig(pytester, run):
    pytester.makepyfile(test_suite=SUITE)
    result = run("-rsP", "--junitxml=out.xml")
    result.assert_outcomes(passed=4, failed=1, skipped=2)
    # Options' defaults reach the fixtures.
    result.stdout.fnmatch_lines(["*FACTS sim 1 node node 1"])
    # A failing run_until names the condition, the budget and the last state.
    result.stdout.fnmatch_lines([
        ("*AssertionError: condition not met within 90s of scenario time (t=0 .. 89 s) on rig sim: "
         "lambda t: t.mode == \"SAFE\" and t.t_battery_c > 90*"),
        "*last state: t=89 s, mode=SAFE, *t_battery_c=*",
    ])
    # Tests the rig cannot serve are skipped with the reason.
    result.stdout.fnmatch_lines([
        "*SKIPPED*test_suite.py:*rig sim cannot serve this test: it lacks free_running (it has: *lockstep*)*",
        "*SKIPPED*test_suite.py:*rig sim cannot serve this test: it lacks link_faults:corrupt*",
    ])
    # Rig facts in the JUnit XML: the suite's rig and seed, every rig test's facts.
    suite, cases = junit(pytester.path / "out.xml")
    assert suite == {"rig": "sim", "seed": "1"}
    props = cases["test_nominal"]
    assert props["rig"] == "sim" and props["transport"] == "in-process" and props["seed"] == "1"
    assert props["firmware_id"].startswith("simboard-") and props["scenario"] == "short"
    assert props["scenario_ref"] == str(pytester.path / "short.toml")
    assert "rig" not in cases["test_facts"]  # no board, no rig facts


def test_options_reach_the_fixtures_and_the_junit_xml(pytester, run):
    pytester.makepyfile(test_suite=SUITE)
    result = run("-rP", "--seed", "7", "--scenario", "node-cold", "--junitxml=out.xml", "-k", "facts or served")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*FACTS sim 7 node-cold node-cold 7"])
    suite, cases = junit(pytester.path / "out.xml")
    assert suite == {"rig": "sim", "seed": "7"}
    assert cases["test_served"]["seed"] == "7" and cases["test_served"]["scenario"] == "node-cold"


def test_help_lists_the_options_in_one_group(run):
    run("--help").stdout.fnmatch_lines(["*running the suite on a rig*", "*--rig=RIG*", "*--scenario=SCENARIO*",
                                        "*--seed=N*"])


def test_a_misspelt_capability_is_an_error_not_a_skip(pytester, run):
    pytester.makepyfile("""
        import pytest

        @pytest.mark.rig_needs("fault_injecton")
        async def test_typo(twin):
            pass
    """)
    result = run()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*unknown rig_needs capability 'fault_injecton'*"])


def test_an_unknown_rig_fails_the_test_in_one_line(pytester, run):
    pytester.makepyfile(test_suite=SUITE)
    result = run("--rig", "bench-42", "-k", "served")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*rig bench-42 did not come up: unknown rig 'bench-42'*"])


def test_the_reference_suite_without_the_plugin_is_a_usage_error_not_a_pass():
    import subprocess
    import sys
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:hil_rigs.pytest_plugin",
                           "-p", "no:cacheprovider", "--co", str(ROOT / "tests" / "hil")],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR, proc.stdout + proc.stderr
    assert "pip install -e ." in proc.stderr and "-p hil_rigs.pytest_plugin" in proc.stderr
