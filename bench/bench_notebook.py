"""Per-cell cost of the extension in a real kernel, beside CodeCarbon, and `%load_ext` time.

Run: python bench/bench_notebook.py [--cells 200] [--loads 5]

CodeCarbon is the alternative a user has today; it is not a dependency of carbonbook.
Install it in the benchmark environment only (`pip install codecarbon`); without it
that row is skipped.

Figures, all in one kernel per variant, each cell `x = 1`:

- round trip: the client's wall time from execute request to idle, median over the cells
  (includes ZeroMQ messaging, the same for every variant);
- in-kernel: the kernel runs the same cells with `run_cell` in a loop, which triggers the
  same hooks without the messaging; the mean per cell.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from jupyter_client.manager import start_new_kernel

from carbonbook.notebook.kernelspec import this_python_kernelspec

CODECARBON_HOOKS = """
from codecarbon import OfflineEmissionsTracker
import logging
logging.getLogger("codecarbon").setLevel(logging.ERROR)
_trackers = []
def _cc_start(info):
    tracker = OfflineEmissionsTracker(country_iso_code="FRA", log_level="error",
                                      save_to_file=False)
    tracker.start()
    _trackers.append(tracker)
def _cc_stop(result):
    if _trackers:
        _trackers.pop().stop()
# The first tracker detects the hardware (seconds); do it before measuring.
_cc_start(None); _cc_stop(None)
get_ipython().events.register("pre_run_cell", _cc_start)
get_ipython().events.register("post_run_cell", _cc_stop)
"""

IN_KERNEL = """
import time as _t
_ip = get_ipython()
_start = _t.perf_counter()
for _ in range({cells}):
    _ip.run_cell("x = 1", store_history=True)
print("IN_KERNEL", (_t.perf_counter() - _start) / {cells})
"""

LOAD_TIME = """
import time as _t
_start = _t.perf_counter()
get_ipython().run_line_magic("load_ext", "carbonbook")
print("LOAD", _t.perf_counter() - _start)
"""


def run(client: Any, code: str) -> str:
    printed: list[str] = []

    def keep(message: dict[str, Any]) -> None:
        if message["msg_type"] == "stream":
            printed.append(message["content"]["text"])

    client.execute_interactive(code, output_hook=keep, timeout=600)
    return "".join(printed)


class Variant:
    """One kernel, set up once, measured in several interleaved blocks."""

    def __init__(self, name: str, env: dict[str, str], setup: str) -> None:
        self.name = name
        with this_python_kernelspec(quiet=True) as kernel_name:
            self.manager, self.client = start_new_kernel(
                kernel_name=kernel_name, env=env, startup_timeout=60
            )
        if setup:
            run(self.client, setup)
        for _ in range(20):
            run(self.client, "x = 1")
        self.round_trips: list[float] = []

    def block(self, cells: int) -> None:
        for _ in range(cells):
            start = time.perf_counter()
            run(self.client, "x = 1")
            self.round_trips.append(time.perf_counter() - start)

    def in_kernel(self, cells: int) -> float:
        printed = run(self.client, IN_KERNEL.format(cells=cells))
        return float(printed.split("IN_KERNEL")[1].split()[0])

    def close(self) -> None:
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=True)


def load_time(env: dict[str, str]) -> float:
    with this_python_kernelspec(quiet=True) as name:
        manager, client = start_new_kernel(kernel_name=name, env=env, startup_timeout=60)
    try:
        printed = run(client, LOAD_TIME)
        return float(printed.split("LOAD")[1].split()[0])
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=200)
    parser.add_argument("--loads", type=int, default=5)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as directory:
        env = dict(os.environ)
        env.update(
            {
                "CARBONBOOK_LEDGER": str(Path(directory) / "ledger.sqlite"),
                "CARBONBOOK_NVML": "off",
                "CARBONBOOK_ZONE": "FR",
                "CARBONBOOK_SHOW": "none",
            }
        )
        setups = [("plain kernel", ""), ("carbonbook (%load_ext carbonbook)", LOAD_TIME)]
        if importlib.util.find_spec("codecarbon") is not None:
            setups.append(("CodeCarbon start/stop per cell", CODECARBON_HOOKS))
        else:
            print("codecarbon is not installed here: `pip install codecarbon` to compare")
        variants = [Variant(name, env, setup) for name, setup in setups]
        try:
            # Interleaved blocks, so that a slow moment of the machine hits every variant.
            rounds = 8
            for _ in range(rounds):
                for variant in variants:
                    variant.block(max(1, args.cells // rounds))
            rows = [
                (v.name, statistics.median(v.round_trips), v.in_kernel(args.cells))
                for v in variants
            ]
        finally:
            for variant in variants:
                variant.close()
        loads = sorted(load_time(env) for _ in range(args.loads))

    base_trip, base_kernel = rows[0][1], rows[0][2]
    print(f"{args.cells} cells of `x = 1` per variant, Python {sys.version.split()[0]}")
    header = (
        f"{'variant':<34} {'round trip':>11} {'overhead':>9} {'in-kernel':>10} {'overhead':>9}"
    )
    print(header + "   (ms per cell)")
    for name, trip, kernel in rows:
        print(
            f"{name:<34} {trip * 1000:>11.3f} {(trip - base_trip) * 1000:>9.3f} "
            f"{kernel * 1000:>10.3f} {(kernel - base_kernel) * 1000:>9.3f}"
        )
    if len(rows) == 3:
        for column, label in ((1, "round trip"), (2, "in-kernel")):
            ours = rows[1][column] - rows[0][column]
            theirs = rows[2][column] - rows[0][column]
            print(f"CodeCarbon / carbonbook overhead, {label}: {theirs / max(ours, 1e-6):.1f}x")
    print(
        f"%load_ext carbonbook: median {statistics.median(loads) * 1000:.0f} ms, "
        f"max {loads[-1] * 1000:.0f} ms over {len(loads)} fresh kernels (goal < 150 ms)"
    )


if __name__ == "__main__":
    main()
