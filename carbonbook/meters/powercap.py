"""The powercap sysfs tree: where it is, how its files are read, which zones it holds.

Zone directories are named `intel-rapl:<id>[:<subid>...]` or `intel-rapl-mmio:<id>`, ids
in hexadecimal. `/sys/class/powercap` lists every zone flat; the device tree nests each
subzone inside its parent. Both layouts are searched.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

__all__ = [
    "ASSUMED_RANGE_UJ",
    "DEFAULT_POWERCAP_ROOT",
    "FileReader",
    "RaplZone",
    "SysfsReader",
    "ZoneKind",
    "discover_zones",
    "powercap_root",
]

logger = logging.getLogger(__name__)

DEFAULT_POWERCAP_ROOT = "/sys/class/powercap"

# The usual range of a 32-bit RAPL counter in units of 2**-14 J, as the kernel reports it
# on most Intel parts. Used only when a zone has no readable `max_energy_range_uj`.
ASSUMED_RANGE_UJ = 262_143_328_850

_ZONE_DIR = re.compile(r"^(intel-rapl(?:-mmio)?):([0-9a-fA-F]+(?::[0-9a-fA-F]+)*)$")

ZoneKind = Literal["package", "core", "uncore", "dram", "psys", "other"]


def powercap_root(environ: Mapping[str, str] | None = None) -> Path:
    """The powercap tree to read: `CARBONBOOK_POWERCAP_ROOT`, else `/sys/class/powercap`."""
    env = os.environ if environ is None else environ
    return Path(env.get("CARBONBOOK_POWERCAP_ROOT") or DEFAULT_POWERCAP_ROOT)


class FileReader(Protocol):
    """The seam between the meter and the filesystem: open once, read many times."""

    def open(self, path: Path) -> int:
        """Open a file for repeated reads and return a handle."""
        ...

    def read(self, handle: int) -> bytes:
        """Read the whole (small) file behind a handle from its start."""
        ...

    def close(self, handle: int) -> None:
        """Release a handle."""
        ...


class SysfsReader:
    """Reads sysfs attributes with `os.pread` on descriptors kept open."""

    def open(self, path: Path) -> int:
        """Open `path` read-only. Raises OSError (PermissionError among others)."""
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)

    def read(self, handle: int) -> bytes:
        """Read up to 64 bytes from the start of the file."""
        return os.pread(handle, 64, 0)

    def close(self, handle: int) -> None:
        """Close the descriptor, ignoring one that is already closed."""
        with contextlib.suppress(OSError):
            os.close(handle)


@dataclass(slots=True)
class RaplZone:
    """One powercap zone as found on disk.

    Attributes:
        path: the zone directory.
        zone_id: the directory name, such as `intel-rapl:0:1`.
        name: the zone's `name` file, such as `package-0` or `dram`.
        kind: the domain kind the name denotes.
        mmio: True for a zone of the `intel-rapl-mmio` tree.
        range_uj: the wrap range of `energy_uj`, in microjoules.
        range_known: False when `max_energy_range_uj` was missing or unreadable.
        max_power_w: the highest power the zone publishes, if any.
    """

    path: Path
    zone_id: str
    name: str
    kind: ZoneKind
    mmio: bool
    range_uj: int
    range_known: bool
    max_power_w: float | None


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return None


def _read_int(path: Path) -> int | None:
    text = _read_text(path)
    if not text:
        return None
    try:
        value = int(text)
    except ValueError:
        return None
    return value if value >= 0 else None


def _zone_kind(name: str) -> ZoneKind:
    if name.startswith("package"):
        return "package"
    if name in ("core", "uncore", "dram", "psys"):
        return name  # type: ignore[return-value]
    return "other"


def _max_power_w(zone_dir: Path) -> float | None:
    """The largest power a zone publishes: constraint maxima, else twice its limits."""
    maxima: list[float] = []
    limits: list[float] = []
    for index in range(3):
        max_uw = _read_int(zone_dir / f"constraint_{index}_max_power_uw")
        if max_uw:
            maxima.append(max_uw / 1e6)
        limit_uw = _read_int(zone_dir / f"constraint_{index}_power_limit_uw")
        if limit_uw:
            limits.append(limit_uw / 1e6)
    if maxima:
        return max(maxima)
    if limits:
        return 2.0 * max(limits)
    return None


def _zone_dirs(root: Path) -> list[Path]:
    """Zone directories, flat (as in /sys/class/powercap) or nested under their parent."""
    found: dict[str, Path] = {}
    pending = [root]
    while pending:
        directory = pending.pop()
        try:
            entries = sorted(directory.iterdir())
        except OSError:
            continue
        for entry in entries:
            if _ZONE_DIR.match(entry.name) and entry.is_dir():
                found.setdefault(entry.name, entry)
                pending.append(entry)
    return [found[key] for key in sorted(found, key=_zone_sort_key)]


def _zone_sort_key(zone_id: str) -> tuple[int, tuple[int, ...]]:
    tree, _, ids = zone_id.partition(":")
    return (1 if tree.endswith("mmio") else 0, tuple(int(part, 16) for part in ids.split(":")))


def discover_zones(root: Path) -> list[RaplZone]:
    """Find the RAPL zones under a powercap tree.

    Zones without a `name` or an `energy_uj` file are skipped. The counters are not read
    here; `open_rapl_meter` does that.

    Args:
        root: the powercap directory.

    Returns:
        The zones in tree order, MSR zones before MMIO zones.
    """
    zones = []
    for directory in _zone_dirs(root):
        name = _read_text(directory / "name")
        if not name or not (directory / "energy_uj").exists():
            logger.debug("skipping powercap zone %s: no name or no energy_uj", directory)
            continue
        range_uj = _read_int(directory / "max_energy_range_uj")
        zones.append(
            RaplZone(
                path=directory,
                zone_id=directory.name,
                name=name,
                kind=_zone_kind(name),
                mmio=directory.name.startswith("intel-rapl-mmio"),
                range_uj=range_uj if range_uj else ASSUMED_RANGE_UJ,
                range_known=bool(range_uj),
                max_power_w=_max_power_w(directory),
            )
        )
    return zones
