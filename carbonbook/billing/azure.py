"""Azure Cost Management exports (CSV) and CCF's classification of consumption rows.

Two header conventions are read: the older Enterprise Agreement names (`MeterCategory`,
`MeterName`, `UnitOfMeasure`, `Quantity`, `Date` ...) and the current Microsoft Customer
Agreement / actual-cost names (`meterCategory`, `meterName`, `unitOfMeasure`, `quantity`,
`date` ...). A line covers one day (the export has no end time).

CCF's Azure code reads the meter category (service), meter name (usage type), unit of
measure, quantity, cost, resource location, subscription and date of a row, and nothing
else: the VM size is the meter name itself (`D2s v3`, with ` Spot` removed and anything
after a `/` dropped), so `MeterSubCategory` and `AdditionalInfo` are not read.

`classify` decides, for one distinct (meter category, meter name, unit), what CCF does
with such a row, per unit of quantity (or per line, for managed disks and registries),
so that the per-unit figures times the summed quantity reproduce CCF's numbers. CCF's
quirks are kept: the unit string only classifies a row (`1000 Hours` is not multiplied
out), GB/Month storage is taken as GB/1000x24 TB-hours, managed-disk and registry rows
use their tier size and ignore the quantity, and PUE is 1.185 in every region.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Sequence
from functools import cache
from importlib import resources

import polars as pl

from carbonbook.billing import ccf
from carbonbook.billing.ccf import InstanceType
from carbonbook.billing.classification import Classification
from carbonbook.billing.classification import number_text as _num
from carbonbook.billing.frame import CLASS_SCHEMA, class_row
from carbonbook.billing.source import Convention

__all__ = [
    "CONVENTIONS",
    "LINE_ITEM_TYPES",
    "PROVIDER",
    "RATIO_BY",
    "RATIO_EMBODIED",
    "Classification",
    "classes",
    "classify",
    "detect",
    "prepare",
]

PROVIDER = "azure"
# CCF estimates every consumption row it is given; exports carry no line item type it reads.
LINE_ITEM_TYPES: tuple[str, ...] | None = None
# CCF's Azure code scales unknown usage by kWh per unit of quantity, embodied included.
RATIO_BY = "usage_amount"
RATIO_EMBODIED = True

_SERIES = "VIRTUAL_MACHINE_TYPE_SERIES_MAPPING"
_VCPU_MEMORY = "VIRTUAL_MACHINE_TYPE_VCPU_MEMORY_MAPPING"
_CONSTRAINED = "VIRTUAL_MACHINE_TYPE_CONSTRAINED_VCPU_CAPABLE_MAPPING"
_SSD_TIER = re.compile(r"(P|E)\d{1,2}")
_GB_SECOND_UNITS = ("1 GB Second", "50000 GB Seconds")

CONVENTIONS: tuple[Convention, ...] = (
    Convention(
        name="Azure EA cost export (MeterCategory headers)",
        marker="MeterCategory",
        columns={
            "service": ("MeterCategory",),
            "usage_type": ("MeterName",),
            "unit": ("UnitOfMeasure",),
            "region": ("ResourceLocation",),
            "account": ("SubscriptionId", "SubscriptionGuid"),
            "usage_amount": ("Quantity", "ConsumedQuantity", "UsageQuantity"),
            "cost": ("CostInBillingCurrency", "Cost", "PreTaxCost"),
            "start": ("Date", "UsageDateTime"),
        },
        period="1d",
    ),
    Convention(
        name="Azure MCA / actual-cost export (meterCategory headers)",
        marker="meterCategory",
        columns={
            "service": ("meterCategory",),
            "usage_type": ("meterName",),
            "unit": ("unitOfMeasure",),
            "region": ("resourceLocation",),
            "account": ("subscriptionId", "subscriptionGuid"),
            "usage_amount": ("quantity",),
            "cost": ("costInBillingCurrency", "cost", "pretaxCost"),
            "start": ("date",),
        },
        period="1d",
    ),
)


def detect(columns: Sequence[str]) -> Convention | None:
    """The Azure convention whose marker column is in `columns`, or None."""
    present = set(columns)
    for convention in CONVENTIONS:
        if convention.marker in present:
            return convention
    return None


def prepare(rows: pl.DataFrame) -> pl.DataFrame:
    """Give each line CCF's canonical region name (`US East` -> `EastUS`).

    A location CCF does not know keeps its own name, so that the estimate reports it as
    estimated with CCF's `Unknown` grid factor (CCF itself renames it `Unknown`).
    """
    return rows.with_columns(pl.col("region").replace(_region_aliases()))


@cache
def _region_aliases() -> dict[str, str]:
    text = resources.files("carbonbook.data").joinpath("region_aliases.csv")
    rows = csv.DictReader(text.read_text(encoding="utf-8").splitlines())
    return {r["alias"]: r["canonical_region"] for r in rows if r["provider"] == PROVIDER}


def classify(service: str, usage_type: str, unit: str) -> Classification:
    """Classify one distinct Azure row the way CCF's consumption code does.

    Args:
        service: the meter category (`Virtual Machines`, `Storage`).
        usage_type: the meter name (`D2s v3`, `P10 LRS Disk`, `Data Transfer Out`).
        unit: the unit of measure (`1 Hour`, `1 GB/Month`, `1 GB`).

    Returns:
        The classification with per-usage-unit figures at the meter (before PUE).
    """
    table = ccf.tables()
    meter = _parse_meter(usage_type)
    if ccf.contains_word(table.patterns(PROVIDER, "unsupported_usage_type"), meter):
        return Classification("skip", unit, reason="usage type CCF does not support")
    units = _units()
    unknown = (
        ccf.contains_word(table.patterns(PROVIDER, "unknown_service"), service)
        or ccf.contains_word(table.patterns(PROVIDER, "unknown_usage_type"), meter)
        or not ccf.contains_word(tuple(units), unit)
    )
    if unknown:
        return Classification("unknown", unit)
    category = units.get(unit)
    if category == "compute":
        return _compute(service, meter, unit)
    if category == "storage":
        return _storage(service, meter, unit)
    if category == "networking":
        return _network(meter, unit)
    if category == "memory":
        return _memory(service, meter, unit)
    return Classification("skip", unit, reason=f"usage unit '{unit}' has no CCF estimate")


def _parse_meter(usage_type: str) -> str:
    if "Spot" in usage_type:
        return usage_type.replace(" Spot", "")
    return usage_type.split("/")[0]


def _compute(service: str, meter: str, unit: str) -> Classification:
    table = ccf.tables()
    instances = table.instances[PROVIDER]
    series = instances[_SERIES].get(meter)
    listed = instances[_VCPU_MEMORY].get(meter)
    constrained = instances[_CONSTRAINED].get(meter)
    vcpus = (
        (series.vcpus if series else None)
        or (listed.vcpus if listed else None)
        or (constrained.vcpus if constrained else None)
        or table.number(PROVIDER, "DEFAULT_VCPUS")
    )
    replication, rule = ccf.replication_factor(PROVIDER, service, meter)
    memory_gbh = _vm_memory_gb_hours(meter, series)
    coefficient = table.number(PROVIDER, "MEMORY_COEFFICIENT")
    if ccf.contains_word(table.patterns(PROVIDER, "memory_usage_type"), meter):
        # Not yet: CCF leaves these lines out of the unknown-usage ratio, because it
        # returns their memory estimate before accumulating; carbonbook counts them.
        gbh = _listed_memory_gb_hours(meter)
        gbh = memory_gbh if gbh is None else gbh
        return _memory_result(unit, gbh, coefficient, replication, rule)

    utilisation = table.number(PROVIDER, "AVG_CPU_UTILIZATION_2020")
    processors = _processors().get(meter, ())
    min_w, max_w, fallback = ccf.group_watts(PROVIDER, processors)
    cpu = ccf.compute_kwh(vcpus, min_w, max_w, utilisation_pct=utilisation, pue=1.0)
    result = Classification(
        "compute",
        unit,
        instance_type=meter,
        cpu_kwh_per_usage=cpu * replication,
        memory_kwh_per_usage=memory_gbh * coefficient * replication,
        replication=replication,
    )
    text = [
        f"instance={meter}",
        f"micro={'/'.join(processors) or 'Unknown'}{' (CCF average)' if fallback else ''}",
        f"min_w={_num(min_w)} max_w={_num(max_w)} util={_num(utilisation)}%",
        f"vcpu_h_per_usage={_num(vcpus)} rf={_num(replication)}({rule})",
    ]
    if ccf.contains_word(tuple(_gpu_types()), meter):
        gpu_type = _gpu_types().get(meter)
        count = gpu_type.gpu_count if gpu_type else table.number(PROVIDER, "DEFAULT_VCPUS")
        models = gpu_type.gpus if gpu_type else ()
        gmin, gmax, _ = ccf.group_watts(PROVIDER, models)
        gpu = ccf.compute_kwh(count, gmin, gmax, utilisation_pct=utilisation, pue=1.0)
        result.gpu_kwh_per_usage = gpu * replication
        text.append(f"gpus={count:g}x{'/'.join(models) or 'Unknown'}")
    if memory_gbh:
        text.append(f"memory_gbh_per_usage={_num(memory_gbh)}")
    result.embodied_t_per_usage, embodied_text = _embodied_per_hour(series, constrained)
    text.append(embodied_text)
    result.coefficients = " ".join(part for part in text if part)
    return result


def _vm_memory_gb_hours(meter: str, series: InstanceType | None) -> float:
    """GB-hours per instance-hour beyond CCF's per-chip allowance (series types only)."""
    if series is None or not series.memory_gb or not series.largest_memory_gb:
        return 0.0
    processors = _processors().get(meter, ())
    chips = series.physical_chips or math.ceil(
        (series.largest_vcpus or 1.0) / ccf.tables().number("all", "VCPUS_PER_PHYSICAL_CHIP")
    )
    return ccf.memory_gb_hours(
        physical_chips=chips,
        largest_memory_gb=series.largest_memory_gb,
        gb_per_chip=ccf.group_memory_gb_per_chip(PROVIDER, processors),
        instance_memory_gb=series.memory_gb,
        hours=1.0,
    )


def _listed_memory_gb_hours(meter: str) -> float | None:
    """GB-hours per unit for a meter named exactly in CCF's memory list, else None."""
    if meter not in ccf.tables().patterns(PROVIDER, "memory_usage_type"):
        return None
    if "Cache" not in meter:
        return 1.0
    return _cache_gb().get(meter.split(" ")[0], math.nan)


def _embodied_per_hour(
    series: InstanceType | None, constrained: InstanceType | None
) -> tuple[float, str]:
    vcpus = (series.vcpus if series else None) or (constrained.vcpus if constrained else None)
    server_t = (series.embodied_t if series else None) or (
        constrained.embodied_t if constrained else None
    )
    if series is not None:
        largest = series.largest_vcpus
    else:
        largest = constrained.largest_vcpus if constrained else None
    if not vcpus or not server_t or not largest:
        return 0.0, ""
    per_hour = ccf.embodied_t_co2e(
        server_t=server_t,
        hours=1.0,
        vcpus=vcpus,
        largest_vcpus=largest,
        lifespan_h=ccf.tables().number(PROVIDER, "SERVER_EXPECTED_LIFESPAN"),
    )
    return per_hour, f"embodied_t={_num(server_t)} largest_vcpus={_num(largest)}"


def _memory(service: str, meter: str, unit: str) -> Classification:
    table = ccf.tables()
    replication, rule = ccf.replication_factor(PROVIDER, service, meter)
    if unit in _GB_SECOND_UNITS:
        gbh = 1 / table.number(PROVIDER, "GB_SECONDS_TO_GB_HOURS_DIVISOR")
    elif unit == "1 GB Hour":
        gbh = 1.0
    else:
        listed = _listed_memory_gb_hours(meter)
        series = table.instances[PROVIDER][_SERIES].get(meter)
        gbh = _vm_memory_gb_hours(meter, series) if listed is None else listed
    coefficient = table.number(PROVIDER, "MEMORY_COEFFICIENT")
    return _memory_result(unit, gbh, coefficient, replication, rule)


def _memory_result(
    unit: str, gbh: float, coefficient: float, replication: float, rule: str
) -> Classification:
    if math.isnan(gbh):
        return Classification("skip", unit, reason="cache size CCF does not list")
    return Classification(
        "memory",
        unit,
        memory_kwh_per_usage=gbh * coefficient * replication,
        replication=replication,
        coefficients=(
            f"kwh_per_gbh={_num(coefficient)} gbh_per_usage={_num(gbh)} "
            f"rf={_num(replication)}({rule})"
        ),
    )


def _storage(service: str, meter: str, unit: str) -> Classification:
    table = ccf.tables()
    ssd_sizes, hdd_sizes = _sizes("ssd_managed_disk_gb"), _sizes("hdd_managed_disk_gb")
    registry = _sizes("container_registry_gb")
    ssd = ccf.contains_word(tuple(ssd_sizes), meter) or ccf.contains_word(
        table.patterns(PROVIDER, "ssd_storage_usage_type"), meter
    )
    hdd = ccf.contains_word(tuple(hdd_sizes), meter)
    managed = ccf.contains_word((*ssd_sizes, *hdd_sizes), meter)
    daily_tb = table.number("all", "HOURS_PER_DAY") / table.number("all", "GB_PER_TB_DECIMAL")
    per_line, size_gb = False, None
    if unit == "1 TB/Month":
        tb_per_usage, basis = table.number(PROVIDER, "TB_MONTH_TO_TB_HOURS_FACTOR"), "tb*24"
    elif (ssd and managed) or (hdd and managed) or _registry_tier(meter, registry):
        if ssd and managed:
            found = _SSD_TIER.search(meter)
            size_gb = ssd_sizes.get(found.group(0)) if found else None
        elif hdd and managed:
            size_gb = hdd_sizes.get(re.sub(r"Disks?", "", meter, count=1).strip())
        else:
            size_gb = registry.get(meter.replace(" Registry Unit", "", 1))
        if size_gb is None:
            return Classification("skip", unit, reason="disk or registry tier CCF cannot size")
        per_line, tb_per_usage, basis = (
            True,
            size_gb * daily_tb,
            f"tier_gb={_num(size_gb)}",
        )
    else:
        tb_per_usage, basis = daily_tb, "gb/1000*24"
    if ssd:
        medium, coefficient = "ssd", table.number(PROVIDER, "SSDCOEFFICIENT")
    elif hdd:
        medium, coefficient = "hdd", table.number(PROVIDER, "HDDCOEFFICIENT")
    else:
        return Classification("skip", unit, reason="storage unit but neither SSD nor HDD meter")
    replication, rule = ccf.replication_factor(PROVIDER, service, meter)
    return Classification(
        "storage",
        unit,
        storage_kwh_per_tbh=coefficient * replication / 1000,
        tb_per_usage=tb_per_usage,
        medium=medium,
        replication=replication,
        per_line=per_line,
        coefficients=(
            f"medium={medium} wh_per_tbh={_num(coefficient)} {basis} "
            f"tbh_per_{'line' if per_line else 'usage'}={_num(tb_per_usage)} "
            f"rf={_num(replication)}({rule})"
        ),
    )


def _registry_tier(meter: str, registry: dict[str, float]) -> bool:
    return ccf.contains_word(tuple(f"{tier} Registry Unit" for tier in registry), meter)


def _network(meter: str, unit: str) -> Classification:
    table = ccf.tables()
    listed = ccf.contains_word(table.patterns(PROVIDER, "networking_usage_type"), meter)
    if not listed or "To Any" in meter:
        return Classification(
            "skip", unit, reason="networking unit but not a CCF networking meter"
        )
    gb_per_usage = table.number("all", "GB_PER_TB_DECIMAL") if "TB" in unit else 1.0
    kwh = table.number(PROVIDER, "NETWORKING_COEFFICIENT")
    return Classification(
        "network",
        unit,
        network_kwh_per_usage=kwh * gb_per_usage,
        coefficients=f"kwh_per_gb={_num(kwh)} gb_per_usage={_num(gb_per_usage)}",
    )


@cache
def _units() -> dict[str, str]:
    rows = ccf.tables().classification[PROVIDER]["usage_unit"]
    return {pattern: value for pattern, value in rows if value}


@cache
def _sizes(rule_kind: str) -> dict[str, float]:
    rows = ccf.tables().classification[PROVIDER][rule_kind]
    return {pattern: float(value) for pattern, value in rows}


@cache
def _cache_gb() -> dict[str, float]:
    return _sizes("cache_memory_gb")


@cache
def _processors() -> dict[str, tuple[str, ...]]:
    """Instance type -> microarchitectures, matched case-sensitively as CCF does."""
    found: dict[str, tuple[str, ...]] = {}
    for instances in ccf.tables().instances[PROVIDER].values():
        for name, it in instances.items():
            if it.microarchitectures:
                found[name] = it.microarchitectures
    return found


@cache
def _gpu_types() -> dict[str, InstanceType]:
    found: dict[str, InstanceType] = {}
    for instances in ccf.tables().instances[PROVIDER].values():
        found.update({name: it for name, it in instances.items() if it.gpu_count})
    return found


def classes(rows: pl.DataFrame, corrections: Sequence[str]) -> pl.DataFrame:
    """Classify every distinct (meter category, meter name, unit) of the summed lines.

    Args:
        rows: summed line items (`carbonbook.billing.source.Usage.rows`).
        corrections: carbonbook corrections; none applies to Azure yet.

    Returns:
        One row per distinct key, in `carbonbook.billing.frame.CLASS_SCHEMA` plus
        `per_line`.
    """
    distinct = rows.select("service", "usage_type", "unit").unique()
    records = []
    for service, usage_type, unit in distinct.iter_rows():
        found = classify(service, usage_type, unit)
        records.append(
            class_row(
                found,
                service=service,
                usage_type=usage_type,
                unit=unit,
                _vcpu_key=-1.0,
                per_line=found.per_line,
            )
        )
    return pl.DataFrame(records, schema={**CLASS_SCHEMA, "per_line": pl.Boolean})
