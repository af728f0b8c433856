"""GCP billing exports (the BigQuery standard usage cost export) and CCF's row classification.

The export is read as CSV, JSON lines or Parquet. Nested fields may be flattened into
dotted columns (`sku.description`, `usage.amount`: the names BigQuery's own flattening
gives), into underscored ones (`sku_description`), or kept as struct columns (`sku`
with a `description` field), as BigQuery writes JSON lines and Parquet. The machine type
is the `compute.googleapis.com/machine_spec` system label: a flattened column of that
name (optionally prefixed `system_labels.`), a `machine_type` or `machineType` column, or
the value of that key in the `system_labels` list of key/value structs.

`classify` decides, for one distinct (service, SKU, usage unit, machine type), what CCF's
BigQuery code does with such a row, per unit of usage amount (seconds, byte-seconds or
bytes), so that the per-unit figures times the summed amount reproduce CCF's numbers.
"""

from __future__ import annotations

import csv
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
]

PROVIDER = "gcp"
# CCF's query keeps every cost type but `rounding_error`; `""` is a file without the column.
LINE_ITEM_TYPES: tuple[str, ...] | None = ("regular", "tax", "adjustment", "")
# CCF's GCP code scales unknown usage by kWh per unit of usage amount, and the compute kWh
# it accumulates for that ratio leaves embodied emissions out.
RATIO_BY = "usage_amount"
RATIO_EMBODIED = False

_QUERIED_UNITS = ("byte-seconds", "seconds", "bytes", "requests")
_MACHINE_SPEC = "compute.googleapis.com/machine_spec"
_SHARED_CORE = ("e2-micro", "e2-small", "e2-medium", "f1-micro", "g1-small")
_COMPOSER = ("Cloud Composer Compute CPUs", "Cloud Composer vCPU", "Cloud Composer SQL vCPU")
_GKE_COMPOSER_MACHINE = "e2-medium"
_FAMILY_TABLES = (
    "MACHINE_FAMILY_TO_MACHINE_TYPE_MAPPING",
    "MACHINE_FAMILY_SHARED_CORE_TO_MACHINE_TYPE_MAPPING",
    "N1_SHARED_CORE_MACHINE_FAMILY_TO_MACHINE_TYPE_MAPPING",
)

CONVENTIONS: tuple[Convention, ...] = (
    Convention(
        name="GCP BigQuery billing export (sku.description headers)",
        marker="sku.description",
        columns={
            "line_item_type": ("cost_type",),
            "service": ("service.description", "service_description"),
            "usage_type": ("sku.description", "sku_description"),
            "unit": ("usage.unit", "usage_unit"),
            "region": (
                "location.region",
                "location_region",
                "location.location",
                "location_location",
            ),
            "account": ("project.id", "project_id"),
            "machine_type": (
                f"system_labels[{_MACHINE_SPEC}]",
                f"system_labels.{_MACHINE_SPEC}",
                _MACHINE_SPEC,
                "machine_type",
                "machineType",
            ),
            "usage_amount": ("usage.amount", "usage_amount"),
            "cost": ("cost",),
            "start": ("usage_start_time",),
            "end": ("usage_end_time",),
        },
        optional=frozenset({"line_item_type", "machine_type"}),
        coalesced=frozenset({"region"}),
    ),
)


def detect(columns: Sequence[str]) -> Convention | None:
    """The GCP convention when `columns` are a billing export's, flattened or nested."""
    present = set(columns)
    flattened = bool({"sku.description", "sku_description"} & present)
    nested = {"sku", "service", "usage_start_time"} <= present
    return CONVENTIONS[0] if flattened or nested else None


def classify(service: str, usage_type: str, unit: str, machine_type: str) -> Classification:
    """Classify one distinct GCP row the way CCF's BigQuery billing code does.

    Args:
        service: `service.description` (`Compute Engine`).
        usage_type: `sku.description` (`N1 Predefined Instance Core running in Americas`).
        unit: `usage.unit` (`seconds`, `byte-seconds`, `bytes`, `requests`).
        machine_type: the machine spec system label (`n1-standard-4`), or "".

    Returns:
        The classification with per-usage-unit figures at the meter (before PUE).
    """
    table = ccf.tables()
    if unit not in _QUERIED_UNITS:
        return Classification("skip", unit, reason=f"usage unit '{unit}' is not queried by CCF")
    if ccf.contains_word(table.patterns(PROVIDER, "unsupported_usage_type"), usage_type):
        return Classification("skip", unit, reason="usage type CCF does not support")

    if ccf.contains_word(table.patterns(PROVIDER, "unit_override_service"), service):
        unit = "Unknown"
    scale = 1 / 1000 if "Pod mCPU Requests" in usage_type else 1.0
    unknown = (
        not usage_type
        or ccf.contains_word(table.patterns(PROVIDER, "unknown_usage_type"), usage_type)
        or ccf.contains_word(table.patterns(PROVIDER, "unknown_service"), service)
        or ccf.contains_word(table.patterns(PROVIDER, "unknown_usage_unit"), unit)
    )
    if unknown:
        return Classification("unknown", unit, usage_scale=scale)

    compute = ccf.contains_word(table.patterns(PROVIDER, "compute_string"), usage_type)
    if unit == "seconds":
        if not compute:
            return Classification("unknown", unit)
        return _compute(service, usage_type, machine_type)
    if unit == "byte-seconds":
        memory = ccf.contains_word(table.patterns(PROVIDER, "memory_usage_type"), usage_type)
        if memory and not compute:
            return _memory()
        return _storage(service, usage_type)
    if unit == "bytes":
        if not ccf.contains_word(table.patterns(PROVIDER, "networking_string"), usage_type):
            return Classification("unknown", unit)
        kwh = table.number(PROVIDER, "NETWORKING_COEFFICIENT")
        return Classification(
            "network",
            unit,
            network_kwh_per_usage=kwh / table.number("all", "BYTES_PER_GB"),
            coefficients=f"kwh_per_gb={_num(kwh)} gb_per_byte=2^-30",
        )
    return Classification("skip", unit, reason=f"usage unit '{unit}' has no CCF estimate")


def _compute(service: str, usage_type: str, machine_type: str) -> Classification:
    table = ccf.tables()
    seconds = table.number("all", "SECONDS_PER_HOUR")
    utilisation = table.number(PROVIDER, "AVG_CPU_UTILIZATION_2020")
    replication, rule = _replication(service, usage_type)
    if any(name in usage_type for name in _COMPOSER):
        machine_type = _GKE_COMPOSER_MACHINE
        vcpus = table.number(PROVIDER, "VCPUS_PER_CLOUD_COMPOSER_ENVIRONMENT")
    elif "Kubernetes Clusters" in usage_type:
        machine_type = _GKE_COMPOSER_MACHINE
        vcpus = table.number(PROVIDER, "VCPUS_PER_GKE_CLUSTER")
    else:
        vcpus = 1.0

    gpu = "GPU" in usage_type
    if gpu:
        listed = table.patterns(PROVIDER, "gpu_model")
        names = tuple(m for m in listed if usage_type.startswith(m)) or tuple(listed)
        vcpu_hours = 1 / seconds
    else:
        names = _processors(machine_type)
        vcpu_hours = vcpus / seconds
    min_w, max_w, fallback = ccf.group_watts(PROVIDER, names)
    kwh = ccf.compute_kwh(vcpu_hours, min_w, max_w, utilisation_pct=utilisation, pue=1.0)
    embodied_t, embodied_text = _embodied_per_second(machine_type)

    label = "gpus" if gpu else "micro"
    text = [
        f"machine={machine_type or 'none'}",
        f"{label}={'/'.join(names) or 'Unknown'}{' (CCF average)' if fallback else ''}",
        f"min_w={_num(min_w)} max_w={_num(max_w)} util={_num(utilisation)}%",
        f"vcpu_h_per_usage={_num(vcpu_hours)} rf={_num(replication)}({rule})",
        embodied_text,
    ]
    return Classification(
        "gpu" if gpu else "compute",
        "seconds",
        instance_type=machine_type,
        cpu_kwh_per_usage=0.0 if gpu else kwh * replication,
        gpu_kwh_per_usage=kwh * replication if gpu else 0.0,
        embodied_t_per_usage=embodied_t,
        replication=replication,
        coefficients=" ".join(part for part in text if part),
    )


def _processors(machine_type: str) -> tuple[str, ...]:
    if not machine_type:
        return ()
    shared = next((core for core in _SHARED_CORE if core in machine_type), None)
    # CCF keys its processor table by the first two characters, so n2d, c2d and t2d
    # never reach their own rows.
    key = shared or machine_type[:2].lower()
    return _processor_keys().get(key, ())


@cache
def _processor_keys() -> dict[str, tuple[str, ...]]:
    text = resources.files("carbonbook.data").joinpath("gcp_processor_keys.csv")
    keys: dict[str, tuple[str, ...]] = {}
    for row in csv.DictReader(text.read_text(encoding="utf-8").splitlines()):
        names = tuple(n for n in row["microarchitectures"].split(";") if n and n != "Unknown")
        keys[row["processor_lookup_key"]] = names
    return keys


def _embodied_per_second(machine_type: str) -> tuple[float, str]:
    if not machine_type:
        return 0.0, ""
    parts = machine_type.split("-")
    family, first = "-".join(parts[:2]), parts[0]
    hits = [
        _member(_FAMILY_TABLES[0], family, machine_type),
        _member(_FAMILY_TABLES[1], first, machine_type),
        _member(_FAMILY_TABLES[2], None, machine_type),
    ]
    vcpus = next((h.vcpus for h in hits if h is not None and h.vcpus), None)
    server_t = next((h.embodied_t for h in hits if h is not None and h.embodied_t), None)
    families = _families()
    members = (
        families.get((_FAMILY_TABLES[0], family))
        or families.get((_FAMILY_TABLES[1], first))
        or families[(_FAMILY_TABLES[2], "n1_shared_core")]
    )
    largest = members[-1].largest_vcpus
    if not vcpus or not server_t or not largest:
        return 0.0, ""
    table = ccf.tables()
    per_second = ccf.embodied_t_co2e(
        server_t=server_t,
        hours=1 / table.number("all", "SECONDS_PER_HOUR"),
        vcpus=vcpus,
        largest_vcpus=largest,
        lifespan_h=table.number(PROVIDER, "SERVER_EXPECTED_LIFESPAN"),
    )
    return (
        per_second,
        f"embodied_t={_num(server_t)} largest_vcpus={_num(largest)}",
    )


def _member(source: str, family: str | None, machine_type: str) -> InstanceType | None:
    found = ccf.tables().instances[PROVIDER][source].get(machine_type)
    if found is None or (family is not None and found.family != family):
        return None
    return found


@cache
def _families() -> dict[tuple[str, str], list[InstanceType]]:
    families: dict[tuple[str, str], list[InstanceType]] = {}
    for source, instances in ccf.tables().instances[PROVIDER].items():
        for it in instances.values():
            families.setdefault((source, it.family), []).append(it)
    return families


def _replication(service: str, usage_type: str) -> tuple[float, str]:
    zonal = not ("Regional" in usage_type or "Autopilot" in usage_type)
    if service == "Kubernetes Engine" and zonal:
        # CCF's rule wants "Clusters" and also "Regional" or "Autopilot" in the SKU.
        return 1.0, "DEFAULT"
    return ccf.replication_factor(PROVIDER, service, usage_type)


def _memory() -> Classification:
    table = ccf.tables()
    coefficient = table.number(PROVIDER, "MEMORY_COEFFICIENT")
    gb_hours = 1 / table.number("all", "BYTES_PER_GB") / table.number("all", "SECONDS_PER_HOUR")
    return Classification(
        "memory",
        "byte-seconds",
        memory_kwh_per_usage=gb_hours * coefficient,
        coefficients=f"kwh_per_gbh={_num(coefficient)} gbh_per_byte_second=2^-30/3600",
    )


def _storage(service: str, usage_type: str) -> Classification:
    table = ccf.tables()
    ssd = "SSD" in usage_type
    medium = "ssd" if ssd else "hdd"
    coefficient = table.number(PROVIDER, "SSDCOEFFICIENT" if ssd else "HDDCOEFFICIENT")
    replication, rule = _replication(service, usage_type)
    tb_hours = 1 / table.number("all", "BYTES_PER_TB") / table.number("all", "SECONDS_PER_HOUR")
    return Classification(
        "storage",
        "byte-seconds",
        storage_kwh_per_tbh=coefficient * replication / 1000,
        tb_per_usage=tb_hours,
        medium=medium,
        replication=replication,
        coefficients=(
            f"medium={medium} wh_per_tbh={_num(coefficient)} "
            f"rf={_num(replication)}({rule}) tbh_per_byte_second=2^-40/3600"
        ),
    )


def classes(rows: pl.DataFrame, corrections: Sequence[str]) -> pl.DataFrame:
    """Classify every distinct (service, SKU, unit, machine type) of the summed lines.

    Args:
        rows: summed line items (`carbonbook.billing.source.Usage.rows`).
        corrections: carbonbook corrections; none applies to GCP yet.

    Returns:
        One row per distinct key, in `carbonbook.billing.frame.CLASS_SCHEMA` plus
        `machine_type`.
    """
    distinct = rows.select("service", "usage_type", "unit", "machine_type").unique()
    records = []
    for service, usage_type, unit, machine_type in distinct.iter_rows():
        found = classify(service, usage_type, unit, machine_type)
        records.append(
            class_row(
                found,
                service=service,
                usage_type=usage_type,
                unit=unit,
                _vcpu_key=-1.0,
                machine_type=machine_type,
            )
        )
    return pl.DataFrame(records, schema={**CLASS_SCHEMA, "machine_type": pl.String})
