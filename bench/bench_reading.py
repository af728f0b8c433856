"""Cost of one reading: carbonbook's RAPL meter and sampler against re-opening every file.

Run: python bench/bench_reading.py [--readings N]

A fake powercap tree with the zones of a two-socket server (package, core and dram per
socket, plus the MMIO duplicate of package-0) stands in for /sys/class/powercap, so the
figures measure carbonbook's own work, not the kernel's (a real sysfs read of energy_uj
adds about a microsecond per zone, the same for both ways of reading).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from common import server_tree

from carbonbook.meters.base import Interval
from carbonbook.meters.rapl import open_rapl_meter, require_rapl
from carbonbook.session import build_sampler, detect


def per_call_us(function: Callable[[], object], count: int) -> float:
    for _ in range(min(200, count)):
        function()
    start = time.perf_counter_ns()
    for _ in range(count):
        function()
    return (time.perf_counter_ns() - start) / count / 1000.0


def reopen_every_time(paths: list[Path]) -> Callable[[], object]:
    def read() -> int:
        return sum(int(path.read_text()) for path in paths)

    return read


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readings", type=int, default=20000)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        tree = server_tree(root)
        meter = require_rapl(open_rapl_meter(root))
        paths = [zone.path / "energy_uj" for zone in meter.zones()]
        interval = Interval(0.0, 0.5, cpu_share=0.5)

        rapl_us = per_call_us(lambda: meter.read(interval), args.readings)
        naive_us = per_call_us(reopen_every_time(paths), args.readings)

        detection = detect({"CARBONBOOK_POWERCAP_ROOT": str(root), "CARBONBOOK_NVML": "off"})
        sampler = build_sampler(detection)
        sampler.snapshot()
        snapshot_us = per_call_us(sampler.snapshot, max(1000, args.readings // 10))
        sampler.close()
        del tree

    print(f"zones read: {len(paths)} (of 7 present; the MMIO duplicate is skipped)")
    print(f"{'reading':<52} {'us per reading':>15}")
    print(f"{'carbonbook RAPL meter (files kept open, pread)':<52} {rapl_us:>15.1f}")
    print(f"{'re-open and read every energy_uj file':<52} {naive_us:>15.1f}")
    print(f"{'ratio':<52} {naive_us / rapl_us:>14.1f}x")
    print(f"{'full on-demand snapshot (RAPL + process tree)':<52} {snapshot_us:>15.1f}")


if __name__ == "__main__":
    main()
