"""The sampler's cost while a program runs: CPU overhead and memory held.

Run: python bench/bench_sampler.py [--seconds 30]

1. CPU overhead: the process sleeps for `--seconds`, once without a sampler and once
   with the sampler running at the default period (0.5 s) on a fake two-socket RAPL tree
   plus the process-tree probe. The difference in the process's CPU time, divided by the
   wall time, is the sampler's share of one core.
2. Memory held after a simulated 8-hour session: 57,600 periodic readings (8 h at 0.5 s)
   with a hand-driven clock, measured with tracemalloc.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
import tracemalloc
from pathlib import Path

from common import server_tree

from carbonbook.sampler import DEFAULT_PERIOD_S
from carbonbook.session import build_sampler, detect


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def idle_cpu_s(seconds: float) -> float:
    start = cpu_s()
    time.sleep(seconds)
    return cpu_s() - start


class HandClock:
    def __init__(self) -> None:
        self.now_s = 0.0

    def __call__(self) -> float:
        return self.now_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        tree = server_tree(root)
        env = {"CARBONBOOK_POWERCAP_ROOT": str(root), "CARBONBOOK_NVML": "off"}

        baseline_s = idle_cpu_s(args.seconds)
        sampler = build_sampler(detect(env))
        sampler.start()
        with_sampler_s = idle_cpu_s(args.seconds)
        sampler.stop()
        readings = len(sampler.history)
        sampler.close()

        overhead_pct = max(0.0, with_sampler_s - baseline_s) / args.seconds * 100

        clock = HandClock()
        long_sampler = build_sampler(detect(env), clock=clock)
        tracemalloc.start()
        long_sampler.sample()
        before, _ = tracemalloc.get_traced_memory()
        readings_8h = int(8 * 3600 / DEFAULT_PERIOD_S)
        for _ in range(readings_8h):
            clock.now_s += DEFAULT_PERIOD_S
            tree.advance(DEFAULT_PERIOD_S)
            long_sampler.sample()
        after, _ = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        long_sampler.close()

    print(f"{'':<44} {'CPU s':>8} {'% of one core':>14}")
    print(f"{'sleep ' + str(args.seconds) + ' s, no sampler':<44} {baseline_s:>8.4f}")
    label = f"sleep, sampler at {DEFAULT_PERIOD_S} s ({readings} readings)"
    print(f"{label:<44} {with_sampler_s:>8.4f}")
    print(f"{'sampler overhead (goal < 0.2%)':<44} {'':>8} {overhead_pct:>13.3f}%")
    held_mb = (after - before) / 1e6
    print(f"memory held after {readings_8h} readings (8 h): {held_mb:.2f} MB (goal < 5 MB)")


if __name__ == "__main__":
    main()
