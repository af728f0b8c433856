"""Azure cost exports to CCF's kWh and CO2e, checked by hand against CCF's arithmetic.

Each hand-checked case writes a few export rows, estimates them, and compares with the
arithmetic CCF's consumption code does, written out in the test with the coefficients
from CCF's tables: Azure PUE is 1.185 everywhere and EastUS has 0.000379069 t CO2e/kWh.
"""

from __future__ import annotations

import csv
from pathlib import Path

import polars as pl
import pytest

from carbonbook import billing
from carbonbook.billing import BillingError, azure

DATA = Path(__file__).parent / "data" / "billing"
PUE = 1.185
EF = 0.000379069  # t CO2e / kWh, EastUS
EF_UNKNOWN = 0.0003512799615
LIFESPAN_H = 35040
EA = {
    "service": "MeterCategory",
    "meter": "MeterName",
    "unit": "UnitOfMeasure",
    "amount": "Quantity",
    "cost": "CostInBillingCurrency",
    "region": "ResourceLocation",
    "account": "SubscriptionId",
    "date": "Date",
}
MCA = {key: value[0].lower() + value[1:] for key, value in EA.items()}


def write_export(
    path: Path,
    rows: list[tuple[str, ...]],
    names: dict[str, str] = EA,
    date: str = "01/31/2024",
) -> Path:
    """An export of (category, meter, quantity, cost, unit[, location]) rows."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(names.values())
        for service, meter, amount, cost, unit, *rest in rows:
            values = {
                "service": service,
                "meter": meter,
                "unit": unit,
                "amount": amount,
                "cost": cost,
                "region": rest[0] if rest else "US East",
                "account": "sub-1",
                "date": date,
            }
            writer.writerow(values[key] for key in names)
    return path


def kinds(frame: pl.DataFrame, meter: str) -> dict[str, float]:
    """CCF kWh per usage kind of one meter name."""
    rows = frame.filter(pl.col("usage_type") == meter)
    return dict(rows.group_by("usage_kind").agg(pl.col("ccf_kwh").sum()).iter_rows())


def close(actual: float, expected: float) -> bool:
    return actual == pytest.approx(expected, rel=1e-6)


VM = "Virtual Machines"
# D2s v3 -> Cascade Lake, Skylake, Broadwell, Haswell: the mean of min 0.64, 0.65, 0.71, 1
# and max 3.97, 4.26, 3.69, 4.74; GB per chip the mean of 98.12, 81.32, 69.65, 27.71.
D2S_W = 0.75 + 0.5 * (4.165 - 0.75)
D2S_MEMORY_GBH = (256 / 1 - 69.2) / (256 / 8)  # largest D64s v3: 256 GB on 1 chip; 8 GB
D2S_EMBODIED_T = 1.4829 / (LIFESPAN_H * 64)  # per instance-hour; largest 64 vCPUs
AVERAGE_W = 0.74 + 0.5 * (3.54 - 0.74)


# --- hand-checked CCF arithmetic -------------------------------------------------------


def test_vm_compute_memory_and_embodied(tmp_path: Path) -> None:
    path = write_export(tmp_path / "vm.csv", [(VM, "D2s v3", "10", "0.96", "1 Hour")])
    frame = billing.estimate(path)
    got = kinds(frame, "D2s v3")
    compute = D2S_W * 2 * 10 * PUE / 1000  # 2 vCPUs from the D2s-64s v3 series
    memory = D2S_MEMORY_GBH * 10 * 0.000392 * PUE
    embodied_t = 1.4829 * ((10 / 2) / LIFESPAN_H) * (2 / 64)
    assert close(got["compute"], compute)
    assert close(got["memory"], memory)
    assert close(got["embodied"], embodied_t / EF)
    assert close(frame["ccf_co2e_kg"].sum(), ((compute + memory) * EF + embodied_t) * 1000)
    assert frame["cost"].sum() == pytest.approx(0.96)
    assert set(frame["provider"]) == {"azure"}
    assert set(frame["account"]) == {"sub-1"}
    assert "micro=Cascade Lake/Skylake/Broadwell/Haswell" in frame["coefficients"][0]


def test_constrained_vcpu_type_and_case_sensitive_processor_lookup(tmp_path: Path) -> None:
    path = write_export(
        tmp_path / "c.csv",
        [(VM, "E4-2s v3", "5", "1", "1 Hour"), (VM, "B1ls", "5", "0.1", "1 Hour")],
    )
    frame = billing.estimate(path)
    got = kinds(frame, "E4-2s v3")
    # Not in a series: 2 vCPUs from the constrained table, processors Unknown (average).
    assert close(got["compute"], AVERAGE_W * 2 * 5 * PUE / 1000)
    # Embodied: 1.1722 t over 4 platform vCPUs; no memory estimate outside a series.
    assert close(got["embodied"], 1.1722 * ((5 / 2) / LIFESPAN_H) * (2 / 4) / EF)
    assert "memory" not in got
    # The series spells it B1Ls: the lookup misses, so 1 vCPU and no embodied emissions.
    assert kinds(frame, "B1ls") == pytest.approx({"compute": AVERAGE_W * 1 * 5 * PUE / 1000})


def test_gpu_vm_adds_gpu_hours(tmp_path: Path) -> None:
    path = write_export(tmp_path / "g.csv", [(VM, "NC6s v3", "4", "12", "1 Hour")])
    frame = billing.estimate(path)
    got = kinds(frame, "NC6s v3")
    cpu = AVERAGE_W * 6 * 4 * PUE / 1000  # 6 vCPUs, processors Unknown
    gpu = (35 + 0.5 * (306 - 35)) * 1 * 4 * PUE / 1000  # one Tesla V100
    memory = (448 - 80.47) / (448 / 112) * 4 * 0.000392 * PUE  # largest NC24s v3: 448 GB
    assert close(got["compute"], cpu + gpu)
    assert close(got["memory"], memory)
    assert close(got["embodied"], 2.3491 * 4 / (LIFESPAN_H * 24) / EF)
    methods = set(frame.filter(pl.col("usage_kind") == "compute")["method"])
    assert methods == {"ccf:compute", "ccf:compute:gpu"}


def test_unit_multiplier_is_not_applied_and_spot_is_stripped(tmp_path: Path) -> None:
    path = write_export(
        tmp_path / "u.csv",
        [
            (VM, "D2s v3", "3", "1", "100 Hours"),
            (VM, "D2s v3 Spot", "3", "0.2", "1 Hour"),
        ],
    )
    frame = billing.estimate(path)
    expected = D2S_W * 2 * 3 * PUE / 1000  # 3, not 300, instance-hours
    assert close(kinds(frame, "D2s v3")["compute"], expected)
    assert close(kinds(frame, "D2s v3 Spot")["compute"], expected)


def test_managed_disks_use_the_tier_size_and_ignore_quantity(tmp_path: Path) -> None:
    rows = [
        ("Storage", "P10 LRS Disk", "0.5", "9.8", "1 /Month"),
        ("Storage", "P10 LRS Disk", "0.03", "0.6", "1 /Month"),
        ("Storage", "S10 Disks", "7", "1.3", "1 /Month"),
        ("Container Registry", "Standard Registry Unit", "1", "0.67", "1 /Month"),
    ]
    frame = billing.estimate(write_export(tmp_path / "d.csv", rows))
    # Two P10 lines: 128 GB / 1000 x 24 TB-h each, SSD 1.2 Wh/TB-h, LRS replication 3.
    assert close(
        kinds(frame, "P10 LRS Disk")["storage"], 2 * 128 / 1000 * 24 * 1.2 * 3 * PUE / 1000
    )
    # S10: 128 GB on HDD (0.65), Disks replication 3, whatever the quantity.
    assert close(kinds(frame, "S10 Disks")["storage"], 128 / 1000 * 24 * 0.65 * 3 * PUE / 1000)
    # Standard registry: 100 GB on SSD, no replication rule for the service.
    registry = kinds(frame, "Standard Registry Unit")["storage"]
    assert close(registry, 100 / 1000 * 24 * 1.2 * PUE / 1000)
    assert frame.filter(pl.col("usage_type") == "P10 LRS Disk")["usage_amount"].sum() == 0.53


def test_gb_month_storage_and_replication(tmp_path: Path) -> None:
    rows = [
        ("Storage", "Hot LRS Data Stored", "500", "9", "1 GB/Month"),
        ("Storage", "Hot RA-GRS Data Stored", "500", "9", "1 GB/Month"),
        ("Azure Cosmos DB", "Data Stored", "100", "25", "1 GB/Month"),
        ("Storage", "Archive LRS Data Stored", "2", "4", "1 TB/Month"),
    ]
    frame = billing.estimate(write_export(tmp_path / "s.csv", rows))
    tb_hours = 500 / 1000 * 24  # GB/Month rows are taken as daily GB
    assert close(
        kinds(frame, "Hot LRS Data Stored")["storage"], tb_hours * 1.2 * 3 * PUE / 1000
    )
    assert close(
        kinds(frame, "Hot RA-GRS Data Stored")["storage"], tb_hours * 1.2 * 6 * PUE / 1000
    )
    assert close(kinds(frame, "Data Stored")["storage"], 100 / 1000 * 24 * 1.2 * 4 * PUE / 1000)
    assert close(
        kinds(frame, "Archive LRS Data Stored")["storage"], 2 * 24 * 1.2 * 3 * PUE / 1000
    )


def test_networking_and_unknown_usage_by_quantity_ratio(tmp_path: Path) -> None:
    rows = [
        ("Bandwidth", "Data Transfer Out", "25", "2.1", "1 GB"),
        ("Bandwidth", "Inter-Region Data Transfer Out", "2", "40", "1 TB"),
        ("Load Balancer", "Standard Data Processed", "40", "0.2", "1 GB"),
        (VM, "D2s v3", "10", "0.96", "1 Hour"),
        ("Azure Databricks", "Premium All-purpose Compute DBU", "4", "2.2", "1 Hour"),
    ]
    frame = billing.estimate(write_export(tmp_path / "n.csv", rows))
    assert close(kinds(frame, "Data Transfer Out")["network"], 25 * 0.001 * PUE)
    tb = kinds(frame, "Inter-Region Data Transfer Out")["network"]
    assert close(tb, 2 * 1000 * 0.001 * PUE)  # units with TB count 1000 GB each
    # Load Balancer is unknown: kWh per quantity of the known '1 GB' rows (the '1 TB'
    # row is another unit), times 40.
    per_gb = (25 * 0.001 * PUE) / 25
    assert close(kinds(frame, "Standard Data Processed")["unknown"], per_gb * 40)
    # Databricks: kWh per '1 Hour' of the VM line, embodied "kWh" included.
    vm_hour = (D2S_W * 2 / 1000 + D2S_MEMORY_GBH * 0.000392) * PUE + D2S_EMBODIED_T / EF
    dbu = kinds(frame, "Premium All-purpose Compute DBU")["unknown"]
    assert close(dbu, vm_hour * 4)
    unknown = frame.filter(pl.col("usage_kind") == "unknown")
    assert close(unknown["ccf_co2e_kg"].sum(), (per_gb * 40 + vm_hour * 4) * EF * 1000)


def test_region_aliases_and_an_unknown_region(tmp_path: Path) -> None:
    rows = [
        ("Bandwidth", "Data Transfer Out", "1", "0.1", "1 GB", "US East"),
        ("Bandwidth", "Data Transfer Out", "1", "0.1", "1 GB", "eastus"),
        ("Bandwidth", "Data Transfer Out", "1", "0.1", "1 GB", "EU West"),
        ("Bandwidth", "Data Transfer Out", "1", "0.1", "1 GB", "Mars North"),
    ]
    result = billing.run(write_export(tmp_path / "r.csv", rows))
    by_region = dict(
        result.frame.group_by("region").agg(pl.col("ccf_co2e_kg").sum()).iter_rows()
    )
    assert set(by_region) == {"EastUS", "westeurope", "Mars North"}
    assert close(by_region["EastUS"], 2 * 0.001 * PUE * EF * 1000)
    assert close(by_region["westeurope"], 0.001 * PUE * 0.0003284 * 1000)
    assert close(by_region["Mars North"], 0.001 * PUE * EF_UNKNOWN * 1000)
    fallback = result.unclassified
    assert fallback["region"].to_list() == ["Mars North"]
    assert fallback["estimated"].to_list() == [True]
    zones = dict(result.frame.select("region", "intensity_zone").iter_rows())
    assert zones == {"EastUS": "EastUS", "westeurope": "westeurope", "Mars North": "Unknown"}


def test_unsupported_and_unestimated_rows_are_reported(tmp_path: Path) -> None:
    rows = [
        (VM, "D2s v3", "1", "0.1", "1 Hour"),
        ("Virtual Machines Licenses", "2 vCPU VM License", "24", "1", "1 Hour"),
        ("Storage", "Read Operations", "10", "0.01", "10K"),
        ("Bandwidth", "Data Transfer In", "5", "0", "1 GB"),
    ]
    result = billing.run(write_export(tmp_path / "x.csv", rows))
    reasons = dict(result.unclassified.select("usage_type", "reason").iter_rows())
    assert reasons["2 vCPU VM License"] == "usage type CCF does not support"
    assert reasons["Read Operations"] == "unknown usage with no known '10K' usage to scale from"
    assert reasons["Data Transfer In"] == "networking unit but not a CCF networking meter"
    assert set(result.frame["usage_type"]) == {"D2s v3"}


# --- reading ---------------------------------------------------------------------------


def test_both_conventions_give_identical_results() -> None:
    ea = billing.estimate(DATA / "azure_ea_export.csv")
    mca = billing.estimate(DATA / "azure_mca_export.csv")
    assert ea.height == mca.height > 300
    keys = ["start", "account", "region", "service", "usage_type", "usage_kind", "method"]
    assert ea.sort(keys).equals(mca.sort(keys))
    assert set(ea["usage_kind"]) == {
        "compute",
        "memory",
        "storage",
        "network",
        "embodied",
        "unknown",
    }
    days = ea.filter(pl.col("usage_kind") == "compute")
    assert set((days["end"] - days["start"]).dt.total_days()) == {1}
    assert days["start"].min().isoformat() == "2024-01-25T00:00:00+00:00"  # type: ignore[union-attr]


@pytest.mark.parametrize("date", ["2024-01-31", "01/31/2024", "2024-01-31T00:00:00Z"])
def test_date_spellings_parse(tmp_path: Path, date: str) -> None:
    path = write_export(
        tmp_path / "t.csv", [(VM, "D2s v3", "1", "0.1", "1 Hour")], MCA, date=date
    )
    frame = billing.estimate(path)
    assert frame["start"].dt.strftime("%Y-%m-%d %H").unique().to_list() == ["2024-01-31 00"]
    assert frame["end"].dt.strftime("%Y-%m-%d").unique().to_list() == ["2024-02-01"]


def test_provider_is_detected_and_can_be_forced(tmp_path: Path) -> None:
    path = write_export(tmp_path / "p.csv", [(VM, "D2s v3", "1", "0.1", "1 Hour")], MCA)
    assert azure.detect(billing.source.columns_of(path)) is azure.CONVENTIONS[1]
    assert billing.estimate(path, "azure").height == billing.estimate(path).height
    with pytest.raises(BillingError, match="GCP"):
        billing.estimate(path, "gcp")


def test_missing_column_names_the_column_and_the_convention(tmp_path: Path) -> None:
    names = {key: value for key, value in EA.items() if key != "amount"}
    path = write_export(tmp_path / "m.csv", [(VM, "D2s v3", "1", "1", "1 Hour")], names)
    with pytest.raises(BillingError) as caught:
        billing.estimate(path)
    assert "'Quantity' or 'ConsumedQuantity' or 'UsageQuantity'" in str(caught.value)
    assert "Azure EA cost export" in str(caught.value)


def test_garbage_quantity_is_set_aside_or_raised_when_strict(tmp_path: Path) -> None:
    rows = [(VM, "D2s v3", "1", "0.1", "1 Hour"), (VM, "D2s v3", "many", "0.1", "1 Hour")]
    path = write_export(tmp_path / "q.csv", rows, MCA)
    result = billing.run(path)
    bad = result.unclassified.filter(pl.col("reason") == "unparseable usage_amount")
    assert bad["rows"].to_list() == [1]
    assert "line 3, column quantity: value 'many'" in bad["example"][0]
    assert result.frame.filter(pl.col("usage_kind") == "compute")["line_items"].sum() == 1
    with pytest.raises(BillingError, match="line 3, column quantity"):
        billing.estimate(path, strict=True)
