"""pytest plugin: one test suite on every rig (registered as the ``pytest11`` entry point ``hil_rigs.pytest_plugin``).

Options (group "hil rigs"): ``--rig`` (``sim``, ``emulated-serial``,
``emulated-mqtt`` or a rig file; default ``sim``), ``--scenario`` (default
``node``; a test's ``@pytest.mark.scenario(...)`` wins), ``--seed`` (default 1).

Fixtures, each function-scoped, chained rig -> board -> twin:

    rig_name       the --rig value
    seed           the --seed value
    scenario_ref   the scenario to load: the test's scenario marker (a built-in name, or a
                   .toml path relative to the test file) or --scenario
    scenario       the loaded :class:`~twin.scenarios.Scenario` (with the seed)
    board          the rig's board from :func:`hil_rigs.rigs.open_rig`, not entered; the rig's
                   processes live as long as the test
    twin           a started :class:`~hil_rigs.session.TwinSession` on that board

Tests that use ``board`` or ``twin`` are ``async def``: the plugin runs them on
the same event loop as those fixtures (no pytest-asyncio needed).

Markers:

    @pytest.mark.rig_needs("fault_injection", "lockstep", "link_faults", "link_faults:disconnect")
        skip, with the reason, a test using ``board`` or ``twin`` on a rig that cannot serve it
        (an unknown name is an error)
    @pytest.mark.scenario("scenarios/eclipse.toml")
        the scenario this test runs (instead of --scenario)
    @pytest.mark.rig_options(step_timeout_s=0.5, retries=1)
        keyword arguments for ``open_rig`` (a remote board's lockstep timeout and retries)

Rig facts (``rig``, ``transport``, ``firmware_id``, ``seed``, ``scenario``) are
recorded on every rig test as JUnit XML properties, and ``rig`` and ``seed``
for the suite.
"""
from __future__ import annotations

import asyncio
import inspect
from pathlib import Path

import pytest

from hil_rigs.session import CAPABILITIES, TwinSession, board_capabilities

_RUNNER = "_hil_event_loop"


def pytest_addoption(parser) -> None:
    group = parser.getgroup("hil rigs", "running the suite on a rig (hil_rigs)")
    group.addoption("--rig", default="sim", metavar="RIG",
                    help="sim, emulated-serial, emulated-mqtt or a rig file (.toml); default sim")
    group.addoption("--scenario", default="node", metavar="SCENARIO",
                    help="scenario for rig tests without a scenario marker: a built-in name or a .toml file "
                         "(default node)")
    group.addoption("--seed", type=int, default=1, metavar="N", help="random seed of the rig tests (default 1)")


def pytest_configure(config) -> None:
    config.addinivalue_line("markers", "rig_needs(*capabilities): skip on a rig that lacks one of them "
                                       f"({', '.join(CAPABILITIES)}, link_faults:<kind>)")
    config.addinivalue_line("markers", "scenario(ref): the scenario a rig test runs (built-in name or .toml "
                                       "relative to the test file)")
    config.addinivalue_line("markers", "rig_options(**kwargs): keyword arguments for hil_rigs.rigs.open_rig")


def _needs(item) -> list[str]:
    needs = [n for m in item.iter_markers("rig_needs") for n in m.args]
    for n in needs:
        base = n.split(":", 1)[0] if isinstance(n, str) else None
        if base not in CAPABILITIES or (":" in n and base != "link_faults"):
            raise pytest.UsageError(f"{item.nodeid}: unknown rig_needs capability {n!r} "
                                    f"(known: {', '.join(CAPABILITIES)}, link_faults:<kind>)")
    return needs


def pytest_collection_modifyitems(config, items) -> None:
    for item in items:
        _needs(item)  # a misspelt capability fails the run at once, never skips silently


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem):
    """Run ``async def`` rig tests on the loop their ``board`` / ``twin`` fixtures live on."""
    if not inspect.iscoroutinefunction(pyfuncitem.obj) or _RUNNER not in pyfuncitem.fixturenames:
        return None
    runner = pyfuncitem.funcargs[_RUNNER]
    kwargs = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
    runner.run(pyfuncitem.obj(**kwargs))
    return True


@pytest.fixture(scope="session", autouse=True)
def _hil_suite_facts(request, record_testsuite_property):
    """The suite's rig and seed as JUnit XML suite properties (a no-op without --junitxml)."""
    record_testsuite_property("rig", request.config.getoption("--rig"))
    record_testsuite_property("seed", str(request.config.getoption("--seed")))


@pytest.fixture
def _hil_event_loop():
    """One event loop per rig test: the rig's processes, the board's tasks and the test all run on it."""
    with asyncio.Runner() as runner:
        yield runner


@pytest.fixture
def rig_name(request) -> str:
    """The rig the suite runs on (--rig)."""
    return request.config.getoption("--rig")


@pytest.fixture
def seed(request) -> int:
    """The random seed (--seed)."""
    return request.config.getoption("--seed")


@pytest.fixture
def scenario_ref(request) -> str:
    """The test's scenario marker, else --scenario; a file path made absolute (the emulator loads it too)."""
    marker = request.node.get_closest_marker("scenario")
    ref = marker.args[0] if marker is not None else request.config.getoption("--scenario")
    if ref.endswith(".toml") or "/" in ref:
        path = Path(ref)
        if not path.is_absolute():
            here = Path(request.node.path).parent / path if marker is not None else path
            path = here if here.exists() else Path.cwd() / path
        ref = str(path.resolve())
    return ref


@pytest.fixture
def scenario(scenario_ref, seed):
    """The loaded scenario, with the suite's seed."""
    from twin.scenarios import ScenarioError, load_scenario
    try:
        return load_scenario(scenario_ref, seed=seed)
    except ScenarioError as exc:
        pytest.fail(f"scenario {scenario_ref}: {exc}", pytrace=False)


@pytest.fixture
def board(request, rig_name, scenario_ref, scenario, _hil_event_loop):
    """The rig's board for this test (from ``open_rig``, not entered); skips if the rig lacks a ``rig_needs``."""
    from hil_rigs.rigs import RigError, open_rig
    marker = request.node.get_closest_marker("rig_options")
    options = dict(marker.kwargs) if marker is not None else {}
    rig = open_rig(rig_name, scenario_ref, scenario, **options)
    try:
        b = _hil_event_loop.run(rig.__aenter__())
    except RigError as exc:
        pytest.fail(f"rig {rig_name} did not come up: {exc}", pytrace=False)
    try:
        _record_facts(request.node, b, rig_name, scenario, scenario_ref)
        caps = board_capabilities(b)
        missing = [n for n in _needs(request.node) if n not in caps]
        if missing:
            pytest.skip(f"rig {rig_name} cannot serve this test: it lacks {', '.join(missing)} "
                        f"(it has: {', '.join(sorted(caps)) or 'nothing'})")
        yield b
    finally:
        _hil_event_loop.run(rig.__aexit__(None, None, None))


def _record_facts(node, board, rig_name, scenario, scenario_ref) -> None:
    info = board.info
    facts = {"rig": rig_name, "transport": info.transport, "firmware_id": info.firmware_id,
             "seed": str(scenario.run.seed), "scenario": scenario.name, "scenario_ref": scenario_ref}
    known = {name for name, _ in node.user_properties}
    node.user_properties.extend((k, v) for k, v in facts.items() if k not in known)


@pytest.fixture
def twin(request, board, scenario, rig_name, _hil_event_loop):
    """A started :class:`~hil_rigs.session.TwinSession` on the test's board (left, with the board, after it)."""
    session = TwinSession(board, scenario, rig=rig_name)
    _hil_event_loop.run(session.__aenter__())
    try:
        yield session
    finally:
        _hil_event_loop.run(session.__aexit__(None, None, None))
        # A remote board learns its firmware id from the board's status messages during the run.
        props = request.node.user_properties
        for i, (name, _) in enumerate(props):
            if name == "firmware_id":
                props[i] = (name, board.info.firmware_id)
