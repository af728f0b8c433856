"""A meter that estimates CPU and memory energy where no counter can be read.

CPU: over an interval of `dt` seconds, the machine's utilisation is
`u = machine_busy_s / (dt * logical_cpus)`, clamped to [0, 1], and the host draws
`logical_cpus * (min_w + u * (max_w - min_w))` watts, with `min_w` and `max_w` per
logical CPU from `carbonbook.meters.cpumodel`. The subject is attributed its share of
the machine's busy CPU time (`Interval.cpu_share`), the same rule as for measured RAPL
energy. The bounds use the model's lower and upper coefficients.

Memory (DRAM): Cloud Carbon Footprint's memory coefficient, 0.000392 kWh per GB-hour
(0.392 W per GB, 1 GB = 2**30 bytes), times the memory in use on the machine (host) or
the subject's resident set (attributed). CCF gives one value for every machine, while
the power of a gigabyte of DIMM varies widely with its generation and how busy it is,
so the bounds are 0.5x and 1.5x of the point value.

Units: joules (`_j`), watts (`_w`), seconds (`_s`), bytes (`_bytes`), gigabytes (`_gb`).
"""

from __future__ import annotations

import csv
import functools
import io
import logging
from collections.abc import Collection, Mapping, Sequence
from importlib.resources import files
from typing import Literal

from carbonbook.meters.base import DomainInfo, EnergyDelta, Interval
from carbonbook.meters.cpumodel import CpuPowerModel

__all__ = [
    "EstimateDomain",
    "EstimateMeter",
    "ccf_memory_w_per_gb",
    "estimate_bounds_ratio",
]

logger = logging.getLogger(__name__)

EstimateDomain = Literal["cpu", "dram"]

BYTES_PER_GB = 2**30
DRAM_LOWER_FACTOR = 0.5
DRAM_UPPER_FACTOR = 1.5
_DOMAINS: tuple[EstimateDomain, ...] = ("cpu", "dram")


@functools.cache
def ccf_memory_w_per_gb() -> float:
    """CCF's memory coefficient (aws `MEMORY_COEFFICIENT`) in watts per gigabyte.

    CCF states it in kWh per GB-hour; one kWh per hour is 1000 W.

    Raises:
        RuntimeError: the shipped storage_and_network.csv has no such row.
    """
    text = (
        files("carbonbook.data").joinpath("storage_and_network.csv").read_text(encoding="utf-8")
    )
    for row in csv.DictReader(io.StringIO(text)):
        if row["provider"] == "aws" and row["constant"] == "MEMORY_COEFFICIENT":
            memory_kwh_per_gb_h = float(row["value"])
            return memory_kwh_per_gb_h * 1000.0
    raise RuntimeError(
        "storage_and_network.csv has no aws MEMORY_COEFFICIENT; reinstall carbonbook"
    )


def estimate_bounds_ratio(model: CpuPowerModel, domain: EstimateDomain = "cpu") -> float:
    """The relative half-width of an estimate's bounds, for a display like "estimated ±35%".

    Args:
        model: the CPU power model of the estimate.
        domain: `cpu` (the bounds at full load, the widest) or `dram`.

    Returns:
        The larger distance from the point value to either bound, relative to it.
    """
    if domain == "dram":
        return max(1.0 - DRAM_LOWER_FACTOR, DRAM_UPPER_FACTOR - 1.0)
    return model.full_load_bounds_ratio


class EstimateMeter:
    """Estimates the energy of the `cpu` and `dram` domains from CPU time and memory.

    Args:
        model: the CPU power coefficients (see `cpumodel.resolve_power_model`).
        cover: the domains to estimate; leave out those a counter measures (on AMD RAPL
            without a dram zone, `cover=("dram",)`).
        memory_w_per_gb: watts per gigabyte of memory in use; None takes CCF's value.

    Raises:
        ValueError: `cover` is empty or names another domain, or the memory power is
            negative.
    """

    name: str = "estimate"

    def __init__(
        self,
        model: CpuPowerModel,
        *,
        # The tuple alternative lets mypy read a literal such as ("dram",) as domains.
        cover: tuple[EstimateDomain, ...] | Collection[EstimateDomain] = _DOMAINS,
        memory_w_per_gb: float | None = None,
    ) -> None:
        unknown = set(cover) - set(_DOMAINS)
        if unknown or not cover:
            raise ValueError(
                f"EstimateMeter cover must be a non-empty subset of {list(_DOMAINS)}, "
                f"got {sorted(cover)}"
            )
        if memory_w_per_gb is None:
            memory_w_per_gb = ccf_memory_w_per_gb()
        if memory_w_per_gb < 0:
            raise ValueError(f"memory_w_per_gb must be zero or positive, got {memory_w_per_gb}")

        self.model = model
        self.cover: tuple[EstimateDomain, ...] = tuple(d for d in _DOMAINS if d in cover)
        self.memory_w_per_gb = memory_w_per_gb
        self._domains = tuple(self._domain_info(d) for d in self.cover)

    def _domain_info(self, domain: EstimateDomain) -> DomainInfo:
        if domain == "cpu":
            bounds = round(100 * estimate_bounds_ratio(self.model, "cpu"))
            source = f"estimated from CPU time: {self.model.explanation}"
            notes: tuple[str, ...] = (
                f"bounds ±{bounds}% at full load; attributed by share of busy CPU time",
            )
        else:
            source = (
                f"estimated from memory in use: {self.memory_w_per_gb:g} W per GB (CCF memory "
                "coefficient)"
            )
            notes = ("bounds 0.5x to 1.5x: DIMM power per GB varies with generation and load",)
        return DomainInfo(
            name=domain, method="estimated", meter=self.name, source=source, notes=notes
        )

    def domains(self) -> Sequence[DomainInfo]:
        """The estimated domains, in the order `cpu`, `dram`."""
        return self._domains

    def prime(self, now_s: float) -> None:
        """Nothing to read: an estimate has no counter to difference against."""
        logger.debug("estimate meter primed at %.3f s for %s", now_s, ", ".join(self.cover))

    def read(self, interval: Interval) -> Mapping[str, EnergyDelta]:
        """Estimate the energy of each covered domain over one interval.

        Args:
            interval: what the machine and the subject did; an interval of zero or
                negative duration gives zero energy.

        Returns:
            One delta per covered domain, in joules.
        """
        duration_s = interval.duration_s
        if duration_s <= 0.0:
            return {domain: EnergyDelta.zero() for domain in self.cover}

        deltas: dict[str, EnergyDelta] = {}
        if "cpu" in self.cover:
            deltas["cpu"] = self._cpu(interval, duration_s)
        if "dram" in self.cover:
            deltas["dram"] = self._dram(interval, duration_s)
        return deltas

    def _cpu(self, interval: Interval, duration_s: float) -> EnergyDelta:
        logical_cpus = interval.logical_cpus
        if logical_cpus < 1:
            return EnergyDelta.zero()
        utilisation = interval.machine_busy_s / (duration_s * logical_cpus)
        lower_w, power_w, upper_w = self.model.w_per_vcpu(utilisation)

        host_j = logical_cpus * power_w * duration_s
        host_lower_j = logical_cpus * lower_w * duration_s
        host_upper_j = logical_cpus * upper_w * duration_s
        share = min(max(interval.cpu_share, 0.0), 1.0)
        return EnergyDelta(
            host_j=host_j,
            attributed_j=host_j * share,
            host_lower_j=host_lower_j,
            host_upper_j=host_upper_j,
            attributed_lower_j=host_lower_j * share,
            attributed_upper_j=host_upper_j * share,
        )

    def _dram(self, interval: Interval, duration_s: float) -> EnergyDelta:
        host_gb = max(interval.machine_used_bytes, 0) / BYTES_PER_GB
        subject_gb = max(interval.subject_rss_bytes, 0) / BYTES_PER_GB
        host_j = host_gb * self.memory_w_per_gb * duration_s
        attributed_j = subject_gb * self.memory_w_per_gb * duration_s
        return EnergyDelta(
            host_j=host_j,
            attributed_j=attributed_j,
            host_lower_j=host_j * DRAM_LOWER_FACTOR,
            host_upper_j=host_j * DRAM_UPPER_FACTOR,
            attributed_lower_j=attributed_j * DRAM_LOWER_FACTOR,
            attributed_upper_j=attributed_j * DRAM_UPPER_FACTOR,
        )

    def max_interval_s(self) -> float | None:
        """None: an estimate is correct over any interval."""
        return None

    def close(self) -> None:
        """Nothing to release."""
