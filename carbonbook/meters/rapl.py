"""Intel and AMD RAPL energy counters, read through the Linux powercap sysfs tree.

The tree lives at `CARBONBOOK_POWERCAP_ROOT` (default `/sys/class/powercap`). Each zone
directory (`intel-rapl:0`, `intel-rapl:0:1`, `intel-rapl-mmio:0`, ids in hexadecimal)
holds a `name` (`package-0`, `core`, `uncore`, `dram`, `psys`), a cumulative counter
`energy_uj` and its wrap range `max_energy_range_uj`.

How the zones become domains:

- `cpu` is the sum of the package zones (one per socket, or one per die); `dram` the sum
  of the dram zones; `core` and `uncore` are inside their package and are reported as
  detail, never added to the host figure.
- The host figure is `psys` where the platform has it (it covers the packages and dram,
  which are then detail), otherwise `cpu` plus `dram`.
- A zone exposed by both the MSR (`intel-rapl`) and the MMIO (`intel-rapl-mmio`) trees is
  read once, from the MSR tree. Per-die zones that report the identical counter as another
  zone of the same kind are read once.

Each counter is differenced on its own and unwrapped with its own range. The files stay
open and are re-read with `pread`, so a reading of every zone costs a few microseconds.

On current kernels `energy_uj` is readable by root only. When it cannot be read the meter
is not built: `open_rapl_meter` returns the reason, with the fixes, so the caller can fall
back to estimates and show the message once.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from carbonbook.errors import MeterError, MeterUnavailableError, RaplPermissionError
from carbonbook.meters.base import DomainInfo, EnergyDelta, Interval
from carbonbook.meters.powercap import (
    ASSUMED_RANGE_UJ,
    DEFAULT_POWERCAP_ROOT,
    FileReader,
    RaplZone,
    SysfsReader,
    discover_zones,
    powercap_root,
)

__all__ = [
    "DEFAULT_POWERCAP_ROOT",
    "PERMISSION_HELP",
    "FileReader",
    "RaplMeter",
    "RaplOpenResult",
    "RaplZone",
    "SysfsReader",
    "discover_zones",
    "open_rapl_meter",
    "powercap_root",
]

logger = logging.getLogger(__name__)

# Power used to decide how often a counter must be read when the zone publishes no
# maximum power. Deliberately far above any single socket or DIMM set.
ASSUMED_MAX_POWER_W = 1000.0

# A counter that gives garbage this many times in a row is given up on.
MAX_BAD_READS = 20

PERMISSION_HELP = """\
The RAPL energy counters under {root} exist but cannot be read by this user
({detail}). Current kernels make energy_uj readable by root only (the PLATYPUS fix).
carbonbook falls back to estimates. To measure instead, either:
  - grant read access to a group with a udev rule, for example in
    /etc/udev/rules.d/70-powercap.rules:
      SUBSYSTEM=="powercap", ACTION=="add", RUN+="/bin/chgrp powercap /sys%p/energy_uj", \
RUN+="/bin/chmod g+r /sys%p/energy_uj"
    or a sysfsutils line in /etc/sysfs.conf:
      mode class/powercap/intel-rapl:0/energy_uj = 0440
    then add yourself to that group (opening it to every user re-opens the side channel);
  - in a container, run it with the host's /sys/class/powercap mounted readable;
  - in a VM or a locked-down host, read a tree the host exports (Scaphandre's qemu
    exporter writes one) by setting CARBONBOOK_POWERCAP_ROOT to its path."""


@dataclass(slots=True)
class _Counter:
    zone: RaplZone
    handle: int
    last_uj: int
    bad_reads: int = 0
    highest_uj: int = 0


@dataclass(frozen=True, slots=True)
class RaplOpenResult:
    """What `open_rapl_meter` found: a meter, or the reason there is none.

    Attributes:
        meter: the meter, or None.
        reason: why there is no meter (empty when there is one).
        permission_denied: True when counters exist but may not be read.
        zones: every zone discovered, including the ones not read.
        skipped: zone ids left out, with the reason (duplicates, unreadable).
    """

    meter: RaplMeter | None
    reason: str = ""
    permission_denied: bool = False
    zones: tuple[RaplZone, ...] = ()
    skipped: tuple[tuple[str, str], ...] = ()


def _parse_uj(raw: bytes) -> int | None:
    try:
        value = int(raw.strip() or b"x")
    except ValueError:
        return None
    return value if value >= 0 else None


def open_rapl_meter(
    root: Path | None = None,
    *,
    reader: FileReader | None = None,
) -> RaplOpenResult:
    """Discover the RAPL zones, open their counters and build a meter.

    Never raises for a missing or unreadable tree: the result carries the reason.

    Args:
        root: the powercap tree; defaults to `powercap_root()`.
        reader: the file seam; defaults to `SysfsReader`.
    """
    root = powercap_root() if root is None else root
    reader = SysfsReader() if reader is None else reader
    zones = discover_zones(root)
    if not zones:
        return RaplOpenResult(None, reason=f"no RAPL zones under {root}")

    counters: list[_Counter] = []
    skipped: list[tuple[str, str]] = []
    denied: list[str] = []
    for zone in zones:
        try:
            handle = reader.open(zone.path / "energy_uj")
            value = _parse_uj(reader.read(handle))
        except PermissionError as exc:
            denied.append(f"{zone.path / 'energy_uj'}: {exc.strerror or 'permission denied'}")
            continue
        except OSError as exc:
            skipped.append((zone.zone_id, f"energy_uj unreadable: {exc.strerror or exc}"))
            continue
        if value is None:
            reader.close(handle)
            skipped.append((zone.zone_id, "energy_uj holds no number"))
            continue
        counters.append(_Counter(zone, handle, value, highest_uj=value))

    counters, duplicates = _drop_duplicates(counters, reader)
    skipped.extend(duplicates)
    if not counters:
        if denied:
            reason = PERMISSION_HELP.format(root=root, detail=denied[0])
            return RaplOpenResult(
                None, reason=reason, permission_denied=True, zones=tuple(zones)
            )
        return RaplOpenResult(
            None,
            reason=f"no readable RAPL counter under {root}",
            zones=tuple(zones),
            skipped=tuple(skipped),
        )
    for zone_path in denied:
        skipped.append((zone_path, "permission denied"))
    logger.info("RAPL: reading %d zones under %s", len(counters), root)
    return RaplOpenResult(
        RaplMeter(counters, reader, root), zones=tuple(zones), skipped=tuple(skipped)
    )


def _drop_duplicates(
    counters: list[_Counter], reader: FileReader
) -> tuple[list[_Counter], list[tuple[str, str]]]:
    """Keep one counter per physical domain (MSR over MMIO, one of identical dies)."""
    kept: list[_Counter] = []
    skipped: list[tuple[str, str]] = []
    msr_names = {c.zone.name for c in counters if not c.zone.mmio}
    for counter in counters:
        zone = counter.zone
        if zone.mmio and zone.name in msr_names:
            skipped.append((zone.zone_id, f"same domain as the MSR zone named {zone.name}"))
            reader.close(counter.handle)
            continue
        twin = next(
            (
                other
                for other in kept
                if other.zone.kind == zone.kind
                and zone.kind in ("package", "dram", "psys")
                and other.last_uj == counter.last_uj
                and other.last_uj > 0
                and other.zone.range_uj == zone.range_uj
            ),
            None,
        )
        if twin is not None:
            skipped.append((zone.zone_id, f"identical counter to {twin.zone.zone_id}"))
            reader.close(counter.handle)
            continue
        kept.append(counter)
    return kept, skipped


@dataclass(slots=True)
class _Group:
    info: DomainInfo
    counters: list[_Counter] = field(default_factory=list)


class RaplMeter:
    """Reads every RAPL counter and reports `cpu`, `dram`, `psys`, `core`, `uncore`.

    Built by `open_rapl_meter`. The host figure of each domain is the sum of its zones'
    energy; the attributed figure is that times the subject's share of the machine's busy
    CPU time over the interval, for every domain alike (DRAM traffic follows the CPU work
    that causes it more closely than resident memory does).
    """

    name = "rapl"

    def __init__(self, counters: Sequence[_Counter], reader: FileReader, root: Path) -> None:
        self._counters = list(counters)
        self._reader = reader
        self._root = root
        self._warned_gap = False
        self._groups = self._build_groups()

    def _build_groups(self) -> dict[str, _Group]:
        has_psys = any(c.zone.kind == "psys" for c in self._counters)
        groups: dict[str, _Group] = {}
        for counter in self._counters:
            kind = counter.zone.kind
            domain = {"package": "cpu"}.get(kind, kind)
            if kind == "other":
                domain = counter.zone.name
            if domain not in groups:
                additive = domain == "psys" if has_psys else domain in ("cpu", "dram")
                notes = []
                if has_psys and domain in ("cpu", "dram"):
                    notes.append("inside psys: reported, not added to the host figure")
                if domain in ("core", "uncore"):
                    notes.append("inside the package: reported, not added")
                groups[domain] = _Group(
                    DomainInfo(domain, "measured", "rapl", additive, "", tuple(notes))
                )
            groups[domain].counters.append(counter)
        for domain, group in groups.items():
            sources = ", ".join(c.zone.zone_id for c in group.counters)
            notes = list(group.info.notes)
            if any(not c.zone.range_known for c in group.counters):
                notes.append(
                    f"no max_energy_range_uj; wrap range assumed {ASSUMED_RANGE_UJ} uJ"
                )
            groups[domain].info = DomainInfo(
                domain,
                "measured",
                "rapl",
                group.info.additive,
                f"{self._root} ({sources})",
                tuple(notes),
            )
        return groups

    def domains(self) -> Sequence[DomainInfo]:
        """The domains found, in a stable order."""
        return [group.info for group in self._groups.values()]

    def zones(self) -> list[RaplZone]:
        """The zones being read."""
        return [counter.zone for counter in self._counters]

    def prime(self, now_s: float) -> None:
        """Re-read every counter so the next read starts from now."""
        for counter in self._counters:
            value = self._read_counter(counter)
            if value is not None:
                counter.last_uj = value

    def read(self, interval: Interval) -> Mapping[str, EnergyDelta]:
        """Energy of each domain since the previous read.

        Raises:
            MeterError: a counter gave no number `MAX_BAD_READS` times in a row.
        """
        if not self._warned_gap and interval.duration_s > 2 * (self.max_interval_s() or 1e9):
            self._warned_gap = True
            logger.warning(
                "RAPL counters were read %.1f s apart; a counter may have wrapped more than "
                "once unseen, so that interval may be under-counted",
                interval.duration_s,
            )
        share = interval.cpu_share
        result: dict[str, EnergyDelta] = {}
        for domain, group in self._groups.items():
            energy_uj = 0
            for counter in group.counters:
                energy_uj += self._delta_uj(counter)
            energy_j = energy_uj / 1e6
            result[domain] = EnergyDelta.exact(energy_j, energy_j * share)
        return result

    def _read_counter(self, counter: _Counter) -> int | None:
        try:
            return _parse_uj(self._reader.read(counter.handle))
        except OSError:
            return None

    def _delta_uj(self, counter: _Counter) -> int:
        value = self._read_counter(counter)
        if value is None:
            # Keep the previous value: the energy is counted at the next good read.
            counter.bad_reads += 1
            if counter.bad_reads >= MAX_BAD_READS:
                raise MeterError(
                    f"RAPL counter {counter.zone.path / 'energy_uj'} gave no number "
                    f"{counter.bad_reads} times in a row; RAPL is switched off"
                )
            return 0
        counter.bad_reads = 0
        zone = counter.zone
        if value > counter.highest_uj:
            counter.highest_uj = value
            if value >= zone.range_uj:
                zone.range_uj = value + 1
        if value >= counter.last_uj:
            delta = value - counter.last_uj
        else:
            delta = zone.range_uj - counter.last_uj + value
        counter.last_uj = value
        return delta

    def max_interval_s(self) -> float | None:
        """Half the shortest time any counter takes to wrap at its highest power."""
        limits = []
        for counter in self._counters:
            power_w = counter.zone.max_power_w or ASSUMED_MAX_POWER_W
            limits.append(counter.zone.range_uj / 1e6 / power_w / 2.0)
        return min(limits) if limits else None

    def close(self) -> None:
        """Close every counter file."""
        for counter in self._counters:
            self._reader.close(counter.handle)
        self._counters = []
        self._groups = {}


def require_rapl(result: RaplOpenResult) -> RaplMeter:
    """Return the meter or raise the matching error (for callers that need one).

    Raises:
        RaplPermissionError: the counters exist but may not be read.
        MeterUnavailableError: there are no readable counters.
    """
    if result.meter is not None:
        return result.meter
    if result.permission_denied:
        raise RaplPermissionError(result.reason)
    raise MeterUnavailableError(result.reason)
