"""The small interface every meter implements, and the values meters exchange.

A meter is read once per sampling interval. It receives an `Interval` that describes
what the measured process tree and the machine did since the previous reading, and
returns one `EnergyDelta` per domain: the host's energy over the interval, the part
attributed to the measured subject, and bounds. The sampler adds the deltas up.

Units: joules (`_j`), seconds (`_s`), bytes (`_bytes`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

__all__ = [
    "DomainInfo",
    "EnergyDelta",
    "Interval",
    "Meter",
    "Method",
]

Method = Literal["measured", "estimated"]


@dataclass(frozen=True, slots=True)
class DomainInfo:
    """What one energy domain is and how it is read.

    Attributes:
        name: the domain key, such as `cpu`, `dram`, `psys`, `gpu:0`, `core`.
        method: `measured` for a hardware counter, `estimated` for a model.
        meter: the meter that produces it (`rapl`, `nvml`, `estimate`).
        additive: True when the domain is part of the host total. Sub-domains such as
            `core` and `uncore` (inside the package) are reported but never added.
        source: where the figure comes from, for the user (a sysfs path, a GPU name).
        notes: caveats the user should see, such as board-level energy under MIG.
    """

    name: str
    method: Method
    meter: str
    additive: bool = True
    source: str = ""
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class EnergyDelta:
    """Energy of one domain over one interval, in joules.

    `host_j` is the whole machine's energy in the domain; `attributed_j` is the share
    of it assigned to the measured subject. The bounds bracket `attributed_j` and
    `host_j`; for a measured domain they equal the value.
    """

    host_j: float
    attributed_j: float
    host_lower_j: float
    host_upper_j: float
    attributed_lower_j: float
    attributed_upper_j: float

    @classmethod
    def exact(cls, host_j: float, attributed_j: float) -> EnergyDelta:
        """Build a delta whose bounds equal its values (a measured domain)."""
        return cls(host_j, attributed_j, host_j, host_j, attributed_j, attributed_j)

    @classmethod
    def zero(cls) -> EnergyDelta:
        """The delta of an interval in which nothing was measured."""
        return cls(0.0, 0.0, 0.0, 0.0, 0.0, 0.0)


@dataclass(frozen=True, slots=True)
class Interval:
    """What happened between two readings, as seen by the process probe.

    Attributes:
        start_s: monotonic time of the previous reading.
        end_s: monotonic time of this reading.
        subject_cpu_s: CPU time used by the measured process tree in the interval.
        machine_busy_s: CPU time the whole machine spent busy (all CPUs together).
        cpu_share: the subject's share of the machine's busy CPU time, in [0, 1].
        logical_cpus: CPUs the machine has (used to turn busy time into utilisation).
        subject_rss_bytes: resident memory of the subject at the end of the interval.
        machine_used_bytes: memory in use on the machine at the end of the interval.
        subject_pids: process ids of the subject at the end of the interval.
        container_cpu_s: CPU time of the cgroup v2 container in the interval, if known.
    """

    start_s: float
    end_s: float
    subject_cpu_s: float = 0.0
    machine_busy_s: float = 0.0
    cpu_share: float = 0.0
    logical_cpus: int = 1
    subject_rss_bytes: int = 0
    machine_used_bytes: int = 0
    subject_pids: frozenset[int] = field(default_factory=frozenset)
    container_cpu_s: float | None = None

    @property
    def duration_s(self) -> float:
        """Length of the interval in seconds."""
        return self.end_s - self.start_s


@runtime_checkable
class Meter(Protocol):
    """A source of energy readings for one or more domains."""

    name: str

    def domains(self) -> Sequence[DomainInfo]:
        """The domains this meter reports, fixed once the meter is built."""
        ...

    def prime(self, now_s: float) -> None:
        """Take the first reading, against which the next `read` is differenced."""
        ...

    def read(self, interval: Interval) -> Mapping[str, EnergyDelta]:
        """Read the counters and return the energy of each domain since the last read.

        Raises:
            MeterError: the meter failed; the sampler switches it off.
        """
        ...

    def max_interval_s(self) -> float | None:
        """The longest gap between reads that keeps the readings correct, if any."""
        ...

    def close(self) -> None:
        """Release files and libraries; the meter is not read again."""
        ...
