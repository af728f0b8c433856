"""AWS billing exports to CCF's kWh and CO2e, checked by hand against CCF's arithmetic.

Each hand-checked case writes a few legacy CUR line items, estimates them, and compares
with the arithmetic CCF's application code does, written out in the test with the
coefficients from CCF's tables. Grid factors are CCF's (us-east-1 0.000379069 t/kWh).
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import polars as pl
import pytest

from carbonbook import billing
from carbonbook.billing import BillingError, ccf
from carbonbook.errors import CarbonbookError
from carbonbook.model.schema import EMISSIONS_COLUMNS, emissions_schema

DATA = Path(__file__).parent / "data" / "billing"
PUE = 1.135
EF_USE1 = 0.000379069  # t CO2e / kWh, CCF's us-east-1 (SERC)
HEADER = (
    "lineItem/LineItemType",
    "lineItem/UsageAccountId",
    "lineItem/UsageStartDate",
    "lineItem/UsageEndDate",
    "lineItem/ProductCode",
    "lineItem/UsageType",
    "lineItem/UsageAmount",
    "lineItem/BlendedCost",
    "pricing/unit",
    "product/region",
    "product/vcpu",
)


def write_cur(
    path: Path, rows: list[tuple[str, ...]], header: tuple[str, ...] = HEADER
) -> Path:
    """A legacy CUR of (service, usage type, amount, cost, unit[, region, vcpu, type]) rows."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for row in rows:
            service, usage_type, amount, cost, unit, *rest = row
            region, vcpu, kind = (list(rest) + ["us-east-1", "", "Usage"][len(rest) :])[:3]
            writer.writerow(
                (
                    kind,
                    "111122223333",
                    "2024-01-15T10:00:00Z",
                    "2024-01-15T11:00:00Z",
                    service,
                    usage_type,
                    amount,
                    cost,
                    unit,
                    region,
                    vcpu,
                )
            )
    return path


def kinds(frame: pl.DataFrame, usage_type: str) -> dict[str, float]:
    """CCF kWh per usage kind of one usage type."""
    rows = frame.filter(pl.col("usage_type") == usage_type)
    return dict(rows.group_by("usage_kind").agg(pl.col("ccf_kwh").sum()).iter_rows())


def close(actual: float, expected: float) -> bool:
    return actual == pytest.approx(expected, rel=1e-6)


# --- hand-checked CCF arithmetic -------------------------------------------------------


def test_compute_memory_and_embodied_of_a_known_instance(tmp_path: Path) -> None:
    frame = billing.estimate(
        write_cur(
            tmp_path / "c.csv",
            [("AmazonEC2", "USE1-BoxUsage:m5.large", "10", "0.96", "Hrs", "us-east-1", "2")],
        )
    )
    got = kinds(frame, "USE1-BoxUsage:m5.large")
    # m5 is Skylake: 0.65..4.26 W/vCPU at 50 %; 2 vCPU x 10 h.
    compute = (0.65 + 0.5 * (4.26 - 0.65)) * 2 * 10 * PUE / 1000
    # m5.metal: 96 vCPU, 384 GB, one chip; Skylake covers 81.32 GB per chip; m5.large 8 GB.
    memory = (384 / 1 - 81.32) / (384 / 8) * 10 * 0.000392 * PUE
    # 1.6103792 t per m5 server over 35040 h, shared by 96 vCPUs; 2 vCPU for 10 h.
    embodied_t = 1.6103792 * (10 / 2 / 35040) * (2 / 96)
    assert close(got["compute"], compute)
    assert close(got["memory"], memory)
    assert close(got["embodied"], embodied_t / EF_USE1)
    line = frame.filter(pl.col("usage_type") == "USE1-BoxUsage:m5.large")
    ccf_co2e_t = (compute + memory) * EF_USE1 + embodied_t
    assert close(line["ccf_co2e_kg"].sum(), ccf_co2e_t * 1000)
    assert close(line["embodied_co2e_kg"].sum(), embodied_t * 1000)
    assert close(line["energy_kwh"].sum(), (compute + memory) / PUE)
    assert line["cost"].sum() == pytest.approx(0.96)


def test_burstable_instance_uses_its_baseline_and_no_memory(tmp_path: Path) -> None:
    frame = billing.estimate(
        write_cur(
            tmp_path / "b.csv",
            [("AmazonEC2", "USE1-BoxUsage:t3.micro", "24", "0.25", "Hrs", "us-east-1", "2")],
        )
    )
    got = kinds(frame, "USE1-BoxUsage:t3.micro")
    # t3.micro: 2 vCPU x baseline 10 % / CCF's 50 %; t3 is Cascade Lake 0.64..3.97 W.
    vcpu_hours = 2 * (10 / 50) * 24
    assert close(got["compute"], (0.64 + 0.5 * (3.97 - 0.64)) * vcpu_hours * PUE / 1000)
    assert "memory" not in got
    # t3.2xlarge (8 vCPU) is the family's largest.
    assert close(got["embodied"], 1.6103792 * 24 / (35040 * 8) / EF_USE1)


def test_ssd_and_hdd_storage_with_replication(tmp_path: Path) -> None:
    frame = billing.estimate(
        write_cur(
            tmp_path / "s.csv",
            [
                ("AmazonEC2", "USE1-EBS:VolumeUsage.gp2", "100", "10", "GB-Mo"),
                ("AmazonEC2", "USE1-EBS:SnapshotUsage", "50", "2.5", "GB-Mo"),
                ("AmazonRDS", "USE1-RDS:StorageUsage", "20", "2.3", "GB-Mo"),
            ],
        )
    )
    january_tbh = 24 * 31 / 1000  # one GB-month in TB-hours, January has 31 days
    assert close(
        kinds(frame, "USE1-EBS:VolumeUsage.gp2")["storage"],
        100 * january_tbh * 1.2 * PUE * 2 / 1000,
    )  # SSD, EBS volume x2
    assert close(
        kinds(frame, "USE1-EBS:SnapshotUsage")["storage"],
        50 * january_tbh * 0.65 * PUE * 3 / 1000,
    )  # HDD, EBS snapshot x3
    assert close(
        kinds(frame, "USE1-RDS:StorageUsage")["storage"],
        20 * january_tbh * 0.65 * PUE * 1 / 1000,
    )  # HDD, plain RDS x1
    methods = set(frame["method"])
    assert {"ccf:storage:ssd", "ccf:storage:hdd"} <= methods


def test_s3_standard_storage_is_replicated_six_times(tmp_path: Path) -> None:
    frame = billing.estimate(
        write_cur(
            tmp_path / "s3.csv",
            [
                ("AmazonS3", "USE1-TimedStorage-ByteHrs", str(3 * 2**40), "0.07", "GB-Mo"),
                ("AmazonS3", "USE1-TimedStorage-ZIA-ByteHrs", str(2**40), "0.01", "GB-Mo"),
            ],
        )
    )
    # Byte-hours / 2^40 = TB-hours; S3 standard 6 copies, One Zone-IA 2.
    assert close(
        kinds(frame, "USE1-TimedStorage-ByteHrs")["storage"], 3 * 0.65 * PUE * 6 / 1000
    )
    assert close(
        kinds(frame, "USE1-TimedStorage-ZIA-ByteHrs")["storage"], 0.65 * PUE * 2 / 1000
    )
    row = frame.filter(pl.col("usage_type") == "USE1-TimedStorage-ByteHrs")
    assert "rf=6(S3)" in row["coefficients"][0]


def test_networking_has_no_replication(tmp_path: Path) -> None:
    frame = billing.estimate(
        write_cur(
            tmp_path / "n.csv", [("AmazonS3", "USE1-DataTransfer-Out-Bytes", "40", "3.6", "GB")]
        )
    )
    got = kinds(frame, "USE1-DataTransfer-Out-Bytes")
    assert close(got["network"], 40 * 0.001 * PUE)
    assert close(frame["co2e_kg"].sum(), 40 * 0.001 * PUE * EF_USE1 * 1000)


def test_gpu_instance_adds_gpu_watts(tmp_path: Path) -> None:
    frame = billing.estimate(
        write_cur(
            tmp_path / "g.csv",
            [("AmazonEC2", "USE1-BoxUsage:p3.2xlarge", "2", "6.12", "Hrs", "us-east-1", "8")],
        )
    )
    gpu = frame.filter(pl.col("method") == "ccf:compute:gpu")
    # One Tesla V100 (35..306 W) for 2 h.
    assert close(gpu["ccf_kwh"].sum(), (35 + 0.5 * (306 - 35)) * 1 * 2 * PUE / 1000)


def test_unknown_usage_is_scaled_by_kwh_per_cost_of_the_same_unit(tmp_path: Path) -> None:
    path = write_cur(
        tmp_path / "u.csv",
        [
            ("AmazonEC2", "USE1-BoxUsage:c5.large", "4", "0.34", "Hrs", "us-east-1", "2"),
            ("AmazonEC2", "USE1-NatGateway-Hours", "4", "0.18", "Hrs"),
            ("AmazonVPC", "USE1-VpcEndpoint-Hours", "2", "0.02", "Hrs"),
        ],
    )
    frame = billing.estimate(path)
    c5 = kinds(frame, "USE1-BoxUsage:c5.large")
    known_kwh = sum(c5.values())  # compute + memory + embodied "kWh", as CCF accumulates
    per_cost = known_kwh / 0.34
    assert close(kinds(frame, "USE1-NatGateway-Hours")["unknown"], per_cost * 0.18)
    assert close(kinds(frame, "USE1-VpcEndpoint-Hours")["unknown"], per_cost * 0.02)
    unknown = frame.filter(pl.col("usage_kind") == "unknown")
    # CCF's CO2e is kWh x grid factor; carbonbook splits it into use and embodied parts.
    assert close(unknown["ccf_co2e_kg"].sum(), per_cost * 0.20 * EF_USE1 * 1000)
    embodied_share = c5["embodied"] / known_kwh
    assert close(
        unknown["embodied_co2e_kg"].sum(), unknown["ccf_co2e_kg"].sum() * embodied_share
    )


def test_u_family_embodied_quirk_and_its_correction(tmp_path: Path) -> None:
    path = write_cur(
        tmp_path / "u6.csv",
        [("AmazonEC2", "USE1-BoxUsage:u-6tb1.metal", "1", "55", "Hrs", "us-east-1", "448")],
    )
    quirk = kinds(billing.estimate(path), "USE1-BoxUsage:u-6tb1.metal")["embodied"]
    fixed = billing.estimate(path, corrections=("u_family_embodied",))
    # CCF reads 6144 (the memory position) as tonnes; the table's figure is 35.762264 t.
    assert close(quirk, 6144 * 1 / (35040 * 448) / EF_USE1)
    assert close(
        kinds(fixed, "USE1-BoxUsage:u-6tb1.metal")["embodied"],
        35.762264 * 1 / (35040 * 448) / EF_USE1,
    )


def test_unknown_same_service_correction_prefers_the_service_ratio(tmp_path: Path) -> None:
    path = write_cur(
        tmp_path / "svc.csv",
        [
            ("AmazonEC2", "USE1-BoxUsage:m5.large", "1", "0.1", "Hrs", "us-east-1", "2"),
            (
                "AmazonRDS",
                "USE1-InstanceUsage:db.r5.large",
                "1",
                "0.3",
                "Hrs",
                "us-east-1",
                "2",
            ),
            ("AmazonRDS", "USE1-RDS:Proxy-Hours", "1", "0.3", "Hrs"),
            ("AmazonRDS", "USE1-SoftwareUsage:x", "1", "0.3", "Hrs"),
        ],
    )
    frame = billing.estimate(path, corrections=("unknown_same_service",))
    rds = sum(kinds(frame, "USE1-InstanceUsage:db.r5.large").values())
    assert close(kinds(frame, "USE1-SoftwareUsage:x")["unknown"], rds / 0.3 * 0.3)
    default = billing.estimate(path)
    both = sum(kinds(default, "USE1-BoxUsage:m5.large").values()) + rds
    assert close(kinds(default, "USE1-SoftwareUsage:x")["unknown"], both / 0.4 * 0.3)


def test_group_rule_reproduces_every_resolved_aws_coefficient() -> None:
    for row in csv.DictReader(
        (Path(ccf.__file__).parent.parent / "data" / "instance_types.csv").open()
    ):
        if row["provider"] != "aws":
            continue
        names = [m for m in row["microarchitectures"].split(";") if m and m != "Unknown"]
        low, high, _ = ccf.group_watts("aws", names)
        assert (low, high) == (
            float(row["resolved_min_watts_per_vcpu"]),
            float(row["resolved_max_watts_per_vcpu"]),
        ), row["instance_type"]
        memory = ccf.group_memory_gb_per_chip("aws", names)
        assert memory == pytest.approx(float(row["resolved_gb_per_physical_chip"]), rel=1e-12)


def test_grid_factor_falls_back_to_unknown() -> None:
    assert ccf.tables().grid_factor("aws", "eu-west-3") == (0.0000511, "eu-west-3")
    assert ccf.tables().grid_factor("aws", "mars-1") == (0.00039278188, "Unknown")


# --- the frame -------------------------------------------------------------------------


def test_frame_has_the_emissions_schema_and_billing_columns() -> None:
    frame = billing.estimate(DATA / "aws_legacy_hourly.csv")
    schema = emissions_schema()
    for name in EMISSIONS_COLUMNS:
        assert frame.schema[name] == schema[name], name
    for name in ("co2e_kg", "embodied_co2e_kg", "cost", "method", "ccf_kwh", "coefficients"):
        assert name in frame.columns
    assert set(frame["usage_kind"]) == {
        "compute",
        "memory",
        "storage",
        "network",
        "embodied",
        "unknown",
    }
    assert set(frame["source"]) == {"billing"}
    hourly = frame.filter(pl.col("usage_type") == "USE1-BoxUsage:m5.large")
    assert set((hourly["end"] - hourly["start"]).dt.total_hours()) == {1}
    assert hourly.filter(pl.col("usage_kind") == "compute").height == 48
    assert frame.filter(pl.col("region") == "eu-west-3")["zone"][0] == "aws:eu-west-3"
    compute = frame.filter(pl.col("usage_kind") == "compute")
    assert close(compute["co2e_location_kg"].sum(), compute["co2e_kg"].sum())


def test_both_conventions_and_every_format_agree() -> None:
    sources = [
        DATA / "aws_legacy_hourly.csv",
        DATA / "aws_legacy_hourly.csv.gz",
        DATA / "aws_cur2_hourly.csv",
        DATA / "aws_cur2",
        str(DATA / "aws_cur2" / "*.parquet"),
        [DATA / "aws_cur2" / "2024-01.parquet", DATA / "aws_cur2" / "2024-02.parquet"],
    ]
    totals = []
    for source in sources:
        frame = billing.estimate(source)
        totals.append((frame.height, frame["ccf_co2e_kg"].sum(), frame["cost"].sum()))
    first = totals[0]
    assert first[1] > 0
    for height, co2e, cost in totals[1:]:
        assert height == first[0]
        assert close(co2e, first[1])
        assert cost == pytest.approx(first[2])


def test_group_by_and_tags() -> None:
    by_day = billing.estimate(DATA / "aws_legacy_hourly.csv", group_by=["day", "service"])
    assert by_day.height == by_day.select("day", "service").unique().height
    full = billing.estimate(DATA / "aws_legacy_hourly.csv", tags=["user:team"])
    assert close(by_day["ccf_co2e_kg"].sum(), full["ccf_co2e_kg"].sum())
    assert set(full["tag:user:team"]) == {"data", "platform", ""}
    with pytest.raises(BillingError, match="cannot group"):
        billing.estimate(DATA / "aws_legacy_hourly.csv", group_by="colour")


# --- what is not estimated -------------------------------------------------------------


def test_unclassified_lists_everything_set_aside() -> None:
    summary = billing.unclassified(DATA / "aws_legacy_hourly.csv")
    reasons = dict(zip(summary["usage_type"].fill_null(""), summary["reason"], strict=False))
    assert "not a CCF networking usage type" in reasons["US-DataTransfer-Out-Bytes"]
    assert "does not support" in reasons["USE1-ECS-EC2-GB-Hours"]
    assert "no known 'HostedZone' usage" in reasons["HostedZone"]
    types = summary.filter(pl.col("line_item_type").is_in(["Tax", "Credit"]))
    assert types["rows"].sum() == 4
    assert types["cost"].sum() < 0  # credits outweigh the tax here
    assert not summary["estimated"].any()


def test_unknown_region_is_estimated_and_reported(tmp_path: Path) -> None:
    path = write_cur(
        tmp_path / "r.csv",
        [("AmazonEC2", "XX-DataTransfer-Out-Bytes", "1", "0.09", "GB", "mars-1")],
    )
    result = billing.run(path)
    assert close(result.frame["ccf_co2e_kg"].sum(), 0.001 * PUE * 0.00039278188 * 1000)
    row = result.unclassified.filter(pl.col("region") == "mars-1")
    assert row["estimated"].to_list() == [True]
    assert "Unknown" in result.frame["intensity_note"][0]


# --- bad input -------------------------------------------------------------------------


def test_missing_column_names_it_and_the_convention(tmp_path: Path) -> None:
    header = tuple(h for h in HEADER if h != "pricing/unit")
    path = tmp_path / "m.csv"
    path.write_text(",".join(header) + "\n")
    with pytest.raises(BillingError, match=r"legacy CUR.*'pricing/unit'") as caught:
        billing.estimate(path)
    assert isinstance(caught.value, CarbonbookError)


def test_garbage_value_sets_the_row_aside_or_fails_when_strict(tmp_path: Path) -> None:
    path = write_cur(
        tmp_path / "g.csv",
        [
            ("AmazonEC2", "USE1-BoxUsage:m5.large", "1", "0.096", "Hrs", "us-east-1", "2"),
            ("AmazonEC2", "USE1-BoxUsage:m5.large", "lots", "0.096", "Hrs", "us-east-1", "2"),
        ],
    )
    result = billing.run(path)
    assert result.frame.filter(pl.col("usage_kind") == "compute")["line_items"].sum() == 1
    bad = result.unclassified.filter(pl.col("reason") == "unparseable usage_amount")
    assert bad["rows"].to_list() == [1]
    assert "line 3, column lineItem/UsageAmount: value 'lots'" in bad["example"][0]
    with pytest.raises(BillingError, match=r"g\.csv, line 3, column lineItem/UsageAmount"):
        billing.estimate(path, strict=True)


def test_unknown_file_and_missing_source(tmp_path: Path) -> None:
    other = tmp_path / "other.csv"
    other.write_text("a,b\n1,2\n")
    with pytest.raises(BillingError, match="lineItem/UsageType"):
        billing.estimate(other)
    with pytest.raises(BillingError, match="does not exist"):
        billing.estimate(tmp_path / "nope.csv")
    with pytest.raises(BillingError, match="unknown provider"):
        billing.estimate(other, provider="oracle")
    with pytest.raises(BillingError, match="unknown correction"):
        billing.estimate(other, corrections=("nice",))  # type: ignore[arg-type]


def test_folder_of_monthly_files_is_one_source(tmp_path: Path) -> None:
    folder = tmp_path / "cur" / "20240101-20240201"
    folder.mkdir(parents=True)
    shutil.copy(DATA / "aws_cur2" / "2024-01.parquet", folder)
    shutil.copy(DATA / "aws_cur2" / "2024-02.parquet", tmp_path / "cur")
    frame = billing.estimate(tmp_path / "cur")
    assert frame["start"].dt.month().unique().sort().to_list() == [1, 2]


def test_importing_carbonbook_does_not_import_billing() -> None:
    import subprocess
    import sys

    code = "import sys, carbonbook; print('carbonbook.billing' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"
