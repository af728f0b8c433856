"""Billing emissions recomputed with hourly intensity from a local Electricity Maps server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from carbonbook.billing import estimate
from carbonbook.billing.regrid import with_provider_intensity
from carbonbook.intensity.service import build_chain
from tests.httpfake import FakeServer, Reply

DATA = Path(__file__).parent / "data" / "billing"
START = datetime(2024, 1, 30, tzinfo=UTC)


def hourly_body(hours: int, grams: float) -> dict[str, object]:
    points = [
        {
            "zone": "FR",
            "carbonIntensity": grams,
            "datetime": (START + timedelta(hours=h)).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            "emissionFactorType": "lifecycle",
            "isEstimated": False,
        }
        for h in range(hours)
    ]
    return {"zone": "FR", "data": points}


@pytest.fixture
def environment(tmp_path: Path) -> Iterator[dict[str, str]]:
    server = FakeServer().start()
    server.route(
        "/carbon-intensity/past-range", Reply(200, json.dumps(hourly_body(24 * 5, 100.0)))
    )
    yield {
        "ELECTRICITYMAPS_API_TOKEN": "t0ken",
        "CARBONBOOK_ELECTRICITYMAPS_URL": server.url,
        "CARBONBOOK_INTENSITY_CACHE": str(tmp_path / "cache.sqlite"),
    }
    server.stop()


@pytest.fixture
def chain(environment: dict[str, str]) -> object:
    return build_chain("electricitymaps", environ=environment)


def test_use_phase_follows_the_hourly_series_and_nothing_is_lost(chain: object) -> None:
    frame = estimate(DATA / "aws_cur2")
    regridded = with_provider_intensity(frame, chain=chain)  # type: ignore[arg-type]

    use = regridded.filter(pl.col("usage_kind") != "embodied")
    assert set(use["intensity_provider"]) == {"electricitymaps"}
    assert use["intensity_g_per_kwh"].unique().to_list() == [100.0]
    expected = (use["energy_kwh"] * use["pue"] * 100.0 / 1000.0).sum()
    assert use["co2e_location_kg"].sum() == pytest.approx(expected)
    assert use["co2e_kg"].sum() == pytest.approx(expected)
    for column in ("energy_kwh", "cost", "ccf_co2e_kg", "embodied_co2e_kg"):
        assert regridded[column].sum() == pytest.approx(frame[column].sum(), rel=1e-9)


def test_without_a_provider_the_estimate_is_unchanged() -> None:
    frame = estimate(DATA / "aws_cur2")

    same = with_provider_intensity(frame, chain=build_chain(environ={}))

    assert same.equals(frame)


def test_estimate_takes_the_intensity_option(
    environment: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in environment.items():
        monkeypatch.setenv(name, value)

    regridded = estimate(DATA / "aws_cur2", group_by=["service"], intensity="electricitymaps")
    plain = estimate(DATA / "aws_cur2", group_by=["service"])

    assert regridded["cost"].sum() == pytest.approx(plain["cost"].sum())
    assert regridded["energy_kwh"].sum() == pytest.approx(plain["energy_kwh"].sum())
    assert regridded["co2e_kg"].sum() != pytest.approx(plain["co2e_kg"].sum())
