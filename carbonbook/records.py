"""One metered block as it is kept in the ledger: energy, carbon and their provenance.

A `CellRecord` stores energy raw (joules per domain, host and attributed, with the method
of each) next to the intensity and PUE used to derive CO2e, so the carbon figures can be
recomputed when better intensity data arrives.
"""

from __future__ import annotations

import functools
import os
import socket
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from carbonbook.intensity.embedded import Intensity
from carbonbook.usage import BlockMethod, Usage

__all__ = ["CellRecord", "DomainRecord", "RecordKind", "Status", "record_from_usage"]

RecordKind = Literal["cell", "magic", "track"]
Status = Literal["ok", "error"]

JOULES_PER_KWH = 3.6e6
SOURCE_PREVIEW_CHARS = 120


@dataclass(frozen=True, slots=True)
class DomainRecord:
    """One domain's energy over the block, in joules."""

    name: str
    host_j: float
    attributed_j: float
    host_lower_j: float
    host_upper_j: float
    attributed_lower_j: float
    attributed_upper_j: float
    method: BlockMethod
    meter: str
    additive: bool


@dataclass(frozen=True, slots=True)
class CellRecord:
    """A metered notebook cell (or `%%carbon` block, or `track` block).

    Attributes:
        record_id: unique id of this record (a UUID in hex); the ledger ignores a
            record whose id it already holds.
        session_id: one id per kernel session.
        kind: `cell` (auto mode), `magic` (`%%carbon`) or `track`.
        execution_count: the cell's execution count, when there is one.
        cell_id: the frontend's cell id, when it sends one.
        notebook_path: the notebook's path, when the kernel knows it.
        label: a user label (`%%carbon --label`).
        source_preview: the start of the cell's first non-empty line.
        started_at, ended_at: UTC times of the block.
        duration_s: elapsed seconds.
        energy_j, energy_lower_j, energy_upper_j: energy attributed to the kernel's
            process tree, with bounds.
        host_energy_j, host_energy_lower_j, host_energy_upper_j: the machine's energy.
        method: `measured`, `estimated` or `mixed`.
        domains: every domain's figures.
        cpu_time_s: CPU time of the process tree in the block.
        zone: the grid zone.
        intensity_g_per_kwh, intensity_source, intensity_year, intensity_factor_type,
        intensity_signal, intensity_basis: the intensity used and its provenance.
        pue: power usage effectiveness applied.
        co2e_g, co2e_lower_g, co2e_upper_g: location-based grams CO2e with bounds.
        status: `ok`, or `error` for a cell that raised or was interrupted.
        error: the exception's class name for an `error` cell.
        hostname, kernel_pid, carbonbook_version: where the record was made.
    """

    record_id: str
    session_id: str
    kind: RecordKind
    execution_count: int | None
    cell_id: str | None
    notebook_path: str | None
    label: str | None
    source_preview: str
    started_at: datetime
    ended_at: datetime
    duration_s: float
    energy_j: float
    energy_lower_j: float
    energy_upper_j: float
    host_energy_j: float
    host_energy_lower_j: float
    host_energy_upper_j: float
    method: BlockMethod
    domains: tuple[DomainRecord, ...]
    cpu_time_s: float
    zone: str
    intensity_g_per_kwh: float
    intensity_source: str
    intensity_year: int | None
    intensity_factor_type: str
    intensity_signal: str
    intensity_basis: str
    pue: float
    co2e_g: float
    co2e_lower_g: float
    co2e_upper_g: float
    status: Status
    error: str | None
    hostname: str
    kernel_pid: int
    carbonbook_version: str

    @property
    def by_domain(self) -> dict[str, float]:
        """Attributed joules per additive domain; they add up to `energy_j`."""
        return {d.name: d.attributed_j for d in self.domains if d.additive}

    @property
    def energy_wh(self) -> float:
        """`energy_j` in watt-hours."""
        return self.energy_j / 3600.0

    @property
    def bounds_ratio(self) -> float:
        """The larger relative distance from `energy_j` to a bound (0.35 for +-35%)."""
        if self.energy_j <= 0:
            return 0.0
        return max(self.energy_j - self.energy_lower_j, self.energy_upper_j - self.energy_j) / (
            self.energy_j
        )


def _preview(source: str) -> str:
    for line in source.splitlines():
        stripped = line.strip()
        if stripped:
            if len(stripped) > SOURCE_PREVIEW_CHARS:
                return stripped[: SOURCE_PREVIEW_CHARS - 1] + "…"
            return stripped
    return ""


@functools.cache
def _hostname() -> str:
    return socket.gethostname()


def _utc(epoch_s: float) -> datetime:
    return datetime.fromtimestamp(epoch_s, tz=UTC)


def record_from_usage(
    usage: Usage,
    intensity: Intensity,
    pue: float,
    *,
    session_id: str,
    kind: RecordKind,
    started_at_s: float,
    source: str = "",
    execution_count: int | None = None,
    cell_id: str | None = None,
    notebook_path: str | None = None,
    label: str | None = None,
    status: Status = "ok",
    error: str | None = None,
) -> CellRecord:
    """Build a record from a block's usage and the intensity that applies to it.

    Args:
        usage: the block's energy (two sampler snapshots).
        intensity: the grid intensity used for CO2e.
        pue: the power usage effectiveness.
        session_id: the kernel session's id.
        kind: what made the record.
        started_at_s: wall-clock start of the block, seconds since the epoch.
        source: the cell's source, of which a preview is kept.
    """
    from carbonbook import __version__

    factor = intensity.g_per_kwh * pue / JOULES_PER_KWH
    ended_at_s = started_at_s + usage.duration_s
    domains = tuple(
        DomainRecord(
            d.name,
            d.host_j,
            d.attributed_j,
            d.host_lower_j,
            d.host_upper_j,
            d.attributed_lower_j,
            d.attributed_upper_j,
            d.method,
            d.meter,
            d.additive,
        )
        for d in usage.domains
    )
    return CellRecord(
        record_id=uuid.uuid4().hex,
        session_id=session_id,
        kind=kind,
        execution_count=execution_count,
        cell_id=cell_id,
        notebook_path=notebook_path,
        label=label,
        source_preview=_preview(source),
        started_at=_utc(started_at_s),
        ended_at=_utc(ended_at_s),
        duration_s=usage.duration_s,
        energy_j=usage.energy_j,
        energy_lower_j=usage.energy_lower_j,
        energy_upper_j=usage.energy_upper_j,
        host_energy_j=usage.host_energy_j,
        host_energy_lower_j=usage.host_energy_lower_j,
        host_energy_upper_j=usage.host_energy_upper_j,
        method=usage.method,
        domains=domains,
        cpu_time_s=usage.subject_cpu_s,
        zone=intensity.zone,
        intensity_g_per_kwh=intensity.g_per_kwh,
        intensity_source=intensity.source,
        intensity_year=intensity.year,
        intensity_factor_type=intensity.factor_type,
        intensity_signal=intensity.signal,
        intensity_basis=intensity.basis,
        pue=pue,
        co2e_g=usage.energy_j * factor,
        co2e_lower_g=usage.energy_lower_j * factor,
        co2e_upper_g=usage.energy_upper_j * factor,
        status=status,
        error=error,
        hostname=_hostname(),
        kernel_pid=os.getpid(),
        carbonbook_version=__version__,
    )
