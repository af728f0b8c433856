"""`carbonbook.track`: meter a block of code, in a notebook or anywhere else.

    with carbonbook.track("train") as run:
        model.fit(x, y)
    print(run.energy_j, run.co2e_g, run.method)

It also decorates a function (each call is metered on its own). Blocks may nest and
overlap freely: each is the difference of two readings of the process's sampler. Nothing
in here raises into the measured code: a failure is logged, recorded in `problems`, and
the block is reported with what could be measured.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import ParamSpec, TypeVar

from carbonbook.intensity.embedded import (
    Intensity,
    embedded_intensity,
    embedded_pue,
    resolve_zone,
)
from carbonbook.sampler import Sampler, Snapshot
from carbonbook.usage import BlockMethod, Usage, usage_between

__all__ = ["Measurement", "co2e_g", "track"]

logger = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

JOULES_PER_KWH = 3.6e6


def co2e_g(energy_j: float, intensity_g_per_kwh: float, pue: float = 1.0) -> float:
    """Grams CO2e of an energy in joules at a grid intensity and a PUE."""
    return energy_j / JOULES_PER_KWH * intensity_g_per_kwh * pue


@dataclass(slots=True)
class Measurement:
    """What a metered block used. The figures are filled in when the block ends.

    Attributes:
        label: the name given to `track`, if any.
        energy_j: energy attributed to this process tree, in joules.
        energy_lower_j, energy_upper_j: bounds of `energy_j` (equal to it when measured).
        host_energy_j: energy of the whole machine over the block.
        by_domain: attributed joules per domain (`cpu`, `dram`, `psys`, `gpu:0` ...).
        host_by_domain: the machine's joules per domain.
        detail_j: domains reported but not added (`core`, `uncore`).
        methods: `measured`, `estimated` or `mixed` per domain.
        method: the same for the whole block.
        duration_s: wall time of the block.
        cpu_time_s: CPU time of this process tree during the block.
        co2e_g: grams CO2e of `energy_j` (location-based, with `pue`).
        co2e_lower_g, co2e_upper_g: bounds of `co2e_g`.
        intensity: the grid intensity used, with its provenance.
        pue: the power usage effectiveness applied.
        started_at, ended_at: wall-clock times (seconds since the epoch, UTC).
        problems: what went wrong while metering, if anything.
        done: True once the block has ended and the figures are final.
    """

    label: str | None = None
    energy_j: float = 0.0
    energy_lower_j: float = 0.0
    energy_upper_j: float = 0.0
    host_energy_j: float = 0.0
    by_domain: dict[str, float] = field(default_factory=dict)
    host_by_domain: dict[str, float] = field(default_factory=dict)
    detail_j: dict[str, float] = field(default_factory=dict)
    methods: dict[str, BlockMethod] = field(default_factory=dict)
    method: BlockMethod = "estimated"
    duration_s: float = 0.0
    cpu_time_s: float = 0.0
    co2e_g: float = 0.0
    co2e_lower_g: float = 0.0
    co2e_upper_g: float = 0.0
    intensity: Intensity | None = None
    pue: float = 1.0
    started_at: float = 0.0
    ended_at: float = 0.0
    problems: list[str] = field(default_factory=list)
    done: bool = False
    usage: Usage | None = field(default=None, repr=False)

    def fill(self, usage: Usage, intensity: Intensity, pue: float) -> None:
        """Set every figure from a finished block's usage."""
        self.usage = usage
        self.energy_j = usage.energy_j
        self.energy_lower_j = usage.energy_lower_j
        self.energy_upper_j = usage.energy_upper_j
        self.host_energy_j = usage.host_energy_j
        self.by_domain = usage.by_domain
        self.host_by_domain = usage.host_by_domain
        self.detail_j = usage.detail_j
        self.methods = usage.methods
        self.method = usage.method
        self.duration_s = usage.duration_s
        self.cpu_time_s = usage.subject_cpu_s
        self.intensity = intensity
        self.pue = pue
        self.co2e_g = co2e_g(usage.energy_j, intensity.g_per_kwh, pue)
        self.co2e_lower_g = co2e_g(usage.energy_lower_j, intensity.g_per_kwh, pue)
        self.co2e_upper_g = co2e_g(usage.energy_upper_j, intensity.g_per_kwh, pue)
        self.problems.extend(p for p in usage.end.problems if p not in usage.start.problems)
        self.done = True

    def __str__(self) -> str:
        label = f"{self.label}: " if self.label else ""
        return (
            f"{label}{self.energy_j:.3g} J, {self.co2e_g:.3g} g CO2e, {self.method}, "
            f"{self.duration_s:.3g} s"
        )


class track:  # noqa: N801 - a lower-case name, as a function would have, reads best here
    """Meter a block as a context manager, or every call of a function as a decorator.

    The most recent finished measurement is kept in `last` (on the decorated function
    too), which helps when the block ended with an exception.

    Args:
        label: a name for the block, kept with the measurement.
        zone: the grid zone for CO2e; `CARBONBOOK_ZONE`, a cloud region variable, or
            the world average when not given.
        sampler: the sampler to read; the process's shared sampler when None.
    """

    def __init__(
        self,
        label: str | None = None,
        *,
        zone: str | None = None,
        sampler: Sampler | None = None,
    ) -> None:
        self.label = label
        self.zone = zone
        self._sampler = sampler
        self._stack: list[tuple[Measurement, Snapshot | None]] = []
        self.last: Measurement | None = None

    def _get_sampler(self) -> Sampler:
        if self._sampler is not None:
            return self._sampler
        from carbonbook.session import shared_sampler

        return shared_sampler()

    def __enter__(self) -> Measurement:
        measurement = Measurement(label=self.label, started_at=time.time())
        start: Snapshot | None = None
        try:
            start = self._get_sampler().snapshot()
        except Exception as exc:
            logger.warning("carbonbook could not start metering: %s", exc, exc_info=True)
            measurement.problems.append(f"metering could not start: {exc}")
        self._stack.append((measurement, start))
        return measurement

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        measurement, start = self._stack.pop()
        self.last = measurement
        measurement.ended_at = time.time()
        if start is None:
            measurement.duration_s = measurement.ended_at - measurement.started_at
            measurement.done = True
            return
        try:
            end = self._get_sampler().snapshot()
            usage = usage_between(start, end)
            zone = resolve_zone(self.zone).zone
            measurement.fill(usage, embedded_intensity(zone), embedded_pue(zone))
        except Exception as error:
            logger.warning("carbonbook could not finish metering: %s", error, exc_info=True)
            measurement.problems.append(f"metering could not finish: {error}")
            measurement.duration_s = measurement.ended_at - measurement.started_at
            measurement.done = True

    def __call__(self, func: Callable[P, R]) -> Callable[P, R]:
        """Decorate `func` so that each call is metered; the last is kept in `.last`."""

        @functools.wraps(func)
        def metered(*args: P.args, **kwargs: P.kwargs) -> R:
            block = track(
                self.label or func.__qualname__, zone=self.zone, sampler=self._sampler
            )
            with block as measurement:
                try:
                    return func(*args, **kwargs)
                finally:
                    metered.last = measurement  # type: ignore[attr-defined]

        metered.last = None  # type: ignore[attr-defined]
        return metered
