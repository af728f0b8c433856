"""Region-switch recommendations, checked by hand against CCF's grid factors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from carbonbook.billing import BillingError, estimate
from carbonbook.billing.ccf import tables
from carbonbook.billing.recommend import recommendations

DATA = Path(__file__).parent / "data" / "billing"


def test_the_cleanest_region_by_hand() -> None:
    frame = estimate(DATA / "aws_cur2")
    table = recommendations(frame, best=2)

    ec2 = table.filter((pl.col("service") == "AmazonEC2") & (pl.col("region") == "us-east-1"))
    assert ec2.height == 2
    best = ec2.row(0, named=True)
    grid = tables().grid
    cleanest = min(
        (factor, region)
        for (provider, region), factor in grid.items()
        if provider == "aws" and region != "Unknown" and factor > 0
    )
    assert best["candidate_region"] == cleanest[1]
    # Same meter energy, AWS's PUE 1.135, the candidate's factor (t/kWh -> kg x 1000).
    assert best["candidate_co2e_kg"] == pytest.approx(
        best["energy_kwh"] * 1.135 * cleanest[0] * 1000
    )
    assert best["saving_kg"] == pytest.approx(best["co2e_kg"] - best["candidate_co2e_kg"])
    assert best["saving_pct"] == pytest.approx(
        (1 - cleanest[0] / grid[("aws", "us-east-1")]) * 100
    )
    assert (table["saving_kg"] > 0).all()


def test_nothing_cleaner_gives_no_row() -> None:
    grid = tables().grid
    factor, cleanest = min(
        (f, region)
        for (provider, region), f in grid.items()
        if provider == "aws" and region != "Unknown" and f > 0
    )
    frame = pl.DataFrame(
        {
            "provider": ["aws"],
            "service": ["AmazonEC2"],
            "region": [cleanest],
            "energy_kwh": [2.0],
            "co2e_kg": [2.0 * 1.135 * factor * 1000],
        }
    )

    assert recommendations(frame).height == 0


def test_a_frame_without_the_columns_is_refused() -> None:
    with pytest.raises(BillingError, match="service"):
        recommendations(pl.DataFrame({"provider": ["aws"], "energy_kwh": [1.0]}))


def test_cli_prints_recommendations() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "carbonbook.cli",
            "billing",
            str(DATA / "aws_cur2"),
            "--recommend",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert "candidate_region" in result.stdout
    assert "saving_kg" in result.stdout
