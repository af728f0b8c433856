"""`carbonbook billing` on the generated AWS exports, in a fresh interpreter."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from carbonbook.billing import estimate

DATA = Path(__file__).parent / "data" / "billing"


def billing(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "carbonbook.cli", "billing", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_table_totals_match_the_library() -> None:
    result = billing(str(DATA / "aws_cur2"))

    assert result.returncode == 0, result.stderr
    expected = estimate(DATA / "aws_cur2")["co2e_kg"].sum()
    total_line = next(line for line in result.stdout.splitlines() if line.startswith("total:"))
    assert f"co2e_kg {expected:.6g}" in total_line
    assert "AmazonEC2" in result.stdout
    assert "were not estimated" in result.stderr
    assert "line item type Tax is not estimated" in result.stderr


def test_csv_grouped_by_day_and_parquet_to_a_file(tmp_path: Path) -> None:
    csv = billing(
        str(DATA / "aws_legacy_hourly.csv.gz"), "--group-by", "day,service", "--format", "csv"
    )
    parquet = tmp_path / "out.parquet"
    written = billing(
        str(DATA / "aws_cur2_hourly.csv"), "--format", "parquet", "--output", str(parquet)
    )

    assert csv.returncode == 0, csv.stderr
    header = csv.stdout.splitlines()[0].split(",")
    assert header[:2] == ["day", "service"]
    assert written.returncode == 0, written.stderr
    frame = pl.read_parquet(parquet)
    assert frame["co2e_kg"].sum() == pytest.approx(
        estimate(DATA / "aws_cur2_hourly.csv")["co2e_kg"].sum()
    )


def test_bad_input_is_a_message_not_a_traceback(tmp_path: Path) -> None:
    missing = billing(str(tmp_path / "nothing.csv"))
    garbage = tmp_path / "garbage.csv"
    garbage.write_text("this,is,not\na,billing,export\n")
    foreign = billing(str(garbage))
    no_output = billing(str(DATA / "aws_cur2"), "--format", "parquet")

    for result in (missing, foreign, no_output):
        assert result.returncode == 2
        assert "Traceback" not in result.stderr
        assert result.stderr.startswith("carbonbook billing:")
    assert "--output" in no_output.stderr


@pytest.mark.parametrize(
    "group_by",
    [["account"], ["service"], ["usage_kind"], ["day", "service", "region"], ["month"]],
)
@pytest.mark.parametrize("source", ["aws_cur2", "gcp_billing_export.csv"])
def test_grouping_early_changes_no_total(source: str, group_by: list[str]) -> None:
    full = estimate(DATA / source)
    grouped = estimate(DATA / source, group_by=group_by)

    for column in ("energy_kwh", "co2e_kg", "embodied_co2e_kg", "ccf_co2e_kg", "cost"):
        assert grouped[column].sum() == pytest.approx(full[column].sum(), rel=1e-9, abs=1e-12)


def test_progress_is_reported_per_file_and_changes_nothing() -> None:
    from carbonbook.billing import run

    calls: list[tuple[int, int]] = []
    plain = run(DATA / "aws_cur2", group_by=["day", "service"])
    with_bar = run(
        DATA / "aws_cur2",
        group_by=["day", "service"],
        progress=lambda d, n: calls.append((d, n)),
    )

    assert calls == [(1, 2), (2, 2)]
    for column in ("energy_kwh", "co2e_kg", "embodied_co2e_kg", "cost"):
        assert with_bar.frame[column].sum() == pytest.approx(
            plain.frame[column].sum(), rel=1e-9
        )


def test_progress_bar_draws_files_done() -> None:
    import io

    from carbonbook.billing_command import _Progress

    stream = io.StringIO()
    with _Progress(stream, 4, 3 * 2**30) as bar:
        bar(1, 4)
        bar(4, 4)

    text = stream.getvalue()
    assert "1/4 files, 3.00 GB" in text
    assert "[" + "#" * 30 + "] 4/4 files" in text
