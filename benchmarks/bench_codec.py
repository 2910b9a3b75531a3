"""Codec ingest on one core, unsigned and signed, beside baselines measured in the same run.

The stream is lockstep traffic as a board sends it: per tick a step reply and
the three sensor-frame groups, with a heartbeat every tenth tick; it is fed in
4 KiB chunks, as a serial read delivers it. Baselines:

* pymavlink's own ``MAVLink.parse_buffer`` on the same stream (the unsigned
  one; for the signed one, with its signing key set, so it verifies too);
* what a 921,600-baud UART (8N1: 92,160 bytes/s) can carry at the stream's
  mean frame size: the issue asks for more than 10x that.

    python benchmarks/bench_codec.py [--repeat N] [--quick]
"""
from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from firmware_bridge.codec import MavlinkCodec
from firmware_bridge.dialect import load_dialect
from firmware_bridge.messages import frame_to_messages
from firmware_bridge.signing import ReplayTable, SigningClock, SigningPolicy
from twin.hal import CHANNELS, N_CHANNELS, SensorFrame

__all__ = ["run_codec_benchmarks"]

UNSIGNED_TARGET = 50_000
SIGNED_TARGET = 30_000
UART_BYTES_PER_S = 921_600 / 10
_KEY = bytes(range(32))
_CHUNK = 4096


def _messages(ticks: int) -> list:
    mod = load_dialect()
    msgs = []
    for k in range(ticks):
        t = k * 1_000_000_000
        values = [float(k % 3) if c.discrete else 20.0 + 0.01 * k + i for i, c in enumerate(CHANNELS)]
        msgs.append(mod.MAVLink_sc_step_reply_message(k, t))
        msgs += frame_to_messages(SensorFrame(t, values, [True] * N_CHANNELS, (t, t, t)))
        if k % 10 == 0:
            msgs.append(mod.MAVLink_heartbeat_message(18, 8, 0, 0, 4, 3))
    return msgs


def _policy(wall: float) -> SigningPolicy:
    return SigningPolicy(_KEY, ReplayTable(wall_clock=lambda: wall), SigningClock(wall_clock=lambda: wall))


def _rates(cases: dict, n_msgs: int, repeat: int) -> dict[str, float]:
    """Median messages per second of each case ``name: (make_feed, stream)``.

    The cases take turns within each repeat, so a machine shared with other
    jobs slows them alike and the ratios stay meaningful.
    """
    chunked = {name: [s[i:i + _CHUNK] for i in range(0, len(s), _CHUNK)] for name, (_, s) in cases.items()}
    rates: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeat):
        for name, (make_feed, _) in cases.items():
            feed = make_feed()
            t0 = time.perf_counter()
            got = sum(len(feed(c) or ()) for c in chunked[name])
            rates[name].append(n_msgs / (time.perf_counter() - t0))
            if got != n_msgs:
                raise AssertionError(f"{name}: decoded {got} of {n_msgs} messages")
    return {name: statistics.median(r) for name, r in rates.items()}


def run_codec_benchmarks(repeat: int = 5, quick: bool = False) -> list[tuple[str, str, str, str, str]]:
    """Rows of (figure, value, baseline, ratio, target) for the report."""
    mod = load_dialect()
    msgs = _messages(500 if quick else 5000)
    wall = time.time()
    sender = MavlinkCodec(src_system=1, src_component=191)
    plain = b"".join(sender.encode(m) for m in msgs)
    signer = MavlinkCodec(signing=_policy(wall), src_system=1, src_component=191)
    signed = b"".join(signer.encode(m) for m in msgs)
    n = len(msgs)

    def pymavlink_signed():
        mav = mod.MAVLink(None)
        mav.signing.secret_key = _KEY
        mav.signing.timestamp = int.from_bytes(signed[-12:-6], "little")
        return mav.parse_buffer

    r = _rates({"ours": (lambda: MavlinkCodec().feed, plain),
                "theirs": (lambda: mod.MAVLink(None).parse_buffer, plain),
                "ours_signed": (lambda: MavlinkCodec(signing=_policy(wall)).feed, signed),
                "theirs_signed": (pymavlink_signed, signed)}, n, repeat)
    ours, theirs, ours_signed, theirs_signed = r["ours"], r["theirs"], r["ours_signed"], r["theirs_signed"]
    uart, uart_signed = UART_BYTES_PER_S * n / len(plain), UART_BYTES_PER_S * n / len(signed)
    return [
        ("codec ingest, unsigned", f"{ours:,.0f} msg/s", f"pymavlink parse_buffer {theirs:,.0f} msg/s",
         f"{ours / theirs:.1f}x", f">= {UNSIGNED_TARGET:,} msg/s"),
        ("codec ingest, unsigned vs UART", f"{ours:,.0f} msg/s",
         f"921600-baud UART {uart:,.0f} msg/s ({len(plain) / n:.0f} B/frame)", f"{ours / uart:.1f}x", "> 10x"),
        ("codec ingest, signed", f"{ours_signed:,.0f} msg/s",
         f"pymavlink parse_buffer, signing on {theirs_signed:,.0f} msg/s", f"{ours_signed / theirs_signed:.1f}x",
         f">= {SIGNED_TARGET:,} msg/s"),
        ("codec ingest, signed vs UART", f"{ours_signed:,.0f} msg/s",
         f"921600-baud UART {uart_signed:,.0f} msg/s ({len(signed) / n:.0f} B/frame)",
         f"{ours_signed / uart_signed:.1f}x", "> 10x"),
    ]


if __name__ == "__main__":
    import argparse

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    for row in run_codec_benchmarks(args.repeat, args.quick):
        print(" | ".join(row))
