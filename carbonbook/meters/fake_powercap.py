"""A powercap tree in an ordinary directory, for tests and for machines without RAPL.

`FakePowercapTree` lays out zone directories the way the kernel does (`name`,
`energy_uj`, `max_energy_range_uj`, optional constraints) and moves their counters as a
real package would at a given power, wrapping at the range. Point
`CARBONBOOK_POWERCAP_ROOT` at its root and carbonbook reads it like the real tree.

Counters are written in place, zero-padded to a fixed width, so a reader that keeps the
file open always sees a whole number. `PowercapDriver` moves the counters from a
background thread against the wall clock; `FakePowercapTree.advance` moves them by hand
against a clock the test controls.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["FakePowercapTree", "FakeZone", "PowercapDriver"]

DEFAULT_RANGE_UJ = 262_143_328_850


@dataclass(slots=True)
class FakeZone:
    """One zone of a fake tree.

    Attributes:
        zone_id: directory name, such as `intel-rapl:0:1`.
        path: the zone directory.
        range_uj: the wrap range written to `max_energy_range_uj` (or assumed when absent).
        power_w: the power the counter advances at.
        energy_uj: the exact (unwrapped, fractional) energy so far, in microjoules.
    """

    zone_id: str
    path: Path
    range_uj: int
    power_w: float = 0.0
    energy_uj: float = 0.0

    @property
    def counter_uj(self) -> int:
        """The value the counter shows: the energy modulo the range."""
        return int(self.energy_uj) % self.range_uj


class FakePowercapTree:
    """Builds and drives a powercap tree under `root`.

    Args:
        root: an empty or missing directory; it is created.
        nested: also place each subzone inside its parent directory, as sysfs does
            under `/sys/devices/virtual/powercap`; the flat entries are always written.
    """

    def __init__(self, root: Path, *, nested: bool = False) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.nested = nested
        self.zones: dict[str, FakeZone] = {}
        self._lock = threading.Lock()

    def add_zone(
        self,
        zone_id: str,
        name: str,
        *,
        power_w: float = 0.0,
        start_uj: int = 0,
        range_uj: int | None = DEFAULT_RANGE_UJ,
        max_power_uw: int | None = None,
        raw_range: str | None = None,
    ) -> FakeZone:
        """Create a zone directory with its files.

        Args:
            zone_id: `intel-rapl:0`, `intel-rapl:0:2`, `intel-rapl-mmio:0` ...
            name: the `name` file's content (`package-0`, `dram`, `psys` ...).
            power_w: the power the counter advances at.
            start_uj: the counter's first value.
            range_uj: `max_energy_range_uj`; None leaves the file out (the reader then
                assumes the usual 32-bit range, which the fake also uses).
            max_power_uw: writes `constraint_0_max_power_uw` when given.
            raw_range: written verbatim as `max_energy_range_uj` (for garbage tests).
        """
        path = self.root / zone_id
        if self.nested and zone_id.count(":") > 1:
            parent = self.root / zone_id.rsplit(":", 1)[0]
            path = parent / zone_id
            link = self.root / zone_id
            path.mkdir(parents=True, exist_ok=True)
            if not link.exists():
                link.symlink_to(path, target_is_directory=True)
        path.mkdir(parents=True, exist_ok=True)
        (path / "name").write_text(name + "\n")
        if raw_range is not None:
            (path / "max_energy_range_uj").write_text(raw_range)
        elif range_uj is not None:
            (path / "max_energy_range_uj").write_text(f"{range_uj}\n")
        if max_power_uw is not None:
            (path / "constraint_0_max_power_uw").write_text(f"{max_power_uw}\n")
        zone = FakeZone(zone_id, path, range_uj or DEFAULT_RANGE_UJ, power_w, float(start_uj))
        self.zones[zone_id] = zone
        self._write(zone)
        return zone

    def set_power(self, zone_id: str, power_w: float) -> None:
        """Change the power a zone's counter advances at."""
        self.zones[zone_id].power_w = power_w

    def advance(self, seconds: float) -> None:
        """Move every counter forward by `seconds` at its power, wrapping as hardware does."""
        with self._lock:
            for zone in self.zones.values():
                zone.energy_uj += zone.power_w * seconds * 1e6
                self._write(zone)

    def write_raw(self, zone_id: str, text: str) -> None:
        """Overwrite a zone's `energy_uj` with arbitrary text (for garbage tests)."""
        (self.zones[zone_id].path / "energy_uj").write_text(text)

    def energy_j(self, zone_id: str) -> float:
        """The true energy the zone has consumed since it was created, in joules."""
        zone = self.zones[zone_id]
        return zone.energy_uj / 1e6

    def _write(self, zone: FakeZone) -> None:
        width = len(str(zone.range_uj))
        data = f"{zone.counter_uj:0{width}d}\n".encode()
        fd = os.open(zone.path / "energy_uj", os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            os.pwrite(fd, data, 0)
        finally:
            os.close(fd)


class PowercapDriver:
    """Advances a fake tree against a clock from a background thread.

    Args:
        tree: the tree to drive.
        step_s: how often the counters move (real RAPL updates about every millisecond).
        clock: monotonic seconds; the energy written is power times the clock's progress.
    """

    def __init__(
        self,
        tree: FakePowercapTree,
        *,
        step_s: float = 0.001,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.tree = tree
        self.step_s = step_s
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start moving the counters; calling it twice does nothing."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="fake-powercap", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop and join the thread; calling it twice does nothing."""
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join()
        self._thread = None

    def _run(self) -> None:
        last = self._clock()
        while not self._stop.wait(self.step_s):
            now = self._clock()
            self.tree.advance(now - last)
            last = now

    def __enter__(self) -> PowercapDriver:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
