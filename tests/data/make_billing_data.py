"""Write the small AWS billing exports the billing tests read (tests/data/billing/).

Run from the repository root: `python tests/data/make_billing_data.py`. The output is
deterministic (a seeded generator), so rerunning it changes nothing unless this script
changes. Two days of hourly line items for one payer and two linked accounts, in both
AWS conventions:

- aws_legacy_hourly.csv and .csv.gz: legacy CUR headers (`lineItem/UsageType`).
- aws_cur2/2024-01.parquet, aws_cur2/2024-02.parquet: CUR 2.0 headers, one file a
  month, as a folder source (the same line items as the legacy file, split by month).
- aws_cur2_hourly.csv: the same line items with CUR 2.0 headers, as CSV.
"""

from __future__ import annotations

import csv
import gzip
import random
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


def main() -> None:
    """Write every file under tests/data/billing/."""
    OUT.mkdir(exist_ok=True)
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
