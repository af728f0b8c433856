"""GCP billing exports to CCF's kWh and CO2e, checked by hand against CCF's arithmetic.

Each hand-checked case writes a few flattened BigQuery export rows, estimates them, and
compares with the arithmetic CCF's BigQuery code does, written out in the test with the
coefficients from CCF's tables: us-central1 has PUE 1.11 and 0.000456 t CO2e/kWh.
"""

from __future__ import annotations

import csv
import statistics
from pathlib import Path

import polars as pl
import pytest

from carbonbook import billing
from carbonbook.billing import BillingError, gcp

DATA = Path(__file__).parent / "data" / "billing"
PUE = 1.11  # us-central1
EF = 0.000456  # t CO2e / kWh, us-central1
LIFESPAN_H = 35040
GIB = 2**30
TIB = 2**40
HEADER = (
    "service.description",
    "sku.description",
    "usage.amount",
    "cost",
    "usage.unit",
    "location.region",
    "compute.googleapis.com/machine_spec",
    "project.id",
    "usage_start_time",
    "usage_end_time",
    "cost_type",
)


def write_export(
    path: Path, rows: list[tuple[str, ...]], header: tuple[str, ...] = HEADER
) -> Path:
    """A flattened export of (service, SKU, amount, cost, unit[, region, machine]) rows."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for row in rows:
            service, sku, amount, cost, unit, *rest = row
            region, machine = (list(rest) + ["us-central1", ""][len(rest) :])[:2]
            values = {
                "service.description": service,
                "sku.description": sku,
                "usage.amount": amount,
                "cost": cost,
                "usage.unit": unit,
                "location.region": region,
                "compute.googleapis.com/machine_spec": machine,
                "project.id": "my-project",
                "usage_start_time": "2024-01-15 10:00:00 UTC",
                "usage_end_time": "2024-01-15 11:00:00 UTC",
                "cost_type": "regular",
            }
            writer.writerow(values[name] for name in header)
    return path


def kinds(frame: pl.DataFrame, sku: str) -> dict[str, float]:
    """CCF kWh per usage kind of one SKU."""
    rows = frame.filter(pl.col("usage_type") == sku)
    return dict(rows.group_by("usage_kind").agg(pl.col("ccf_kwh").sum()).iter_rows())


def close(actual: float, expected: float) -> bool:
    return actual == pytest.approx(expected, rel=1e-6)


N1_CORE = "N1 Predefined Instance Core running in Americas"


# --- hand-checked CCF arithmetic -------------------------------------------------------


def test_compute_with_a_known_machine_type_and_its_embodied_emissions(tmp_path: Path) -> None:
    path = write_export(
        tmp_path / "n1.csv",
        [
            (
                "Compute Engine",
                N1_CORE,
                "7200",
                "0.06",
                "seconds",
                "us-central1",
                "n1-standard-2",
            )
        ],
    )
    frame = billing.estimate(path)
    # n1 -> Skylake, Broadwell, Haswell, Sandy Bridge, Ivy Bridge: the median (Sandy/Ivy)
    # of min 0.65, 0.71, 1, 2.17, 3.04 and max 4.26, 3.69, 4.74, 8.58, 8.25.
    min_w, max_w = 1.0, 4.74
    vcpu_hours = 7200 / 3600
    compute_kwh = (min_w + 0.5 * (max_w - min_w)) * vcpu_hours * PUE / 1000
    # n1-standard-2: 2 vCPUs, 1.6771 t; family largest n1-standard-96 (96 vCPUs).
    embodied_t = 1.6771 * (7200 / 2 / 3600 / LIFESPAN_H) * (2 / 96)
    got = kinds(frame, N1_CORE)
    assert close(got["compute"], compute_kwh)
    assert close(got["embodied"], embodied_t / EF)
    assert close(frame["ccf_co2e_kg"].sum(), (compute_kwh * EF + embodied_t) * 1000)
    assert close(frame["embodied_co2e_kg"].sum(), embodied_t * 1000)
    assert close(frame["energy_kwh"].sum(), compute_kwh / PUE)
    assert frame["cost"].sum() == pytest.approx(0.06)
    assert set(frame["provider"]) == {"gcp"}
    assert set(frame["account"]) == {"my-project"}


def test_processor_lookup_uses_the_first_two_characters(tmp_path: Path) -> None:
    path = write_export(
        tmp_path / "n2d.csv",
        [
            (
                "Compute Engine",
                "N2D AMD Instance Core",
                "3600",
                "0.03",
                "seconds",
                "",
                "n2d-standard-2",
            )
        ],
    )
    # n2d resolves to the n2 key (Cascade Lake 0.64 / 3.97), not AMD EPYC 2nd Gen.
    expected = (0.64 + 0.5 * (3.97 - 0.64)) * 1 * 1.1 / 1000  # no region: PUE 1.1
    assert close(kinds(billing.estimate(path), "N2D AMD Instance Core")["compute"], expected)


def test_shared_core_machine_uses_the_average_and_the_shared_core_family(
    tmp_path: Path,
) -> None:
    sku = "E2 Instance Core running in Americas"
    path = write_export(
        tmp_path / "e2.csv",
        [("Compute Engine", sku, "3600", "0.01", "seconds", "us-central1", "e2-micro")],
    )
    got = kinds(billing.estimate(path), sku)
    assert close(got["compute"], (0.68 + 0.5 * (4.11 - 0.68)) * 1 * PUE / 1000)
    # e2-micro: 2 vCPUs and 1.2303 t in the e2 shared-core table, largest e2-standard-32.
    assert close(got["embodied"], 1.2303 * (3600 / 2 / 3600 / LIFESPAN_H) * (2 / 32) / EF)


def test_gke_clusters_use_three_vcpus_of_an_e2_medium(tmp_path: Path) -> None:
    zonal, regional = "Kubernetes Clusters", "Regional Kubernetes Clusters"
    path = write_export(
        tmp_path / "gke.csv",
        [
            ("Kubernetes Engine", zonal, "3600", "0.1", "seconds"),
            ("Kubernetes Engine", regional, "3600", "0.1", "seconds"),
        ],
    )
    frame = billing.estimate(path)
    per_vcpu_h = (0.68 + 0.5 * (4.11 - 0.68)) * PUE / 1000  # e2-medium -> the average
    assert close(kinds(frame, zonal)["compute"], per_vcpu_h * 3)
    assert close(
        kinds(frame, regional)["compute"], per_vcpu_h * 3 * 3
    )  # KUBERNETES_ENGINE rf 3
    embodied_t = 1.2303 * (3600 / 2 / 3600 / LIFESPAN_H) * (2 / 32)
    assert close(kinds(frame, zonal)["embodied"], embodied_t / EF)


def test_gpu_hours_and_models(tmp_path: Path) -> None:
    v100 = "Nvidia Tesla V100 GPU running in Americas"
    t4 = "Nvidia Tesla T4 GPU running in Americas"
    path = write_export(
        tmp_path / "gpu.csv",
        [
            ("Compute Engine", v100, "7200", "5", "seconds", "us-central1"),
            ("Compute Engine", t4, "3600", "0.35", "seconds", "us-central1"),
        ],
    )
    frame = billing.estimate(path)
    assert close(kinds(frame, v100)["compute"], (35 + 0.5 * (306 - 35)) * 2 * PUE / 1000)
    # "Nvidia Tesla T4" starts with no listed model ("Nvidia T4"): the six are averaged.
    mins, maxs = [8, 35, 35, 46, 9, 36], [71, 306, 306, 407, 76.5, 306]
    mean_min, mean_max = statistics.fmean(mins), statistics.fmean(maxs)
    assert close(
        kinds(frame, t4)["compute"], (mean_min + 0.5 * (mean_max - mean_min)) * PUE / 1000
    )
    gpu = frame.filter(pl.col("usage_type") == v100)
    assert gpu["method"].to_list() == ["ccf:compute:gpu"]
    assert gpu["cost"].to_list() == [5.0]


def test_memory_storage_and_network(tmp_path: Path) -> None:
    ram, ssd, regional, bucket, egress = (
        "N1 Predefined Instance Ram running in Americas",
        "SSD backed PD Capacity",
        "Regional Storage PD Capacity",
        "Standard Storage US Multi-region",
        "Network Internet Egress from Americas to EMEA",
    )
    byte_hours = str(4 * GIB * 3600)
    path = write_export(
        tmp_path / "msn.csv",
        [
            ("Compute Engine", ram, byte_hours, "0.02", "byte-seconds", "us-central1"),
            ("Compute Engine", ssd, str(TIB * 3600), "0.2", "byte-seconds", "us-central1"),
            ("Compute Engine", regional, str(TIB * 3600), "0.1", "byte-seconds", "us-central1"),
            ("Cloud Storage", bucket, str(TIB * 7200), "0.1", "byte-seconds", "europe-west1"),
            ("Compute Engine", egress, str(3 * GIB), "0.3", "bytes", "us-central1"),
        ],
    )
    frame = billing.estimate(path)
    assert close(kinds(frame, ram)["memory"], 4 * 0.000392 * PUE)  # 4 GB-h, no replication
    assert close(kinds(frame, ssd)["storage"], 1 * 1.2 * PUE / 1000)  # 1 TB-h, rf 1
    assert close(kinds(frame, regional)["storage"], 1 * 0.65 * PUE * 2 / 1000)  # regional rf 2
    # Cloud Storage always replicates twice; europe-west1 has PUE 1.09.
    assert close(kinds(frame, bucket)["storage"], 2 * 0.65 * 1.09 * 2 / 1000)
    assert close(kinds(frame, egress)["network"], 3 * 0.001 * PUE)
    memory = frame.filter(pl.col("usage_type") == ram)
    assert memory["cost"].to_list() == [0.02]
    assert frame.filter(pl.col("usage_type") == ssd)["method"].to_list() == ["ccf:storage:ssd"]


def test_unknown_usage_is_scaled_by_kwh_per_usage_amount_without_embodied(
    tmp_path: Path,
) -> None:
    pod = "Autopilot Pod mCPU Requests (us-central1)"
    path = write_export(
        tmp_path / "u.csv",
        [
            (
                "Compute Engine",
                N1_CORE,
                "7200",
                "0.06",
                "seconds",
                "us-central1",
                "n1-standard-2",
            ),
            ("Cloud Run", "CPU Allocation Time", "1800", "0.04", "seconds", "us-central1"),
            ("Kubernetes Engine", pod, "3600000", "0.05", "seconds", "us-central1"),
        ],
    )
    frame = billing.estimate(path)
    known = kinds(frame, N1_CORE)
    per_second = known["compute"] / 7200  # CCF accumulates compute kWh only, not embodied
    assert close(kinds(frame, "CPU Allocation Time")["unknown"], per_second * 1800)
    # mCPU-seconds are divided by 1000 before the ratio is applied.
    assert close(kinds(frame, pod)["unknown"], per_second * 3600)
    unknown = frame.filter(pl.col("usage_kind") == "unknown")
    assert close(unknown["ccf_co2e_kg"].sum(), per_second * 5400 * EF * 1000)
    assert unknown["embodied_co2e_kg"].sum() == 0


def test_unsupported_and_unqueried_rows_are_reported(tmp_path: Path) -> None:
    path = write_export(
        tmp_path / "s.csv",
        [
            (
                "Compute Engine",
                N1_CORE,
                "3600",
                "0.03",
                "seconds",
                "us-central1",
                "n1-standard-2",
            ),
            ("Support", "Standard Support Fee", "1", "9.5", "seconds", ""),
            ("Cloud Logging", "Log Volume", "3", "0.5", "gibibyte", "global"),
            ("Cloud Storage", "Class A Operations", "1000", "0.005", "requests", ""),
        ],
    )
    result = billing.run(path)
    reasons = dict(result.unclassified.select("usage_type", "reason").iter_rows())
    assert reasons["Standard Support Fee"] == "usage type CCF does not support"
    assert "'gibibyte' is not queried" in reasons["Log Volume"]
    assert "no known 'requests' usage" in reasons["Class A Operations"]
    assert set(result.frame["usage_type"]) == {N1_CORE}


# --- reading ---------------------------------------------------------------------------


def test_flattened_json_lines_and_parquet_exports_agree() -> None:
    frames = [
        billing.estimate(DATA / f"gcp_billing_export.{suffix}")
        for suffix in ("csv", "jsonl", "parquet")
    ]
    for frame in frames[1:]:
        assert frame.height == frames[0].height
        assert close(frame["ccf_co2e_kg"].sum(), frames[0]["ccf_co2e_kg"].sum())
        assert close(frame["cost"].sum(), frames[0]["cost"].sum())
    csv_frame = frames[0]
    assert set(csv_frame["usage_kind"]) == {
        "compute",
        "memory",
        "storage",
        "network",
        "embodied",
        "unknown",
    }
    assert set(csv_frame["account"]) == {"analytics-prod-4821", "ml-sandbox-1177"}
    # location.region is empty for the multi-region bucket: location.location ("us") is used.
    bucket = csv_frame.filter(pl.col("service") == "Cloud Storage")
    assert set(bucket["region"]) == {"us"}
    assert set(bucket["intensity_zone"]) == {"us"}
    hourly = csv_frame.filter(
        pl.col("usage_type") == N1_CORE, pl.col("usage_kind") == "compute"
    )
    assert set((hourly["end"] - hourly["start"]).dt.total_hours()) == {1}
    assert hourly.height == 48


def test_the_machine_spec_is_read_from_nested_system_labels() -> None:
    frame = billing.estimate(DATA / "gcp_billing_export.parquet")
    gpu = frame.filter(pl.col("usage_type").str.contains("V100"))
    assert {"compute", "embodied"} == set(gpu["usage_kind"])
    assert "machine=n1-standard-8" in gpu["coefficients"][0]


def test_rounding_errors_are_set_aside() -> None:
    summary = billing.unclassified(DATA / "gcp_billing_export.csv")
    row = summary.filter(pl.col("line_item_type") == "rounding_error")
    assert row["rows"].to_list() == [1]


def test_provider_is_detected_and_can_be_forced(tmp_path: Path) -> None:
    path = write_export(
        tmp_path / "d.csv", [("Compute Engine", N1_CORE, "3600", "1", "seconds")]
    )
    assert gcp.detect(billing.source.columns_of(path)) is gcp.CONVENTIONS[0]
    assert billing.estimate(path, "gcp").height == billing.estimate(path).height
    with pytest.raises(BillingError, match="AWS"):
        billing.estimate(path, "aws")


def test_missing_column_names_the_column_and_the_convention(tmp_path: Path) -> None:
    header = tuple(name for name in HEADER if name != "usage.amount")
    path = write_export(
        tmp_path / "m.csv", [("Compute Engine", N1_CORE, "1", "1", "seconds")], header
    )
    with pytest.raises(BillingError) as caught:
        billing.estimate(path)
    assert "'usage.amount' or 'usage_amount'" in str(caught.value)
    assert "GCP BigQuery billing export" in str(caught.value)


def test_garbage_amount_is_set_aside_or_raised_when_strict(tmp_path: Path) -> None:
    path = write_export(
        tmp_path / "g.csv",
        [
            ("Compute Engine", N1_CORE, "3600", "0.03", "seconds"),
            ("Compute Engine", N1_CORE, "lots", "0.03", "seconds"),
        ],
    )
    result = billing.run(path)
    bad = result.unclassified.filter(pl.col("reason") == "unparseable usage_amount")
    assert bad["rows"].to_list() == [1]
    assert "line 3, column usage.amount: value 'lots'" in bad["example"][0]
    assert result.frame.filter(pl.col("usage_kind") == "compute")["line_items"].sum() == 1
    with pytest.raises(BillingError, match=r"line 3, column usage\.amount"):
        billing.estimate(path, strict=True)


def test_unknown_region_is_estimated_with_ccf_unknown_factor(tmp_path: Path) -> None:
    egress = "Network Internet Egress from Americas to Mars"
    path = write_export(
        tmp_path / "r.csv", [("Compute Engine", egress, str(GIB), "0.1", "bytes", "mars1")]
    )
    result = billing.run(path)
    # Unknown region: PUE 1.1 and CCF's GCP Unknown factor 0.0003171470588 t/kWh.
    assert close(result.frame["ccf_co2e_kg"].sum(), 0.001 * 1.1 * 0.0003171470588 * 1000)
    row = result.unclassified.filter(pl.col("region") == "mars1")
    assert row["estimated"].to_list() == [True]
    assert result.frame["intensity_zone"].to_list() == ["Unknown"]
