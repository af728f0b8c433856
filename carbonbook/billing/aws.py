"""AWS Cost and Usage Reports: the two header conventions and CCF's classification of rows.

A legacy CUR names its columns `lineItem/UsageType`; CUR 2.0 and the Athena tables CCF
queries name them `line_item_usage_type`. Either is read as CSV, gzipped CSV or Parquet.

`classify` decides, for one distinct (service, usage type, pricing unit, report vCPU),
what CCF's application code does with such a row and with which coefficients, expressed
per unit of usage amount. Every figure CCF computes for an AWS row is linear in the usage
amount, so the per-unit figures times the summed amount reproduce CCF's numbers.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from functools import cache

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
    "Classification",
    "classes",
    "classify",
    "detect",
]

PROVIDER = "aws"
LINE_ITEM_TYPES: tuple[str, ...] | None = (
    "Usage",
    "DiscountedUsage",
    "SavingsPlanCoveredUsage",
)
# CCF's AWS code scales unknown usage by kWh per unit of cost.
RATIO_BY = "cost"

# The prefixes CCF strips from the part after the last ':' to find the EC2 type for vCPUs.
_VCPU_PREFIX = re.compile(r"^((db|cache|dax|dms|ml|mq|KernelGateway-ml|.+Kafka)\.)")


CONVENTIONS: tuple[Convention, ...] = (
    Convention(
        name="AWS legacy CUR (lineItem/UsageType headers)",
        marker="lineItem/UsageType",
        tag_style="legacy",
        columns={
            "line_item_type": ("lineItem/LineItemType",),
            "usage_type": ("lineItem/UsageType",),
            "unit": ("pricing/unit",),
            "service": ("lineItem/ProductCode",),
            "region": ("product/region", "product/regionCode"),
            "account": ("lineItem/UsageAccountId",),
            "vcpu": ("product/vcpu",),
            "usage_amount": ("lineItem/UsageAmount",),
            "cost": ("lineItem/BlendedCost", "lineItem/UnblendedCost"),
            "start": ("lineItem/UsageStartDate",),
            "end": ("lineItem/UsageEndDate",),
        },
        optional=frozenset({"vcpu"}),
    ),
    Convention(
        name="AWS CUR 2.0 / Athena (line_item_usage_type headers)",
        marker="line_item_usage_type",
        tag_style="athena",
        columns={
            "line_item_type": ("line_item_line_item_type",),
            "usage_type": ("line_item_usage_type",),
            "unit": ("pricing_unit",),
            "service": ("line_item_product_code",),
            "region": ("product_region", "product_region_code"),
            "account": ("line_item_usage_account_id",),
            "vcpu": ("product_vcpu",),
            "usage_amount": ("line_item_usage_amount",),
            "cost": ("line_item_blended_cost", "line_item_unblended_cost"),
            "start": ("line_item_usage_start_date",),
            "end": ("line_item_usage_end_date",),
        },
        optional=frozenset({"vcpu"}),
    ),
)


def detect(columns: Sequence[str]) -> Convention | None:
    """The AWS convention whose marker column is in `columns`, or None."""
    present = set(columns)
    for convention in CONVENTIONS:
        if convention.marker in present:
            return convention
    return None


def classify(
    service: str,
    usage_type: str,
    unit: str,
    vcpu_report: float | None,
    *,
    corrections: Sequence[str] = (),
) -> Classification:
    """Classify one distinct AWS row the way CCF's CUR code does.

    Args:
        service: `line_item_product_code` (`AmazonEC2`).
        usage_type: `line_item_usage_type` (`USE1-BoxUsage:m5.large`).
        unit: `pricing_unit` (`Hrs`).
        vcpu_report: `product_vcpu`, or None where the report has none.
        corrections: carbonbook corrections of CCF quirks to apply (see `carbonbook.billing`).

    Returns:
        The classification with per-usage-unit figures at the meter (before PUE).
    """
    table = ccf.tables()
    # CCF appends 'arge' to usage types ending in 'xl' after computing vCPU-hours; every
    # later check sees the longer name.
    typed = usage_type + "arge" if usage_type.endswith("xl") else usage_type
    if _ends_or_contains(table.patterns(PROVIDER, "unsupported_usage_type"), typed):
        return Classification("skip", unit, reason="usage type CCF does not support")

    clean_unit, scale = _clean_unit(unit, service, usage_type)
    known_units = _known_units()
    if (
        _ends_or_contains(table.patterns(PROVIDER, "unknown_usage_type"), typed)
        or clean_unit not in known_units
    ):
        return Classification("unknown", clean_unit, usage_scale=scale)

    category = known_units[clean_unit]
    replication, rule = ccf.replication_factor(PROVIDER, service, typed)
    rf_text = f"rf={_num(replication)}({rule})"
    if category in ("compute", "lambda_compute"):
        return _compute(service, usage_type, typed, clean_unit, vcpu_report, scale, corrections)
    if category == "storage":
        return _storage(service, typed, clean_unit, scale, replication, rf_text)
    if _ends_with(table.patterns(PROVIDER, "networking_usage_type"), typed) and (
        service != "AmazonCloudFront"
    ):
        kwh = table.number(PROVIDER, "NETWORKING_COEFFICIENT")
        return Classification(
            "network",
            clean_unit,
            usage_scale=scale,
            network_kwh_per_usage=kwh,
            coefficients=f"kwh_per_gb={_num(kwh)}",
        )
    return Classification(
        "skip", clean_unit, reason="GB unit but not a CCF networking usage type (or CloudFront)"
    )


def _compute(
    service: str,
    usage_type: str,
    typed: str,
    unit: str,
    vcpu_report: float | None,
    scale: float,
    corrections: Sequence[str],
) -> Classification:
    table = ccf.tables()
    is_lambda = _known_units()[unit] == "lambda_compute"
    extracted = _VCPU_PREFIX.sub("", usage_type.split(":")[-1])
    instance_type = _parse_instance_type(typed)
    if is_lambda:
        vcpu_per_usage = 1 / 3600
    else:
        vcpu_per_usage = _vcpu_per_usage(service, usage_type, extracted, vcpu_report)
    if math.isnan(vcpu_per_usage):
        return Classification(
            "skip",
            unit,
            reason="no vCPU count for this usage type",
            instance_type=instance_type,
        )

    replication, rule = ccf.replication_factor(PROVIDER, service, typed)
    utilisation = table.number(PROVIDER, "AVG_CPU_UTILIZATION_2020")
    if service == "AWSLambda":
        processors: tuple[str, ...] = ("AWS Graviton2",) if typed.endswith("-ARM") else ()
    else:
        processors = table.processors.get(PROVIDER, {}).get(instance_type, ())
    min_w, max_w, fallback = ccf.group_watts(PROVIDER, processors)
    cpu = ccf.compute_kwh(vcpu_per_usage, min_w, max_w, utilisation_pct=utilisation, pue=1.0)
    result = Classification(
        "lambda" if is_lambda else "compute",
        unit,
        usage_scale=scale,
        instance_type=instance_type,
        cpu_kwh_per_usage=cpu * replication,
        replication=replication,
    )
    text = [
        f"instance={instance_type}",
        f"micro={'/'.join(processors) or 'Unknown'}{' (CCF average)' if fallback else ''}",
        f"min_w={_num(min_w)} max_w={_num(max_w)} util={_num(utilisation)}%",
        f"vcpu_h_per_usage={_num(vcpu_per_usage)} rf={_num(replication)}({rule})",
    ]

    gpus = _ec2(extracted)
    if ccf.contains_word(_gpu_types(), typed) and gpus is not None and gpus.gpu_count:
        models = () if service == "AWSLambda" else _gpu_models(instance_type)
        gmin, gmax, _ = ccf.group_watts(PROVIDER, models)
        gpu = ccf.compute_kwh(gpus.gpu_count, gmin, gmax, utilisation_pct=utilisation, pue=1.0)
        result.gpu_kwh_per_usage = gpu * replication
        text.append(f"gpus={gpus.gpu_count:g}x{'/'.join(models) or 'Unknown'}")
    if not is_lambda:
        memory_gbh = _memory_gb_hours_per_usage(instance_type)
        coefficient = table.number(PROVIDER, "MEMORY_COEFFICIENT")
        result.memory_kwh_per_usage = memory_gbh * coefficient * replication
        if memory_gbh:
            text.append(f"memory_gbh_per_usage={_num(memory_gbh)}")
        result.embodied_t_per_usage, embodied_text = _embodied_per_usage(
            instance_type, corrections
        )
        text.append(embodied_text)
    result.coefficients = " ".join(part for part in text if part)
    return result


def _vcpu_per_usage(
    service: str, usage_type: str, extracted: str, vcpu_report: float | None
) -> float:
    if service == "AWSGlue":
        return ccf.tables().number(PROVIDER, "GLUE_VCPUS_PER_USAGE")
    if service == "AmazonSimpleDB":
        return ccf.tables().number(PROVIDER, "SIMPLE_DB_VCPUS_PER_USAGE")
    if "Aurora:ServerlessUsage" in usage_type:
        return 1 / ccf.tables().number(PROVIDER, "AURORA_SERVERLESS_ACU_PER_VCPU")
    if ccf.contains_word(("Fargate-vCPU-Hours", "CPUCredits"), usage_type):
        return 1.0
    baselines = _burstable()
    if ccf.contains_word(tuple(baselines), usage_type):
        burstable = ".".join(extracted.split(".")[:2])
        average = ccf.tables().number(PROVIDER, "AVG_CPU_UTILIZATION_2020")
        pct = baselines.get(burstable, math.nan)
        return _instance_vcpus(service, usage_type, burstable) * (pct / average)
    if not vcpu_report or math.isnan(vcpu_report):
        return _instance_vcpus(service, usage_type, extracted)
    return vcpu_report


def _instance_vcpus(service: str, usage_type: str, instance_type: str) -> float:
    table = ccf.tables().instances[PROVIDER]
    if "Kafka" in usage_type:
        msk = table["MSK_INSTANCE_TYPES"].get("Kafka" + usage_type.split("Kafka")[-1])
        return msk.vcpus if msk and msk.vcpus else math.nan
    if service == "AmazonRedshift":
        redshift = table["REDSHIFT_INSTANCE_TYPES"].get(_first_two(instance_type))
        divisor = ccf.tables().number(PROVIDER, "REDSHIFT_VCPU_DIVISOR")
        return redshift.vcpus / divisor if redshift and redshift.vcpus else math.nan
    ec2 = _ec2(_first_two(instance_type))
    return ec2.vcpus if ec2 and ec2.vcpus else math.nan


def _memory_gb_hours_per_usage(instance_type: str) -> float:
    table = ccf.tables()
    family = instance_type.split(".")[0]
    members = _family(family, ("EC2_INSTANCE_TYPES", "REDSHIFT_INSTANCE_TYPES"))
    if not members or instance_type in _burstable():
        return 0.0
    processors = table.processors.get(PROVIDER, {}).get(instance_type, ())
    gb_per_chip = ccf.group_memory_gb_per_chip(PROVIDER, processors)
    key = _first_two(instance_type)
    own = _ec2(key) or table.instances[PROVIDER]["REDSHIFT_INSTANCE_TYPES"].get(key)
    largest = members[-1]
    if not own or not own.memory_gb or not largest.largest_memory_gb:
        return 0.0
    return ccf.memory_gb_hours(
        physical_chips=largest.physical_chips or 1.0,
        largest_memory_gb=largest.largest_memory_gb,
        gb_per_chip=gb_per_chip,
        instance_memory_gb=own.memory_gb,
        hours=1.0,
    )


def _embodied_per_usage(instance_type: str, corrections: Sequence[str]) -> tuple[float, str]:
    table = ccf.tables()
    parts = instance_type.split(".")
    if len(parts) < 2 or not parts[-1] or not parts[-2]:
        return 0.0, ""
    family, size = parts[-2], parts[-1]
    key = f"{family}.{size}"
    ec2 = _ec2(key)
    mapped = table.instances[PROVIDER]["INSTANCE_FAMILY_TO_INSTANCE_TYPE_MAPPING"].get(key)
    vcpus = (ec2.vcpus if ec2 else None) or (mapped.vcpus if mapped else None)
    server_t = ec2.embodied_t if ec2 else None
    if not server_t and mapped:
        # CCF reads the scope-3 figure of this table from the memory position.
        use_table = "u_family_embodied" in corrections
        server_t = mapped.embodied_t if use_table else mapped.memory_gb
    members = _family(family, ("EC2_INSTANCE_TYPES",)) or _family(
        family, ("INSTANCE_FAMILY_TO_INSTANCE_TYPE_MAPPING",)
    )
    largest = members[-1].largest_vcpus if members else None
    if not vcpus or not server_t or not largest:
        return 0.0, ""
    lifespan = table.number(PROVIDER, "SERVER_EXPECTED_LIFESPAN")
    per_hour = ccf.embodied_t_co2e(
        server_t=server_t, hours=1.0, vcpus=vcpus, largest_vcpus=largest, lifespan_h=lifespan
    )
    return per_hour, f"embodied_t={_num(server_t)} largest_vcpus={_num(largest)}"


def _storage(
    service: str, typed: str, unit: str, scale: float, replication: float, rf_text: str
) -> Classification:
    table = ccf.tables()
    ssd = _ends_with(table.patterns(PROVIDER, "ssd_usage_type"), typed) or (
        _ends_with(table.patterns(PROVIDER, "ssd_service"), service) and "Backup" not in typed
    )
    if ssd:
        medium, coefficient = "ssd", table.number(PROVIDER, "SSDCOEFFICIENT")
    elif _ends_with(table.patterns(PROVIDER, "hdd_usage_type"), typed):
        medium, coefficient = "hdd", table.number(PROVIDER, "HDDCOEFFICIENT")
    else:
        return Classification("skip", unit, reason="storage unit but neither SSD nor HDD type")
    gb_month = False
    if _ends_with(table.patterns(PROVIDER, "byte_hours_usage_type"), typed):
        tb_per_usage = 1 / table.number("all", "BYTES_PER_TB")
    elif unit == "GB-Hours":
        tb_per_usage = 1 / table.number("all", "GB_PER_TB_DECIMAL")
    else:
        gb_month = True
        tb_per_usage = table.number("all", "HOURS_PER_DAY") / table.number(
            "all", "GB_PER_TB_DECIMAL"
        )
    return Classification(
        "storage",
        unit,
        usage_scale=scale,
        storage_kwh_per_tbh=coefficient * replication / 1000,
        tb_per_usage=tb_per_usage,
        gb_month=gb_month,
        medium=medium,
        replication=replication,
        coefficients=f"medium={medium} wh_per_tbh={_num(coefficient)} {rf_text}",
    )


def _clean_unit(unit: str, service: str, usage_type: str) -> tuple[str, float]:
    if "Fargate-GB-Hours" in usage_type:
        return "GB-Hours", 1.0
    if service == "AmazonRedshift" and unit == "seconds":
        return "Hrs", 1 / ccf.tables().number(PROVIDER, "REDSHIFT_VCPU_DIVISOR")
    return unit, 1.0


@cache
def _known_units() -> dict[str, str]:
    rows = ccf.tables().classification[PROVIDER]["usage_unit"]
    return {pattern: value for pattern, value in rows if value}


@cache
def _burstable() -> dict[str, float]:
    rows = ccf.tables().classification[PROVIDER]["burstable_baseline_pct"]
    return {pattern: float(value) for pattern, value in rows}


@cache
def _gpu_types() -> tuple[str, ...]:
    ec2 = ccf.tables().instances[PROVIDER]["EC2_INSTANCE_TYPES"]
    return tuple(name for name, it in ec2.items() if it.gpu_count)


def _gpu_models(instance_type: str) -> tuple[str, ...]:
    it = _ec2(instance_type)
    return it.gpus if it else ()


def _ec2(instance_type: str) -> InstanceType | None:
    return ccf.tables().instances[PROVIDER]["EC2_INSTANCE_TYPES"].get(instance_type)


def _family(family: str, sources: tuple[str, ...]) -> list[InstanceType]:
    families = _families()
    for source in sources:
        members = families.get((source, family))
        if members:
            return members
    return []


@cache
def _families() -> dict[tuple[str, str], list[InstanceType]]:
    families: dict[tuple[str, str], list[InstanceType]] = {}
    for source, instances in ccf.tables().instances[PROVIDER].items():
        for it in instances.values():
            families.setdefault((source, it.family), []).append(it)
    return families


def _parse_instance_type(typed: str) -> str:
    for prefix in ("db", "cache", "Kafka"):
        if prefix in typed:
            return typed.split(prefix + ".")[-1]
    return typed.split(":")[-1]


def _first_two(instance_type: str) -> str:
    return ".".join(instance_type.split(".")[:2])


def _ends_with(patterns: Sequence[str], text: str) -> bool:
    return text.endswith(tuple(patterns))


def _ends_or_contains(patterns: Sequence[str], text: str) -> bool:
    return any(pattern in text for pattern in patterns)


def classes(rows: pl.DataFrame, corrections: Sequence[str]) -> pl.DataFrame:
    """Classify every distinct (service, usage type, unit, vCPU) of the summed lines.

    Returns:
        One row per distinct key, in `carbonbook.billing.frame.CLASS_SCHEMA`.
    """
    distinct = rows.select("service", "usage_type", "unit", "vcpu").unique()
    records = []
    for service, usage_type, unit, vcpu in distinct.iter_rows():
        found = classify(service, usage_type, unit, vcpu, corrections=corrections)
        vcpu_key = -1.0 if vcpu is None else vcpu
        records.append(
            class_row(
                found, service=service, usage_type=usage_type, unit=unit, _vcpu_key=vcpu_key
            )
        )
    return pl.DataFrame(records, schema=CLASS_SCHEMA)
