"""The energy of a block of work, from two sampler snapshots.

`Usage` is what a measured block consumed, per domain, for the whole machine (`host`) and
for the measured process tree (`attributed`), with bounds. Only additive domains make up
the totals; the others (`core`, `uncore`, and `cpu`/`dram` when `psys` is the host
figure) are kept in `detail_j`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from carbonbook.meters.base import DomainInfo
from carbonbook.sampler import DomainTotals, Snapshot

__all__ = ["BlockMethod", "DomainUsage", "Usage", "usage_between"]

BlockMethod = Literal["measured", "estimated", "mixed"]


@dataclass(frozen=True, slots=True)
class DomainUsage:
    """One domain's energy over a block, in joules, with the method that produced it."""

    name: str
    host_j: float
    attributed_j: float
    host_lower_j: float
    host_upper_j: float
    attributed_lower_j: float
    attributed_upper_j: float
    method: BlockMethod
    additive: bool
    meter: str


@dataclass(frozen=True, slots=True)
class Usage:
    """Energy of a block: totals, per-domain figures and the time it took.

    Attributes:
        start: the snapshot at the start.
        end: the snapshot at the end.
        domains: every domain's figures, additive or not.
    """

    start: Snapshot
    end: Snapshot
    domains: tuple[DomainUsage, ...]

    @property
    def duration_s(self) -> float:
        """Elapsed time of the block, in seconds."""
        return self.end.t_s - self.start.t_s

    def _additive(self) -> list[DomainUsage]:
        return [d for d in self.domains if d.additive]

    @property
    def energy_j(self) -> float:
        """Energy attributed to the measured process tree."""
        return sum(d.attributed_j for d in self._additive())

    @property
    def energy_lower_j(self) -> float:
        """Lower bound of `energy_j`."""
        return sum(d.attributed_lower_j for d in self._additive())

    @property
    def energy_upper_j(self) -> float:
        """Upper bound of `energy_j`."""
        return sum(d.attributed_upper_j for d in self._additive())

    @property
    def host_energy_j(self) -> float:
        """Energy of the whole machine."""
        return sum(d.host_j for d in self._additive())

    @property
    def host_energy_lower_j(self) -> float:
        """Lower bound of `host_energy_j`."""
        return sum(d.host_lower_j for d in self._additive())

    @property
    def host_energy_upper_j(self) -> float:
        """Upper bound of `host_energy_j`."""
        return sum(d.host_upper_j for d in self._additive())

    @property
    def by_domain(self) -> dict[str, float]:
        """Attributed joules per additive domain; the values add up to `energy_j`."""
        return {d.name: d.attributed_j for d in self._additive()}

    @property
    def host_by_domain(self) -> dict[str, float]:
        """Host joules per additive domain; the values add up to `host_energy_j`."""
        return {d.name: d.host_j for d in self._additive()}

    @property
    def detail_j(self) -> dict[str, float]:
        """Attributed joules of the domains reported but not added (`core`, `uncore`...)."""
        return {d.name: d.attributed_j for d in self.domains if not d.additive}

    @property
    def methods(self) -> dict[str, BlockMethod]:
        """The method of each additive domain."""
        return {d.name: d.method for d in self._additive()}

    @property
    def method(self) -> BlockMethod:
        """`measured` or `estimated` when every domain agrees, else `mixed`."""
        found = {d.method for d in self._additive()}
        if found == {"measured"}:
            return "measured"
        if found <= {"estimated"}:
            return "estimated"
        return "mixed"

    @property
    def subject_cpu_s(self) -> float:
        """CPU time the measured process tree used during the block."""
        return self.end.subject_cpu_s - self.start.subject_cpu_s

    @property
    def container_cpu_s(self) -> float | None:
        """CPU time the container used during the block, when it is known."""
        if self.end.container_cpu_s is None:
            return None
        return self.end.container_cpu_s - (self.start.container_cpu_s or 0.0)


def _method(before: DomainTotals, after: DomainTotals, info: DomainInfo) -> BlockMethod:
    measured = after.measured_intervals - before.measured_intervals
    estimated = after.estimated_intervals - before.estimated_intervals
    if measured and estimated:
        return "mixed"
    if measured:
        return "measured"
    if estimated:
        return "estimated"
    return "measured" if info.method == "measured" else "estimated"


def usage_between(start: Snapshot, end: Snapshot) -> Usage:
    """The energy used between two snapshots of the same sampler."""
    zero = DomainTotals()
    domains = []
    for name, after in end.totals.items():
        before = start.totals.get(name, zero)
        info = end.domains[name]
        domains.append(
            DomainUsage(
                name=name,
                host_j=after.host_j - before.host_j,
                attributed_j=after.attributed_j - before.attributed_j,
                host_lower_j=after.host_lower_j - before.host_lower_j,
                host_upper_j=after.host_upper_j - before.host_upper_j,
                attributed_lower_j=after.attributed_lower_j - before.attributed_lower_j,
                attributed_upper_j=after.attributed_upper_j - before.attributed_upper_j,
                method=_method(before, after, info),
                additive=info.additive,
                meter=info.meter,
            )
        )
    return Usage(start, end, tuple(domains))
