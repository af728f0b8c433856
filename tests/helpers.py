"""Test doubles at the seams: a hand-driven clock and a scripted process probe."""

from __future__ import annotations

from dataclasses import dataclass, field

from carbonbook.meters.process import Activity


@dataclass
class ManualClock:
    """A monotonic clock that moves only when the test says so."""

    now_s: float = 1000.0

    def __call__(self) -> float:
        return self.now_s

    def advance(self, seconds: float) -> None:
        self.now_s += seconds


@dataclass
class ScriptedProbe:
    """A process probe whose cumulative CPU times the test sets.

    `subject_share` of every second of machine busy time goes to the subject.
    """

    logical_cpus: int = 4
    subject_cpu_s: float = 0.0
    machine_busy_s: float = 0.0
    rss_bytes: int = 2**30
    used_bytes: int = 8 * 2**30
    pids: frozenset[int] = field(default_factory=lambda: frozenset({4242}))

    def busy(self, machine_s: float, subject_s: float) -> None:
        self.machine_busy_s += machine_s
        self.subject_cpu_s += subject_s

    def read(self, *, rescan: bool = True) -> Activity:
        return Activity(
            subject_cpu_s=self.subject_cpu_s,
            machine_busy_s=self.machine_busy_s,
            subject_rss_bytes=self.rss_bytes,
            machine_used_bytes=self.used_bytes,
            subject_pids=self.pids,
        )
