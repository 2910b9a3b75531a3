"""Reference scenario, link side: the link between twin and board goes down mid-run and comes back.

On ``sim`` the board falls silent; on ``emulated-serial`` the serial line is really unplugged
(socat stopped and started again); on ``emulated-mqtt`` the broker is stopped and restarted.
"""
import pytest

pytestmark = pytest.mark.scenario("scenarios/nominal.toml")

OUTAGE_S = 6


def nominal(t):
    return t.mode == "NOMINAL"


@pytest.mark.rig_needs("lockstep", "link_faults:disconnect")
# Each step into the outage waits out the board's reply timeout; keep that short in scenario-time terms.
@pytest.mark.rig_options(step_timeout_s=0.25, retries=1)
async def test_link_outage_mid_run_is_counted_and_recovered(twin):
    await twin.run_until(nominal, within="5m")
    errors0, onset = twin.executive.board_errors, twin.executive.ticks
    twin.inject("disconnect", duration=f"{OUTAGE_S}s")
    await twin.run_for(f"{OUTAGE_S}s")
    lost = twin.executive.board_errors - errors0
    assert lost >= OUTAGE_S  # every step into the outage failed and was counted
    stats = getattr(twin.board, "link_stats", None)
    if stats is not None:  # a remote board: its transport itself lost the line (unplug, broker gone)
        assert stats["link_lost"] >= 1
    # The flight software saw the silence: the frames it got went stale.
    assert twin.telemetry["hk_invalid_channels"][onset:].max() > 0
    # The link returns: fresh frames again, every channel valid, board errors no longer growing.
    await twin.run_until(lambda t: t.invalid_channels == 0, within="2m")
    settled = twin.executive.board_errors
    s = await twin.run_for("30s")
    assert twin.executive.board_errors == settled, "board errors still growing after the link came back"
    fdir = twin.fsw.config.fdir
    if hasattr(fdir, "link_lost_safe_s") and OUTAGE_S > fdir.link_lost_safe_s:
        assert twin.events("link lost")
    else:
        assert not twin.events("link lost") and s.mode in ("NOMINAL", "DEGRADED")
    await twin.run_until(nominal, within="5m")
    twin.assert_telemetry_complete()  # one row per tick through the outage, at contiguous times
