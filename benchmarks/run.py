"""Run every benchmark and print each figure beside its baseline measured in the same run.

    python benchmarks/run.py            # full (about a minute)
    python benchmarks/run.py --quick    # a 2 h run instead of a day, for a smoke check
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_twin import run_benchmarks  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeat", type=int, default=3, help="repeats for medians (default 3)")
    p.add_argument("--quick", action="store_true", help="short runs only")
    args = p.parse_args()
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()},"
          f" load {os.getloadavg()[0]:.2f} (medians of {args.repeat})")
    rows = [("figure", "value", "baseline (same run)", "ratio", "target")]
    rows += run_benchmarks(repeat=args.repeat, quick=args.quick)
    from benchmarks.bench_codec import run_codec_benchmarks
    from benchmarks.bench_mqtt import run_mqtt_benchmarks
    from benchmarks.bench_serial import run_serial_benchmarks
    rows += run_codec_benchmarks(quick=args.quick)
    rows += run_serial_benchmarks(quick=args.quick)
    rows += run_mqtt_benchmarks(quick=args.quick)
    from benchmarks.bench_lockstep import run_lockstep_benchmarks
    rows += run_lockstep_benchmarks(quick=args.quick, repeat=args.repeat)
    from benchmarks.bench_freerun import run_freerun_benchmarks
    rows += run_freerun_benchmarks(repeat=args.repeat, quick=args.quick)
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    for k, r in enumerate(rows):
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
        if k == 0:
            print("  ".join("-" * w for w in widths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
