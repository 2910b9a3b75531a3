"""One run of a scenario on a rig: board + flight software + executive + telemetry outputs.

Used by ``twin run`` and by tests. Whatever happens (normal end, Ctrl-C, a
crash), the telemetry files are closed valid and ``summary.json`` is written,
marked ``complete: false`` unless the run reached its end.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from twin.clock import Clock, VirtualClock
from twin.executive import Executive
from twin.fsw import FlightSoftware
from twin.scenarios import Scenario
from twin.sim.simboard import SimBoard
from twin.telemetry.background import BackgroundSink
from twin.telemetry.csv_sink import CsvSink
from twin.telemetry.recorder import TelemetryRecorder
from twin.telemetry.summary import RunMeta, TelemetryLimits, build_summary, write_summary
from twin.telemetry.tlog import TlogWriter

__all__ = ["RunResult", "run_scenario", "make_board", "build_twin"]

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    summary: dict
    out_dir: Path | None
    executive: Executive
    board: object
    fsw: FlightSoftware
    recorder: TelemetryRecorder
    files: list[Path] = field(default_factory=list)


class _Fanout:
    """Hands every tick's record to several observers (the recorder, a live UDP stream, ...)."""

    def __init__(self, observers):
        self.observers = list(observers)

    def record(self, frame, cmd, hk) -> None:
        for obs in self.observers:
            obs.record(frame, cmd, hk)


def telemetry_limits(scenario: Scenario) -> TelemetryLimits:
    lim = scenario.limits
    return TelemetryLimits(tpu_max_c=lim.tpu_max_c, battery_min_discharge_c=lim.battery_min_c,
                           battery_max_c=lim.battery_max_c, battery_charge_min_c=lim.battery_charge_min_c,
                           avionics_min_c=lim.avionics_min_c, avionics_max_c=lim.avionics_max_c)


def make_board(rig: str, scenario: Scenario, seed: int):
    """The in-process board (``sim``); emulated rigs come from :func:`hil_rigs.rigs.open_rig`."""
    if rig == "sim":
        return SimBoard(scenario, seed)
    raise ValueError(f"rig {rig!r} is not in-process: open it with hil_rigs.rigs.open_rig")


def build_twin(scenario: Scenario, board, clock: Clock, *, sinks=(), observers=(),
               on_progress: Callable[[int], None] | None = None) -> tuple[FlightSoftware, TelemetryRecorder, Executive]:
    """The flight software, telemetry recorder and executive of one run on ``board`` (not started).

    Every tick's record goes to the recorder (which writes ``sinks``) and to
    each of ``observers`` (objects with ``record(frame, cmd, hk)``).
    """
    fsw = FlightSoftware(scenario.fsw_config())
    recorder = TelemetryRecorder(list(sinks))
    taps = _Fanout([recorder, *observers]) if observers else recorder
    executive = Executive(board, fsw, clock, taps, period_ns=scenario.period_ns, on_progress=on_progress)
    return fsw, recorder, executive


async def run_scenario(scenario: Scenario, *, rig: str = "sim", out_dir: Path | None = None,
                       clock: Clock | None = None, plots: bool = True,
                       on_progress: Callable[[int], None] | None = None,
                       stop: asyncio.Event | None = None, board=None, observers=()) -> RunResult:
    """Run ``scenario`` (its seed, epoch and duration) and write its outputs to ``out_dir`` (None: keep in memory)."""
    clock = clock or VirtualClock()
    board = board or make_board(rig, scenario, scenario.run.seed)
    sinks = []
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        # File writers run on their own threads: no blocking I/O on the control loop.
        sinks = [BackgroundSink(TlogWriter(out_dir / "telemetry.tlog", scenario.epoch_unix_s)),
                 BackgroundSink(CsvSink(out_dir / "telemetry.csv", scenario.epoch_unix_s))]
    fsw, recorder, executive = build_twin(scenario, board, clock, sinks=sinks, observers=observers,
                                          on_progress=on_progress)
    complete = False
    wall0 = time.perf_counter()
    try:
        async with board:
            await executive.run(scenario.duration_ns, stop=stop)
        complete = stop is None or not stop.is_set()
    finally:
        wall = time.perf_counter() - wall0
        recorder.close()
        for obs in observers:
            obs.close()
        rows = recorder.rows()
        sim_s = executive.ticks * scenario.period_ns / 1e9
        meta = RunMeta(
            scenario=scenario.name, rig=board.info.rig, seed=scenario.run.seed,
            epoch_unix_s=scenario.epoch_unix_s, limits=telemetry_limits(scenario), wall_seconds=wall,
            realtime_factor=sim_s / wall if wall > 0 else 0.0, loop_overruns=executive.loop_overruns,
            telemetry_digest=recorder.digest, complete=complete, utilization=scenario.tpu.utilization,
            extra={"board": {"transport": board.info.transport, "firmware_id": board.info.firmware_id,
                             "lockstep": board.info.lockstep},
                   "board_errors": executive.board_errors,
                   "link_stats": dict(getattr(board, "link_stats", {})),
                   "task_stats": {s.name: {"calls": s.calls, "timed": s.timed, "mean_us": round(s.mean_us, 2),
                                           "max_us": round(s.max_ns / 1e3, 1), "faults": s.faults,
                                           "disabled": s.disabled} for s in executive.stats},
                   "fdir_log": [list(e) for e in getattr(fsw, "event_log", [])][:200]},
        )
        summary = build_summary(rows, meta)
        files: list[Path] = []
        if out_dir is not None:
            write_summary(out_dir / "summary.json", summary)
            files = [out_dir / "summary.json", out_dir / "telemetry.tlog", out_dir / "telemetry.csv"]
            if plots and len(rows):
                from twin.telemetry.plots import write_plots
                try:
                    files += write_plots(rows, out_dir, scenario.epoch_unix_s, limits=telemetry_limits(scenario))
                except Exception:  # plots are a convenience; never lose the run over them
                    log.exception("plots could not be written")
    return RunResult(summary, out_dir, executive, board, fsw, recorder, files)
