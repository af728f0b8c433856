"""Write the small billing exports the billing tests read (tests/data/billing/).

Run from the repository root: `python tests/data/make_billing_data.py`. The output is
deterministic (a seeded generator), so rerunning it changes nothing unless this script
changes. Two days of hourly line items for one payer and two linked accounts, in both
AWS conventions:

- aws_legacy_hourly.csv and .csv.gz: legacy CUR headers (`lineItem/UsageType`).
- aws_cur2/2024-01.parquet, aws_cur2/2024-02.parquet: CUR 2.0 headers, one file a
  month, as a folder source (the same line items as the legacy file, split by month).
- aws_cur2_hourly.csv: the same line items with CUR 2.0 headers, as CSV.

GCP: one day of hourly BigQuery billing export rows for two projects:

- gcp_billing_export.csv: nested fields flattened into dotted headers
  (`sku.description`), timestamps as BigQuery writes them (`2024-01-31 00:00:00 UTC`).
- gcp_billing_export.jsonl and gcp_billing_export.parquet: the same rows nested, as
  BigQuery exports them (struct columns, `system_labels` as a list of key/value pairs).

Azure: two weeks of daily Cost Management rows for two subscriptions, the same rows in
both header conventions:

- azure_ea_export.csv: Enterprise Agreement headers (`MeterCategory`), dates `01/31/2024`.
- azure_mca_export.csv: MCA / actual-cost headers (`meterCategory`), dates `2024-01-31`.
"""

from __future__ import annotations

import csv
import gzip
import json
import random
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl

OUT = Path(__file__).resolve().parent / "billing"
PAYER = "123456789012"
ACCOUNTS = ("210987654321", "345678901234")
START = datetime(2024, 1, 31, 0, 0, tzinfo=UTC)  # two days across a month boundary
HOURS = 48

# (product code, usage type, pricing unit, region, vCPU, usage per hour, cost per unit)
HOURLY: tuple[tuple[str, str, str, str, str, float, float], ...] = (
    ("AmazonEC2", "USE1-BoxUsage:m5.large", "Hrs", "us-east-1", "2", 1.0, 0.096),
    ("AmazonEC2", "USE1-BoxUsage:t3.micro", "Hrs", "us-east-1", "2", 1.0, 0.0104),
    ("AmazonEC2", "EUW3-BoxUsage:c5.2xlarge", "Hrs", "eu-west-3", "8", 1.0, 0.404),
    ("AmazonRDS", "USE1-InstanceUsage:db.r5.xlarge", "Hrs", "us-east-1", "4", 1.0, 0.5),
    ("AmazonEC2", "USE1-EBS:VolumeUsage.gp2", "GB-Mo", "us-east-1", "", 100 / 744, 0.1),
    ("AmazonEC2", "USE1-EBS:VolumeUsage.st1", "GB-Mo", "us-east-1", "", 500 / 744, 0.045),
    ("AmazonS3", "USE1-TimedStorage-ByteHrs", "GB-Mo", "us-east-1", "", 0.0, 0.023),
    ("AmazonEC2", "USE1-DataTransfer-Out-Bytes", "GB", "us-east-1", "", 2.5, 0.09),
    ("AmazonEC2", "USE1-NatGateway-Hours", "Hrs", "us-east-1", "", 1.0, 0.045),
    ("AmazonCloudFront", "US-DataTransfer-Out-Bytes", "GB", "", "", 1.2, 0.085),
)
DAILY: tuple[tuple[str, str, str, str, str, float, float], ...] = (
    ("AmazonRoute53", "HostedZone", "HostedZone", "", "", 0.0322, 0.5),
    ("AWSLambda", "USE1-Lambda-GB-Second", "Lambda-GB-Second", "us-east-1", "", 3600.0, 1.6e-5),
    ("AmazonEC2", "USE1-ECS-EC2-GB-Hours", "GB-Hours", "us-east-1", "", 24.0, 0.0),
)

LEGACY = {
    "id": "identity/LineItemId",
    "interval": "identity/TimeInterval",
    "payer": "bill/PayerAccountId",
    "type": "lineItem/LineItemType",
    "account": "lineItem/UsageAccountId",
    "start": "lineItem/UsageStartDate",
    "end": "lineItem/UsageEndDate",
    "service": "lineItem/ProductCode",
    "usage_type": "lineItem/UsageType",
    "operation": "lineItem/Operation",
    "amount": "lineItem/UsageAmount",
    "blended": "lineItem/BlendedCost",
    "unblended": "lineItem/UnblendedCost",
    "unit": "pricing/unit",
    "region": "product/region",
    "vcpu": "product/vcpu",
    "team": "resourceTags/user:team",
}
CUR2 = {
    "id": "identity_line_item_id",
    "interval": "identity_time_interval",
    "payer": "bill_payer_account_id",
    "type": "line_item_line_item_type",
    "account": "line_item_usage_account_id",
    "start": "line_item_usage_start_date",
    "end": "line_item_usage_end_date",
    "service": "line_item_product_code",
    "usage_type": "line_item_usage_type",
    "operation": "line_item_operation",
    "amount": "line_item_usage_amount",
    "blended": "line_item_blended_cost",
    "unblended": "line_item_unblended_cost",
    "unit": "pricing_unit",
    "region": "product_region",
    "vcpu": "product_vcpu",
    "team": "resource_tags_user_team",
}


def line_items() -> list[dict[str, str]]:
    """The line items, as logical field -> text."""
    rng = random.Random(20240131)
    items: list[dict[str, str]] = []
    for hour in range(HOURS):
        start = START + timedelta(hours=hour)
        for spec in HOURLY:
            items.append(_item(rng, start, timedelta(hours=1), spec, len(items)))
        if hour % 24 == 0:
            for spec in DAILY:
                items.append(_item(rng, start, timedelta(days=1), spec, len(items)))
            items.append(_other(rng, start, "Tax", len(items), 4.2))
            items.append(_other(rng, start, "Credit", len(items), -10.0))
    return items


def _item(
    rng: random.Random,
    start: datetime,
    span: timedelta,
    spec: tuple[str, str, str, str, str, float, float],
    index: int,
) -> dict[str, str]:
    service, usage_type, unit, region, vcpu, amount, price = spec
    if usage_type.endswith("TimedStorage-ByteHrs"):
        amount = 2**40 * (0.5 + rng.random())  # byte-hours: about a TB for the hour
        price_amount = amount / 2**30 / 744
    else:
        amount = amount * (1 + 0.1 * rng.random()) if unit in ("GB", "GB-Mo") else amount
        price_amount = amount
    cost = round(price_amount * price, 10)
    return {
        "id": f"li-{index:06d}",
        "interval": f"{_iso(start)}/{_iso(start + span)}",
        "payer": PAYER,
        "type": rng.choice(("Usage", "Usage", "DiscountedUsage", "SavingsPlanCoveredUsage"))
        if unit == "Hrs" and vcpu
        else "Usage",
        "account": ACCOUNTS[index % 2],
        "start": _iso(start),
        "end": _iso(start + span),
        "service": service,
        "usage_type": usage_type,
        "operation": "RunInstances" if vcpu else "",
        "amount": repr(round(amount, 10)),
        "blended": repr(cost),
        "unblended": repr(cost),
        "unit": unit,
        "region": region,
        "vcpu": vcpu,
        "team": rng.choice(("data", "platform", "")),
    }


def _other(
    rng: random.Random, start: datetime, kind: str, index: int, cost: float
) -> dict[str, str]:
    return {
        "id": f"li-{index:06d}",
        "interval": f"{_iso(start)}/{_iso(start + timedelta(days=1))}",
        "payer": PAYER,
        "type": kind,
        "account": ACCOUNTS[0],
        "start": _iso(start),
        "end": _iso(start + timedelta(days=1)),
        "service": "AmazonEC2",
        "usage_type": "",
        "operation": "",
        "amount": "1",
        "blended": repr(round(cost * (1 + 0.01 * rng.random()), 6)),
        "unblended": repr(cost),
        "unit": "",
        "region": "",
        "vcpu": "",
        "team": "",
    }


def _iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def write_csv(path: Path, items: list[dict[str, str]], names: dict[str, str]) -> None:
    """Write items with one convention's headers."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(names.values())
        for item in items:
            writer.writerow(item[key] for key in names)


def write_parquet(path: Path, items: list[dict[str, str]]) -> None:
    """Write items with CUR 2.0 headers and CUR 2.0's column types."""
    frame = pl.DataFrame({CUR2[key]: [item[key] for item in items] for key in CUR2})
    numbers = [CUR2[k] for k in ("amount", "blended", "unblended")]
    times = [CUR2[k] for k in ("start", "end")]
    frame = frame.with_columns(
        [pl.col(c).cast(pl.Float64) for c in numbers]
        + [pl.col(c).str.to_datetime("%Y-%m-%dT%H:%M:%SZ", time_zone="UTC") for c in times]
    )
    frame.write_parquet(path)


GCP_PROJECTS = ("analytics-prod-4821", "ml-sandbox-1177")
GCP_START = datetime(2024, 1, 31, 0, 0, tzinfo=UTC)
GCP_HOURS = 24
GIB = 2**30
# (service, SKU, unit, region, machine spec, usage per hour, cost per unit)
GCP_HOURLY: tuple[tuple[str, str, str, str, str, float, float], ...] = (
    (
        "Compute Engine",
        "N1 Predefined Instance Core running in Americas",
        "seconds",
        "us-central1",
        "n1-standard-4",
        4 * 3600.0,
        0.0000088,
    ),
    (
        "Compute Engine",
        "N1 Predefined Instance Ram running in Americas",
        "byte-seconds",
        "us-central1",
        "n1-standard-4",
        15 * GIB * 3600.0,
        1.1e-15,
    ),
    (
        "Compute Engine",
        "E2 Instance Core running in EMEA",
        "seconds",
        "europe-west1",
        "e2-medium",
        2 * 3600.0,
        0.0000072,
    ),
    (
        "Compute Engine",
        "Nvidia Tesla V100 GPU running in Americas",
        "seconds",
        "us-central1",
        "n1-standard-8",
        3600.0,
        0.00069,
    ),
    (
        "Compute Engine",
        "SSD backed PD Capacity",
        "byte-seconds",
        "us-central1",
        "",
        100 * GIB * 3600.0,
        6.0e-17,
    ),
    (
        "Cloud Storage",
        "Standard Storage US Multi-region",
        "byte-seconds",
        "",
        "",
        500 * GIB * 3600.0,
        9.2e-18,
    ),
    (
        "Compute Engine",
        "Network Internet Egress from Americas to EMEA",
        "bytes",
        "us-central1",
        "",
        2.5 * GIB,
        1.1e-10,
    ),
    (
        "Kubernetes Engine",
        "Autopilot Pod mCPU Requests (us-central1)",
        "seconds",
        "us-central1",
        "",
        1500 * 3600.0,
        1.3e-8,
    ),
)
GCP_DAILY: tuple[tuple[str, str, str, str, str, float, float], ...] = (
    ("Cloud Run", "CPU Allocation Time", "seconds", "us-central1", "", 5400.0, 0.000024),
    ("Cloud Storage", "Class A Operations", "requests", "", "", 12000.0, 0.000005),
    ("Support", "Standard Support Fee", "seconds", "", "", 1.0, 9.5),
    ("Cloud Logging", "Log Volume", "gibibyte", "global", "", 3.0, 0.5),
)


def gcp_rows() -> list[dict[str, object]]:
    """The GCP export rows, nested as BigQuery holds them."""
    rng = random.Random(7)
    rows: list[dict[str, object]] = []
    for project in GCP_PROJECTS:
        for hour in range(GCP_HOURS):
            start = GCP_START + timedelta(hours=hour)
            for spec in GCP_HOURLY:
                rows.append(_gcp_row(rng, project, start, timedelta(hours=1), spec))
        for spec in GCP_DAILY:
            rows.append(_gcp_row(rng, project, GCP_START, timedelta(days=1), spec))
    rows.append(
        _gcp_row(
            rng,
            GCP_PROJECTS[0],
            GCP_START,
            timedelta(days=1),
            ("Compute Engine", "Rounding error", "seconds", "us-central1", "", 0.0, 0.0),
            cost_type="rounding_error",
        )
    )
    return rows


def _gcp_row(
    rng: random.Random,
    project: str,
    start: datetime,
    length: timedelta,
    spec: tuple[str, str, str, str, str, float, float],
    cost_type: str = "regular",
) -> dict[str, object]:
    service, sku, unit, region, machine, amount, price = spec
    amount = round(amount * rng.uniform(0.8, 1.2)) if amount > 100 else amount
    labels = (
        [{"key": "compute.googleapis.com/machine_spec", "value": machine}] if machine else []
    )
    location = {"location": region or "us", "country": "US", "region": region or None}
    return {
        "billing_account_id": "01A2B3-C4D5E6-F7A8B9",
        "service": {"id": "6F81-5844-456A", "description": service},
        "sku": {"id": f"{zlib.crc32(sku.encode()):08X}", "description": sku},
        "usage_start_time": start,
        "usage_end_time": start + length,
        "project": {"id": project, "name": project.rsplit("-", 1)[0]},
        "system_labels": labels,
        "location": location,
        "cost": round(amount * price, 6),
        "currency": "USD",
        "usage": {"amount": float(amount), "unit": unit},
        "cost_type": cost_type,
    }


def write_gcp_csv(path: Path, rows: list[dict[str, object]]) -> None:
    """Write GCP rows with BigQuery's flattened, dotted headers."""
    header = (
        "billing_account_id",
        "service.description",
        "sku.description",
        "usage_start_time",
        "usage_end_time",
        "project.id",
        "compute.googleapis.com/machine_spec",
        "location.location",
        "location.region",
        "cost",
        "currency",
        "usage.amount",
        "usage.unit",
        "cost_type",
    )
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for row in rows:
            labels = {item["key"]: item["value"] for item in row["system_labels"]}  # type: ignore[attr-defined]
            writer.writerow(
                (
                    row["billing_account_id"],
                    row["service"]["description"],  # type: ignore[index]
                    row["sku"]["description"],  # type: ignore[index]
                    _bq_time(row["usage_start_time"]),  # type: ignore[arg-type]
                    _bq_time(row["usage_end_time"]),  # type: ignore[arg-type]
                    row["project"]["id"],  # type: ignore[index]
                    labels.get("compute.googleapis.com/machine_spec", ""),
                    row["location"]["location"],  # type: ignore[index]
                    row["location"]["region"] or "",  # type: ignore[index]
                    row["cost"],
                    row["currency"],
                    row["usage"]["amount"],  # type: ignore[index]
                    row["usage"]["unit"],  # type: ignore[index]
                    row["cost_type"],
                )
            )


def _bq_time(when: datetime) -> str:
    return when.strftime("%Y-%m-%d %H:%M:%S UTC")


def write_gcp_nested(folder: Path, rows: list[dict[str, object]]) -> None:
    """Write GCP rows nested, as JSON lines (BigQuery's text) and Parquet."""
    with (folder / "gcp_billing_export.jsonl").open("w", encoding="utf-8") as handle:
        for row in rows:
            text = {
                **row,
                "usage_start_time": _bq_time(row["usage_start_time"]),  # type: ignore[arg-type]
                "usage_end_time": _bq_time(row["usage_end_time"]),  # type: ignore[arg-type]
            }
            handle.write(json.dumps(text) + "\n")
    label = pl.Struct({"key": pl.String, "value": pl.String})
    frame = pl.DataFrame(rows, schema_overrides={"system_labels": pl.List(label)})
    frame.write_parquet(folder / "gcp_billing_export.parquet")


AZURE_SUBSCRIPTIONS = (
    "5f1c2e4a-8b3d-4c6e-9a7f-0d2b1e3c4a5f",
    "a9e8d7c6-b5a4-4321-8f0e-1d2c3b4a5968",
)
AZURE_START = datetime(2024, 1, 25, tzinfo=UTC)
AZURE_DAYS = 14
# (meter category, sub category, meter name, unit, location, VM size, usage a day, unit price)
AZURE_DAILY: tuple[tuple[str, str, str, str, str, str, float, float], ...] = (
    ("Virtual Machines", "Dsv3 Series", "D2s v3", "1 Hour", "US East", "D2s v3", 24.0, 0.096),
    ("Virtual Machines", "Dsv3 Series", "D4s v3", "1 Hour", "EU West", "D4s v3", 48.0, 0.192),
    ("Virtual Machines", "Esv3 Series", "E4-2s v3", "1 Hour", "eastus", "E4-2s v3", 24.0, 0.25),
    ("Virtual Machines", "NCSv3 Series", "NC6s v3", "1 Hour", "US East", "NC6s v3", 8.0, 3.06),
    (
        "Virtual Machines",
        "Dsv3 Series Windows",
        "D2s v3 Spot",
        "1 Hour",
        "US West 2",
        "D2s v3",
        24.0,
        0.02,
    ),
    (
        "Storage",
        "Premium SSD Managed Disks",
        "P10 LRS Disk",
        "1 /Month",
        "US East",
        "",
        0.0323,
        19.71,
    ),
    (
        "Storage",
        "Standard HDD Managed Disks",
        "S10 Disks",
        "1 /Month",
        "EU West",
        "",
        0.0323,
        5.89,
    ),
    (
        "Storage",
        "Tiered Block Blob",
        "Hot LRS Data Stored",
        "1 GB/Month",
        "US East",
        "",
        512.0,
        0.0007,
    ),
    ("Bandwidth", "", "Data Transfer Out", "1 GB", "Zone 1", "", 25.0, 0.087),
    ("Redis Cache", "Standard", "C1 Cache Instance", "1 Hour", "US East", "", 24.0, 0.1),
    ("Load Balancer", "", "Standard Data Processed", "1 GB", "US East", "", 40.0, 0.005),
    ("Azure App Service", "Basic Plan", "B1", "1/Hour", "EU West", "", 24.0, 0.075),
    (
        "Virtual Machines Licenses",
        "Windows Server",
        "2 vCPU VM License",
        "1 Hour",
        "US East",
        "",
        24.0,
        0.0,
    ),
)
AZURE_EA = (
    "SubscriptionGuid",
    "SubscriptionName",
    "Date",
    "MeterCategory",
    "MeterSubCategory",
    "MeterName",
    "UnitOfMeasure",
    "Quantity",
    "EffectivePrice",
    "CostInBillingCurrency",
    "ResourceLocation",
    "ResourceGroup",
    "InstanceId",
    "AdditionalInfo",
)
AZURE_MCA = (
    "subscriptionId",
    "subscriptionName",
    "date",
    "meterCategory",
    "meterSubCategory",
    "meterName",
    "unitOfMeasure",
    "quantity",
    "effectivePrice",
    "costInBillingCurrency",
    "resourceLocation",
    "resourceGroupName",
    "ResourceId",
    "additionalInfo",
)


def azure_rows() -> list[tuple[object, ...]]:
    """The Azure cost export rows: (subscription, day, spec index, quantity, cost)."""
    rng = random.Random(365)
    rows: list[tuple[object, ...]] = []
    for day in range(AZURE_DAYS):
        when = AZURE_START + timedelta(days=day)
        for number, subscription in enumerate(AZURE_SUBSCRIPTIONS):
            for index, spec in enumerate(AZURE_DAILY):
                if (index + number) % 5 == 4 and spec[0] == "Virtual Machines":
                    continue  # not every size runs in every subscription
                amount = spec[6] if spec[3] == "1 Hour" else spec[6] * rng.uniform(0.8, 1.2)
                rows.append((subscription, when, index, round(amount, 6)))
    return rows


def write_azure(path: Path, names: tuple[str, ...], date_format: str) -> None:
    """Write the Azure rows with one convention's headers and date spelling."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(names)
        for subscription, when, index, amount in azure_rows():
            category, sub, meter, unit, location, size, _, price = AZURE_DAILY[index]  # type: ignore[index]
            group = f"rg-{category.split()[0].lower()}"
            info = json.dumps({"ServiceType": size, "VCPUs": 2}) if size else ""
            writer.writerow(
                (
                    subscription,
                    "Production" if subscription == AZURE_SUBSCRIPTIONS[0] else "Research",
                    when.strftime(date_format),  # type: ignore[attr-defined]
                    category,
                    sub,
                    meter,
                    unit,
                    amount,
                    price,
                    round(amount * price, 8),  # type: ignore[operator]
                    location,
                    group,
                    f"/subscriptions/{subscription}/resourceGroups/{group}/providers/x/{index}",
                    info,
                )
            )


def main() -> None:
    """Write every file under tests/data/billing/."""
    OUT.mkdir(exist_ok=True)
    write_azure(OUT / "azure_ea_export.csv", AZURE_EA, "%m/%d/%Y")
    write_azure(OUT / "azure_mca_export.csv", AZURE_MCA, "%Y-%m-%d")
    rows = gcp_rows()
    write_gcp_csv(OUT / "gcp_billing_export.csv", rows)
    write_gcp_nested(OUT, rows)
    items = line_items()
    write_csv(OUT / "aws_legacy_hourly.csv", items, LEGACY)
    with gzip.GzipFile(OUT / "aws_legacy_hourly.csv.gz", "wb", mtime=0) as packed:
        packed.write((OUT / "aws_legacy_hourly.csv").read_bytes())
    write_csv(OUT / "aws_cur2_hourly.csv", items, CUR2)
    folder = OUT / "aws_cur2"
    folder.mkdir(exist_ok=True)
    for month in ("2024-01", "2024-02"):
        write_parquet(
            folder / f"{month}.parquet", [i for i in items if i["start"][:7] == month]
        )


if __name__ == "__main__":
    main()
