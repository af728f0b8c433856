"""Exports: CSV and Parquet round trips, CodeCarbon's layout and hand-checked figures."""

from __future__ import annotations

import csv
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from carbonbook.export import (
    CODECARBON_COLUMNS,
    ExportError,
    domain_column,
    export_records,
    records_to_frame,
)
from carbonbook.ledger import Ledger, LedgerError, read_ledger
from tests.test_ledger import domain, make_record, varied_records


@pytest.fixture
def ledger_frame(tmp_path: Path) -> pl.DataFrame:
    with Ledger(tmp_path / "ledger.sqlite") as ledger:
        for record in varied_records():
            ledger.append(record)
    return read_ledger(tmp_path / "ledger.sqlite")


def codecarbon_rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
        return list(reader.fieldnames or []), rows


def test_domain_column_names() -> None:
    assert domain_column("gpu:0") == "energy_gpu_0_j"
    assert domain_column("cpu") == "energy_cpu_j"
    assert domain_column("Package-0 / DRAM") == "energy_package_0_dram_j"


def test_records_to_frame_matches_read_ledger(ledger_frame: pl.DataFrame) -> None:
    assert_frame_equal(records_to_frame(varied_records()), ledger_frame)


def test_empty_frame_keeps_the_types() -> None:
    frame = records_to_frame([])
    assert frame.height == 0
    assert frame.schema["ended_at"] == pl.Datetime("us", "UTC")
    assert frame.schema["kernel_pid"] == pl.Int64
    assert frame.columns[-1] == "domains_json"


def test_parquet_round_trip(ledger_frame: pl.DataFrame, tmp_path: Path) -> None:
    written = export_records(ledger_frame, tmp_path / "out.parquet")
    assert written == tmp_path / "out.parquet"
    assert_frame_equal(pl.read_parquet(written), ledger_frame)


def test_csv_from_records(tmp_path: Path) -> None:
    written = export_records(varied_records(), tmp_path / "out.CSV")
    back = pl.read_csv(written, try_parse_dates=True, infer_schema_length=None)
    assert back.columns == records_to_frame(varied_records()).columns
    assert back["record_id"].to_list() == [r.record_id for r in varied_records()]
    assert back["energy_gpu_1_j"].to_list() == [0.0, 100.0, 0.0, 0.0]
    assert back["label"][1] == "träin — ünïcode ✓ 数据"
    assert back["started_at"][0] == varied_records()[0].started_at


def test_format_argument_wins_over_the_suffix(tmp_path: Path) -> None:
    written = export_records([make_record()], tmp_path / "records.txt", format="parquet")
    assert pl.read_parquet(written).height == 1


def test_unknown_suffix_or_format(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"end it in \.csv or \.parquet, or pass format="):
        export_records([make_record()], tmp_path / "records.txt")
    with pytest.raises(ValueError, match="unknown export format 'xlsx'"):
        export_records([make_record()], tmp_path / "r.csv", format="xlsx")  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


def test_bad_paths(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match=r"directory .*missing does not exist"):
        export_records([make_record()], tmp_path / "missing" / "out.csv")
    with pytest.raises(LedgerError, match="is a directory"):
        export_records([make_record()], tmp_path, format="csv")
    assert list(tmp_path.iterdir()) == []


def test_bad_source(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="DataFrame or a list of CellRecord"):
        export_records(["not a record"], tmp_path / "x.csv")  # type: ignore[list-item]


def test_existing_file_is_replaced(tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    target.write_text("old")
    export_records([make_record(0), make_record(1)], target)
    assert pl.read_csv(target).height == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"]


# -- CodeCarbon ------------------------------------------------------------------------


def test_codecarbon_columns_and_hand_checked_values(tmp_path: Path) -> None:
    # 3600 J over 10 s at 100 g/kWh: 0.001 kWh, 0.1 g = 1e-4 kg, 360 W on average.
    record = make_record()
    written = export_records([record], tmp_path / "emissions.csv", format="codecarbon")
    header, [row] = codecarbon_rows(written)
    assert header == list(CODECARBON_COLUMNS)
    assert len(header) == 38
    assert row["timestamp"] == "2024-05-01T12:00:10+00:00"
    assert row["project_name"] == "analysis"
    assert row["run_id"] == "session-a"
    assert float(row["duration"]) == 10.0
    assert float(row["energy_consumed"]) == pytest.approx(0.001)
    assert float(row["cpu_energy"]) == pytest.approx(0.001)
    assert float(row["emissions"]) == pytest.approx(1e-4)
    assert float(row["emissions_rate"]) == pytest.approx(1e-5)
    assert float(row["cpu_power"]) == pytest.approx(360.0)
    assert float(row["gpu_power"]) == 0.0
    assert row["country_iso_code"] == "FRA"
    assert row["on_cloud"] == "N"
    assert row["cloud_provider"] == row["cloud_region"] == ""
    assert row["tracking_mode"] == "process"
    assert float(row["pue"]) == 1.0
    for unknown in ("cpu_model", "gpu_count", "ram_total_size", "os", "water_consumed", "wue"):
        assert row[unknown] == ""


def test_codecarbon_parts_and_pue(tmp_path: Path) -> None:
    record = make_record(
        zone="aws:eu-west-3",
        notebook_path=None,
        pue=1.5,
        energy_j=4400.0,
        co2e_g=4400.0 / 3.6e6 * 51.1 * 1.5,
        domains=(
            domain("psys", 3600.0),
            domain("cpu", 3000.0, additive=False),
            domain("dram", 500.0, additive=False),
            domain("gpu:0", 500.0),
            domain("gpu:1", 300.0),
        ),
    )
    _, [row] = codecarbon_rows(
        export_records([record], tmp_path / "cc.csv", format="codecarbon")
    )
    assert row["project_name"] == "carbonbook"
    assert float(row["cpu_energy"]) == pytest.approx(3600.0 * 1.5 / 3.6e6)
    assert float(row["gpu_energy"]) == pytest.approx(800.0 * 1.5 / 3.6e6)
    assert float(row["ram_energy"]) == 0.0
    assert float(row["gpu_power"]) == pytest.approx(800.0 * 1.5 / 10.0)
    assert float(row["energy_consumed"]) == pytest.approx(4400.0 * 1.5 / 3.6e6)
    assert float(row["emissions"]) == pytest.approx(record.co2e_g / 1000.0)
    assert (row["cloud_provider"], row["cloud_region"], row["on_cloud"]) == (
        "aws",
        "eu-west-3",
        "Y",
    )
    assert row["country_iso_code"] == "FRA"


def test_codecarbon_zones_and_zero_duration(tmp_path: Path) -> None:
    records = [
        make_record(0, zone="US-CAL-CISO", domains=(domain("dram", 3600.0),)),
        make_record(1, zone="unknown"),
        make_record(2, duration_s=0.0, ended_at=make_record(2).started_at),
    ]
    _, rows = codecarbon_rows(export_records(records, tmp_path / "cc.csv", format="codecarbon"))
    assert [r["country_iso_code"] for r in rows] == ["USA", "", "FRA"]
    assert float(rows[0]["ram_energy"]) == pytest.approx(0.001)
    assert float(rows[2]["emissions_rate"]) == 0.0
    assert float(rows[2]["cpu_power"]) == 0.0


def test_codecarbon_from_a_ledger_frame(ledger_frame: pl.DataFrame, tmp_path: Path) -> None:
    _, rows = codecarbon_rows(
        export_records(ledger_frame, tmp_path / "cc.csv", format="codecarbon")
    )
    assert [r["run_id"] for r in rows] == ["session-a"] * 3 + ["session-b"]
    assert rows[1]["timestamp"] == "2024-05-01T12:00:30+00:00"
    assert float(rows[1]["gpu_energy"]) == pytest.approx(600.0 / 3.6e6)


def test_codecarbon_needs_the_ledger_columns(
    ledger_frame: pl.DataFrame, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match="lacks the columns domains_json"):
        export_records(
            ledger_frame.drop("domains_json"), tmp_path / "cc.csv", format="codecarbon"
        )
