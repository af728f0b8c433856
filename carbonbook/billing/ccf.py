"""Cloud Carbon Footprint's coefficients, read once from the tables shipped in carbonbook/data.

The tables (see `carbonbook/data/README-ccf.md`) hold what CCF's application code computes,
quirks included. This module only looks values up and applies CCF's rules for combining
them; it knows nothing about any billing export format.

Units: watts per vCPU (or per GPU), GB of memory per physical chip, Wh per TB-hour for
storage, kWh per GB-hour for memory, kWh per GB for networking, tonnes CO2e per kWh for
grid factors, tonnes CO2e per server for embodied emissions, hours for lifespans.
"""

from __future__ import annotations

import csv
import logging
import math
import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources

__all__ = [
    "CcfTables",
    "InstanceType",
    "ReplicationRule",
    "compute_kwh",
    "contains_word",
    "embodied_t_co2e",
    "group_memory_gb_per_chip",
    "group_watts",
    "memory_gb_hours",
    "replication_factor",
    "storage_kwh",
    "tables",
]

logger = logging.getLogger(__name__)

UNKNOWN = "Unknown"
# CCF takes the median instead of the mean when one of these outliers is in the group.
_MEDIAN_MICROARCHITECTURES = ("Sandy Bridge", "Ivy Bridge")


@dataclass(frozen=True)
class InstanceType:
    """One row of instance_types.csv: an instance type and its family's largest member.

    Attributes:
        name: the instance type (`m5.large`).
        family: the family key CCF indexes by (`m5`).
        vcpus: vCPUs of this type, or None.
        memory_gb: memory of this type in GB, or None.
        embodied_t: embodied emissions of the whole server in tonnes CO2e, or None.
        largest_vcpus: vCPUs of the family's last (largest) entry.
        largest_memory_gb: memory of the family's last entry, in GB.
        physical_chips: physical chips CCF assumes for the family.
        microarchitectures: the processors CCF maps the type to; empty when unmapped.
        gpu_count: GPUs of the type (0 for none).
        gpus: the GPU models CCF maps the type to.
    """

    name: str
    family: str
    vcpus: float | None
    memory_gb: float | None
    embodied_t: float | None
    largest_vcpus: float | None
    largest_memory_gb: float | None
    physical_chips: float | None
    microarchitectures: tuple[str, ...]
    gpu_count: float
    gpus: tuple[str, ...]


@dataclass(frozen=True)
class ReplicationRule:
    """One replication-factor rule; rules of a service are tried in priority order."""

    service: str
    priority: int
    patterns: tuple[str, ...]
    match_method: str
    factor: float
    constant_name: str


@dataclass
class CcfTables:
    """Every CCF table carbonbook uses, indexed for lookups.

    Attributes:
        cpu_watts: provider -> microarchitecture -> (min W, max W) per vCPU or per GPU.
        cpu_average: provider -> (min W, max W, GB per chip) of the `_average` row.
        memory_per_chip: provider -> microarchitecture -> GB per physical chip.
        pue_default: provider -> PUE.
        pue_region: (provider, region) -> PUE where CCF has a regional figure (GCP).
        grid: (provider, region) -> t CO2e per kWh (`default` set).
        constants: (provider, constant) -> value text.
        instances: provider -> source table -> instance type -> InstanceType.
        processors: provider -> instance type -> microarchitectures.
        replication: provider -> service -> rules in priority order.
        classification: provider -> rule kind -> [(pattern, value)] in file order.
    """

    cpu_watts: dict[str, dict[str, tuple[float, float]]] = field(default_factory=dict)
    cpu_average: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    memory_per_chip: dict[str, dict[str, float]] = field(default_factory=dict)
    pue_default: dict[str, float] = field(default_factory=dict)
    pue_region: dict[tuple[str, str], float] = field(default_factory=dict)
    grid: dict[tuple[str, str], float] = field(default_factory=dict)
    constants: dict[tuple[str, str], str] = field(default_factory=dict)
    instances: dict[str, dict[str, dict[str, InstanceType]]] = field(default_factory=dict)
    processors: dict[str, dict[str, tuple[str, ...]]] = field(default_factory=dict)
    replication: dict[str, dict[str, list[ReplicationRule]]] = field(default_factory=dict)
    classification: dict[str, dict[str, list[tuple[str, str]]]] = field(default_factory=dict)

    def number(self, provider: str, name: str) -> float:
        """A numeric constant of storage_and_network.csv (provider row, else the `all` row)."""
        text = self.constants.get((provider, name), self.constants.get(("all", name)))
        if text is None:
            raise KeyError(f"CCF constant {name} is not in storage_and_network.csv")
        return float(text)

    def grid_factor(self, provider: str, region: str) -> tuple[float, str]:
        """CCF's grid factor for a region in t CO2e/kWh, and the region key it came from.

        CCF looks the region up and falls back to its `Unknown` value when the region is
        missing or its factor is 0 (`factor[region] || factor['Unknown']`).
        """
        value = self.grid.get((provider, region))
        if value:
            return value, region
        return self.grid[(provider, UNKNOWN)], UNKNOWN

    def pue(self, provider: str, region: str = "") -> float:
        """CCF's PUE for a region: GCP's regional figure, else the provider's default.

        AWS and Azure have no regional figures, so their region is ignored.
        """
        return self.pue_region.get((provider, region), self.pue_default[provider])

    def patterns(self, provider: str, rule_kind: str) -> list[str]:
        """The patterns of one rule kind of usage_classification_<provider>.csv, in order."""
        return [pattern for pattern, _ in self.classification[provider].get(rule_kind, [])]


def _read(name: str) -> list[dict[str, str]]:
    text = resources.files("carbonbook.data").joinpath(name).read_text(encoding="utf-8")
    return list(csv.DictReader(text.splitlines()))


def _number(text: str) -> float | None:
    return float(text) if text.strip() else None


def _names(text: str) -> tuple[str, ...]:
    return tuple(part for part in text.split(";") if part) if text else ()


@cache
def tables() -> CcfTables:
    """Load the CCF tables once per process and return them."""
    loaded = CcfTables()
    for row in _read("cpu_power_coefficients.csv") + _read("gpu_power_coefficients.csv"):
        provider = row["provider"]
        name = row.get("microarchitecture") or row["gpu"]
        low = float(row.get("min_watts_per_vcpu") or row["min_watts"])
        high = float(row.get("max_watts_per_vcpu") or row["max_watts"])
        chip_gb = _number(row.get("gb_per_physical_chip") or "")
        if name == "_average":
            loaded.cpu_average[provider] = (low, high, chip_gb if chip_gb else math.nan)
            continue
        loaded.cpu_watts.setdefault(provider, {})[name] = (low, high)
        if chip_gb is not None:
            loaded.memory_per_chip.setdefault(provider, {})[name] = chip_gb
    for row in _read("pue.csv"):
        if not row["region"]:
            loaded.pue_default[row["provider"]] = float(row["pue"])
        else:
            loaded.pue_region[(row["provider"], row["region"])] = float(row["pue"])
    for row in _read("grid_emission_factors.csv"):
        if row["set"] == "default":
            loaded.grid[(row["provider"], row["region"])] = float(row["t_co2e_per_kwh"])
    for row in _read("storage_and_network.csv"):
        loaded.constants[(row["provider"], row["constant"])] = row["value"]
    for row in _read("instance_types.csv"):
        _add_instance(loaded, row)
    for row in _read("replication_factors.csv"):
        rule = ReplicationRule(
            service=row["service"],
            priority=int(row["priority"]),
            patterns=tuple(p for p in row["usage_type_pattern"].split("|") if p),
            match_method=row["match_method"],
            factor=float(row["replication_factor"]),
            constant_name=row["constant_name"],
        )
        loaded.replication.setdefault(row["provider"], {}).setdefault(rule.service, []).append(
            rule
        )
    for rules in loaded.replication.values():
        for service_rules in rules.values():
            service_rules.sort(key=lambda rule: rule.priority)
    for name in (f"usage_classification_{p}.csv" for p in ("aws", "gcp", "azure")):
        for row in _read(name):
            kinds = loaded.classification.setdefault(row["provider"], {})
            kinds.setdefault(row["rule_kind"], []).append((row["pattern"], row["value"]))
    logger.debug("loaded CCF tables")
    return loaded


def _add_instance(loaded: CcfTables, row: dict[str, str]) -> None:
    provider, table = row["provider"], row["source_table"]
    micro = tuple(m for m in _names(row["microarchitectures"]) if m != UNKNOWN)
    instance = InstanceType(
        name=row["instance_type"],
        family=row["family"],
        vcpus=_number(row["vcpus"]),
        memory_gb=_number(row["memory_gb"]),
        embodied_t=_number(row["embodied_t_co2e"]),
        largest_vcpus=_number(row["family_largest_vcpus"]),
        largest_memory_gb=_number(row["family_largest_memory_gb"]),
        physical_chips=_number(row["physical_chips"]),
        microarchitectures=micro,
        gpu_count=_number(row["gpu_count"]) or 0.0,
        gpus=_names(row["gpus"]),
    )
    loaded.instances.setdefault(provider, {}).setdefault(table, {})[instance.name] = instance
    mapped = table in ("EC2_INSTANCE_TYPES", "INSTANCE_TYPE_COMPUTE_PROCESSOR_MAPPING")
    if mapped and micro:
        loaded.processors.setdefault(provider, {})[instance.name] = micro


def group_watts(
    provider: str, names: Sequence[str], *, table: CcfTables | None = None
) -> tuple[float, float, bool]:
    """CCF's min and max watts for a group of microarchitectures (or GPU models).

    The mean of the members' values; the median when Sandy Bridge or Ivy Bridge is a
    member; the provider's `_average` row when the group is empty, `Unknown`, or has a
    member without a value.

    Args:
        provider: `aws`, `gcp` or `azure`.
        names: the microarchitectures (or GPU models) of one instance type.
        table: the tables to use (default: the shipped ones).

    Returns:
        (min watts, max watts, whether the `_average` fallback was used).
    """
    loaded = table or tables()
    watts = loaded.cpu_watts[provider]
    if not names or any(name not in watts for name in names):
        low, high, _ = loaded.cpu_average[provider]
        return low, high, True
    pick = _median if any(n in _MEDIAN_MICROARCHITECTURES for n in names) else _mean
    return pick([watts[n][0] for n in names]), pick([watts[n][1] for n in names]), False


def group_memory_gb_per_chip(
    provider: str, names: Sequence[str], *, table: CcfTables | None = None
) -> float:
    """CCF's GB of memory per physical chip for a group of microarchitectures (the mean).

    Falls back to the provider's `_average` row like `group_watts` does.
    """
    loaded = table or tables()
    memory = loaded.memory_per_chip.get(provider, {})
    if not names or any(name not in memory for name in names):
        return loaded.cpu_average[provider][2]
    return _mean([memory[n] for n in names])


def _mean(values: list[float]) -> float:
    total = values[0]
    for value in values[1:]:
        total += value
    return total / len(values)


def _median(values: list[float]) -> float:
    return float(statistics.median(values))


def compute_kwh(
    vcpu_hours: float,
    min_w: float,
    max_w: float,
    *,
    utilisation_pct: float,
    pue: float,
    replication: float = 1.0,
) -> float:
    """CCF's compute energy in kWh, PUE and replication included.

    (min + utilisation/100 x (max - min)) x vCPU-hours x PUE x replication / 1000.
    """
    watts = min_w + utilisation_pct / 100 * (max_w - min_w)
    return watts * vcpu_hours * pue * replication / 1000


def memory_gb_hours(
    *,
    physical_chips: float,
    largest_memory_gb: float,
    gb_per_chip: float,
    instance_memory_gb: float,
    hours: float,
) -> float:
    """CCF's memory GB-hours beyond what its power figures already cover (0 if none).

    Each physical chip of the family's largest type holds largest memory / chips GB; the
    part above CCF's per-chip allowance counts, scaled by this type's share of the
    largest type's memory.
    """
    per_chip_gb = largest_memory_gb / physical_chips
    if per_chip_gb - gb_per_chip <= 0:
        return 0.0
    share = largest_memory_gb / instance_memory_gb
    return (per_chip_gb - gb_per_chip) / share * hours


def storage_kwh(
    tb_hours: float, coefficient_wh: float, *, pue: float, replication: float
) -> float:
    """CCF's storage energy in kWh: TB-hours x Wh per TB-hour x PUE x replication / 1000."""
    return tb_hours * coefficient_wh * pue * replication / 1000


def embodied_t_co2e(
    *, server_t: float, hours: float, vcpus: float, largest_vcpus: float, lifespan_h: float
) -> float:
    """CCF's embodied emissions in tonnes for `hours` of one instance.

    CCF's AWS and Azure code passes instance-hours / vCPUs as the time, so the vCPU terms
    cancel: server tonnes x hours / (lifespan x largest vCPUs).
    """
    return server_t * ((hours / vcpus) / lifespan_h) * (vcpus / largest_vcpus)


def contains_word(patterns: Sequence[str], text: str) -> bool:
    """CCF's `containsAny`: a pattern found between word boundaries (`.` is a wildcard)."""
    return _word_regex(tuple(patterns)).search(text) is not None


@cache
def _word_regex(patterns: tuple[str, ...]) -> re.Pattern[str]:
    # One alternation of every pattern; CCF builds `\b<pattern>\b` for each in turn.
    return re.compile("|".join(rf"\b{pattern}\b" for pattern in patterns) or "(?!)", re.ASCII)


def replication_factor(provider: str, service: str, usage_type: str) -> tuple[float, str]:
    """The replication factor CCF applies to a row, and the constant it comes from."""
    rules = tables().replication.get(provider, {})
    for rule in rules.get(service, []) + rules.get("*", []):
        if _rule_matches(rule, usage_type):
            return rule.factor, rule.constant_name
    return 1.0, "DEFAULT"


def _rule_matches(rule: ReplicationRule, usage_type: str) -> bool:
    if rule.match_method == "substring":
        return any(pattern in usage_type for pattern in rule.patterns)
    if rule.match_method == "word_boundary_regex":
        return contains_word(rule.patterns, usage_type)
    return True
