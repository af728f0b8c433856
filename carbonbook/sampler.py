"""The background sampler: one thread that reads every meter and keeps running totals.

The sampler reads all meters at a fixed period and also whenever `snapshot()` is called,
for example at a cell boundary. Each reading closes an interval; the energy of every
interval is added to cumulative totals per domain. A measured block is the difference of
two snapshots, so a 10 ms block and a 10 minute block are measured the same way, and any
number of blocks may nest or overlap.

A meter that fails is switched off and reported once in `problems`; when it covered the
CPU or memory, an estimate takes over those domains. The thread itself never dies of a
meter error and can be stopped and started again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace

from carbonbook.meters.base import DomainInfo, EnergyDelta, Interval, Meter
from carbonbook.meters.process import Activity, ActivityProbe

__all__ = ["DomainTotals", "HistoryPoint", "Sampler", "Snapshot"]

logger = logging.getLogger(__name__)

DEFAULT_PERIOD_S = 0.5
DEFAULT_HISTORY = 3600

FallbackFactory = Callable[[Collection[str]], Meter | None]


@dataclass(frozen=True, slots=True)
class DomainTotals:
    """Cumulative energy of one domain since the sampler started, in joules.

    `measured_intervals` and `estimated_intervals` count the intervals each method
    contributed, so the method of any block can be told from two snapshots.
    """

    host_j: float = 0.0
    attributed_j: float = 0.0
    host_lower_j: float = 0.0
    host_upper_j: float = 0.0
    attributed_lower_j: float = 0.0
    attributed_upper_j: float = 0.0
    measured_intervals: int = 0
    estimated_intervals: int = 0

    def plus(self, delta: EnergyDelta, *, estimated: bool) -> DomainTotals:
        """These totals with one more interval added."""
        return DomainTotals(
            self.host_j + delta.host_j,
            self.attributed_j + delta.attributed_j,
            self.host_lower_j + delta.host_lower_j,
            self.host_upper_j + delta.host_upper_j,
            self.attributed_lower_j + delta.attributed_lower_j,
            self.attributed_upper_j + delta.attributed_upper_j,
            self.measured_intervals + (0 if estimated else 1),
            self.estimated_intervals + (1 if estimated else 0),
        )


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The sampler's cumulative state at one reading.

    Attributes:
        t_s: monotonic time of the reading.
        wall_s: wall-clock time of the reading (seconds since the epoch, UTC).
        totals: cumulative energy per domain.
        domains: what each domain is (the latest description of it).
        subject_cpu_s: cumulative CPU time of the subject since the sampler started.
        machine_busy_s: cumulative busy CPU time of the machine since the sampler started.
        container_cpu_s: cumulative CPU time of the container, when it is known.
        problems: messages about meters switched off so far.
    """

    t_s: float
    wall_s: float
    totals: Mapping[str, DomainTotals]
    domains: Mapping[str, DomainInfo]
    subject_cpu_s: float = 0.0
    machine_busy_s: float = 0.0
    container_cpu_s: float | None = None
    problems: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class HistoryPoint:
    """Average power over one sampling interval, for live displays.

    Attributes:
        t_s: monotonic time at the end of the interval.
        host_power_w: the host's power per domain.
        attributed_power_w: the subject's power per domain.
    """

    t_s: float
    host_power_w: Mapping[str, float]
    attributed_power_w: Mapping[str, float]


@dataclass(slots=True)
class _Previous:
    t_s: float
    activity: Activity
    subject_cpu_s: float = 0.0
    machine_busy_s: float = 0.0
    container_cpu_s: float | None = None
    extra: dict[str, float] = field(default_factory=dict)


class Sampler:
    """Reads meters periodically and on demand, and keeps cumulative totals.

    Args:
        meters: the meters to read; their domains must not overlap.
        probe: the process tree to attribute energy to.
        period_s: time between periodic readings. It is shortened when a meter needs
            to be read more often (a counter that could wrap twice unseen).
        fallback: builds an estimate for domains whose meter was switched off.
        clock: monotonic seconds (injectable for tests).
        wall_clock: wall-clock seconds since the epoch.
        history: how many periodic history points to keep.
    """

    def __init__(
        self,
        meters: Sequence[Meter],
        probe: ActivityProbe,
        *,
        period_s: float = DEFAULT_PERIOD_S,
        fallback: FallbackFactory | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        history: int = DEFAULT_HISTORY,
    ) -> None:
        if period_s <= 0:
            raise ValueError(f"period_s must be positive, got {period_s!r}")
        self._meters: list[Meter] = list(meters)
        self._probe = probe
        self._period_s = period_s
        self._fallback = fallback
        self._clock = clock
        self._wall_clock = wall_clock
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._totals: dict[str, DomainTotals] = {}
        self._domains: dict[str, DomainInfo] = {}
        self._problems: list[str] = []
        self._previous: _Previous | None = None
        self.history: deque[HistoryPoint] = deque(maxlen=history)
        for meter in self._meters:
            self._register(meter)

    # -- public API ---------------------------------------------------------------

    @property
    def period_s(self) -> float:
        """The period actually used: the configured one, or shorter if a meter needs it."""
        limits = [self._period_s]
        for meter in self._meters:
            limit = meter.max_interval_s()
            if limit is not None and limit > 0:
                limits.append(limit)
        return min(limits)

    def set_period(self, period_s: float) -> None:
        """Change the sampling period; the thread uses it from its next wait.

        Raises:
            ValueError: the period is not positive.
        """
        if period_s <= 0:
            raise ValueError(f"period_s must be positive, got {period_s!r}")
        self._period_s = period_s

    @property
    def meters(self) -> tuple[Meter, ...]:
        """The meters being read now."""
        return tuple(self._meters)

    @property
    def problems(self) -> tuple[str, ...]:
        """Messages about meters switched off, oldest first."""
        return tuple(self._problems)

    @property
    def running(self) -> bool:
        """True while the background thread runs."""
        return self._thread is not None and self._thread.is_alive()

    def domains(self) -> dict[str, DomainInfo]:
        """The domains reported now."""
        with self._lock:
            return dict(self._domains)

    def start(self) -> None:
        """Start the background thread (a no-op when it already runs)."""
        if self.running:
            return
        with self._lock:
            if self._previous is None:
                self._prime()
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, name="carbonbook-sampler", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop the background thread and wait for it (a no-op when it is stopped)."""
        thread = self._thread
        if thread is None:
            return
        self._stop.set()
        if thread is not threading.current_thread():
            thread.join()
        self._thread = None

    def close(self) -> None:
        """Stop the thread and release every meter."""
        self.stop()
        with self._lock:
            for meter in self._meters:
                _close_quietly(meter)
            self._meters = []
            close_probe = getattr(self._probe, "close", None)
            if close_probe is not None:
                close_probe()

    def snapshot(self) -> Snapshot:
        """Take a reading now and return the cumulative state it closes."""
        with self._lock:
            if self._previous is None:
                self._prime()
            else:
                self._sample(record_history=False)
            return self._snapshot()

    def sample(self) -> None:
        """Take one periodic reading (what the background thread does each period)."""
        with self._lock:
            if self._previous is None:
                self._prime()
            else:
                self._sample(record_history=True)

    # -- internals ----------------------------------------------------------------

    def _register(self, meter: Meter) -> None:
        for info in meter.domains():
            self._domains[info.name] = info
            self._totals.setdefault(info.name, DomainTotals())

    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            try:
                self.sample()
            except Exception:  # The thread must outlive any failure; it is logged.
                logger.debug("sampler reading failed", exc_info=True)

    def _read_probe(self, *, rescan: bool = True) -> Activity | None:
        try:
            return self._probe.read(rescan=rescan)
        except Exception as exc:
            self._report(f"process probe failed ({exc}); energy is not attributed")
            return None

    def _prime(self) -> None:
        now = self._clock()
        activity = self._read_probe() or Activity(0.0, 0.0, 0, 0, frozenset())
        for meter in list(self._meters):
            try:
                meter.prime(now)
            except Exception as exc:
                self._switch_off(meter, exc)
        self._previous = _Previous(now, activity)

    def _interval(self, now: float, activity: Activity | None) -> Interval:
        previous = self._previous
        assert previous is not None
        if activity is None:
            activity = previous.activity
        subject_s = max(0.0, activity.subject_cpu_s - previous.activity.subject_cpu_s)
        busy_s = max(0.0, activity.machine_busy_s - previous.activity.machine_busy_s)
        # The machine's busy time comes in clock ticks; the subject's is finer, so over
        # a short interval the subject can look busier than the machine.
        if busy_s > 0:
            share = min(1.0, subject_s / busy_s)
        else:
            share = 1.0 if subject_s > 0 else 0.0
        container_s = None
        now_container, then_container = (
            activity.container_cpu_s,
            previous.activity.container_cpu_s,
        )
        if now_container is not None and then_container is not None:
            container_s = max(0.0, now_container - then_container)
        return Interval(
            start_s=previous.t_s,
            end_s=now,
            subject_cpu_s=subject_s,
            machine_busy_s=busy_s,
            cpu_share=share,
            logical_cpus=self._probe.logical_cpus,
            subject_rss_bytes=activity.subject_rss_bytes,
            machine_used_bytes=activity.machine_used_bytes,
            subject_pids=activity.subject_pids,
            container_cpu_s=container_s,
        )

    def _sample(self, *, record_history: bool) -> None:
        now = self._clock()
        activity = self._read_probe(rescan=record_history)
        interval = self._interval(now, activity)
        host_power: dict[str, float] = {}
        attributed_power: dict[str, float] = {}
        duration_s = interval.duration_s
        for meter in list(self._meters):
            try:
                deltas = meter.read(interval)
            except Exception as exc:
                self._switch_off(meter, exc)
                continue
            for domain, delta in deltas.items():
                info = self._domains.get(domain)
                if info is None:
                    continue
                estimated = info.method == "estimated"
                self._totals[domain] = self._totals[domain].plus(delta, estimated=estimated)
                if duration_s > 0:
                    host_power[domain] = delta.host_j / duration_s
                    attributed_power[domain] = delta.attributed_j / duration_s
        previous = self._previous
        assert previous is not None
        self._previous = _Previous(
            now,
            activity or previous.activity,
            previous.subject_cpu_s + interval.subject_cpu_s,
            previous.machine_busy_s + interval.machine_busy_s,
            _add_optional(previous.container_cpu_s, interval.container_cpu_s),
        )
        if record_history and duration_s > 0:
            self.history.append(HistoryPoint(now, host_power, attributed_power))
        logger.debug("sample at %.3f s: %s W", now, host_power)

    def _snapshot(self) -> Snapshot:
        previous = self._previous
        assert previous is not None
        return Snapshot(
            t_s=previous.t_s,
            wall_s=self._wall_clock(),
            totals=dict(self._totals),
            domains=dict(self._domains),
            subject_cpu_s=previous.subject_cpu_s,
            machine_busy_s=previous.machine_busy_s,
            container_cpu_s=previous.container_cpu_s,
            problems=tuple(self._problems),
        )

    def _report(self, message: str) -> None:
        if message not in self._problems:
            self._problems.append(message)
            logger.warning("%s", message)

    def _switch_off(self, meter: Meter, exc: BaseException) -> None:
        lost = {info.name for info in _safe_domains(meter)}
        self._meters.remove(meter)
        _close_quietly(meter)
        self._report(f"{meter.name} meter switched off: {exc}")
        if "psys" in lost:
            # Without psys, cpu and dram carry the host figure again.
            lost |= {"cpu", "dram"}
            self._domains["psys"] = replace(self._domains["psys"], additive=False)
        covered = sorted(lost & {"cpu", "dram"})
        if not covered or self._fallback is None:
            return
        replacement = self._fallback(covered)
        if replacement is None:
            return
        self._register(replacement)
        for info in replacement.domains():
            note = f"estimated since the {meter.name} meter was switched off"
            self._domains[info.name] = replace(info, notes=(*info.notes, note))
        replacement.prime(self._clock())
        self._meters.append(replacement)


def _safe_domains(meter: Meter) -> Sequence[DomainInfo]:
    try:
        return meter.domains()
    except Exception:
        return ()


def _close_quietly(meter: Meter) -> None:
    try:
        meter.close()
    except Exception:
        logger.debug("closing meter %s failed", meter.name, exc_info=True)


def _add_optional(total: float | None, delta: float | None) -> float | None:
    if delta is None:
        return total
    return (total or 0.0) + delta
