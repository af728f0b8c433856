"""`carbonbook.intensity`, `carbonbook.emissions` and `carbonbook intensity`, end to end
against a local Electricity Maps server on 127.0.0.1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import carbonbook
from carbonbook.intensity.service import build_chain, chosen_providers
from carbonbook.ledger import Ledger
from tests.httpfake import FakeServer, Reply, example
from tests.test_journal import record

TOKEN = "em-secret-token-7Qx"


@pytest.fixture
def server() -> Iterator[FakeServer]:
    fake = FakeServer().start()
    fake.route(
        "/carbon-intensity/past-range", Reply(200, example("electricitymaps_past_range.json"))
    )
    fake.route("/carbon-intensity/latest", Reply(200, example("electricitymaps_latest.json")))
    yield fake
    fake.stop()


@pytest.fixture
def provider_env(
    server: FakeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    env = {
        "ELECTRICITYMAPS_API_TOKEN": TOKEN,
        "CARBONBOOK_ELECTRICITYMAPS_URL": server.url,
        "CARBONBOOK_INTENSITY_CACHE": str(tmp_path / "cache.sqlite"),
        "CARBONBOOK_LEDGER": str(tmp_path / "ledger.sqlite"),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("CARBONBOOK_PROVIDERS", raising=False)
    return env


def test_no_provider_is_asked_by_default() -> None:
    assert chosen_providers(environ={}) == []
    assert build_chain(environ={}).providers == []
    assert chosen_providers(environ={"ELECTRICITYMAPS_API_TOKEN": "x"}) == ["electricitymaps"]
    listed = {"CARBONBOOK_PROVIDERS": "ukgrid, electricitymaps"}
    assert chosen_providers(environ=listed) == ["ukgrid", "electricitymaps"]
    assert chosen_providers("WattTime", environ=listed) == ["watttime"]


def test_intensity_series_comes_from_the_provider(
    provider_env: dict[str, str], server: FakeServer
) -> None:
    frame = carbonbook.intensity("FR", "2026-11-01T00:00Z", "2026-11-01T03:00Z")

    assert frame["intensity_g_per_kwh"].to_list() == [21.0, 19.0, 18.0]
    assert set(frame["intensity_provider"]) == {"electricitymaps"}
    assert frame["intensity_start"][0] == datetime(2026, 11, 1, tzinfo=UTC)
    assert server.requests[0].headers.get("auth-token") == TOKEN

    again = carbonbook.intensity("FR", "2026-11-01T00:00Z", "2026-11-01T03:00Z")
    assert again["intensity_g_per_kwh"].to_list() == [21.0, 19.0, 18.0]
    assert len(server.requests) == 1  # the second answer came from the cache


def test_a_failing_provider_falls_back_and_says_so(
    provider_env: dict[str, str], server: FakeServer
) -> None:
    server.route(
        "/carbon-intensity/past-range", Reply(401, example("electricitymaps_error_401.json"))
    )

    with pytest.warns(carbonbook.CarbonbookWarning, match="Electricity Maps"):
        frame = carbonbook.intensity("FR", "2026-11-01T00:00Z", "2026-11-01T02:00Z")

    assert set(frame["intensity_provider"]) == {"embedded"}
    assert "electricitymaps" in frame["intensity_note"][0]
    assert TOKEN not in frame.write_csv()


def test_emissions_of_the_ledger_use_the_hourly_series(provider_env: dict[str, str]) -> None:
    start = datetime(2026, 11, 1, 0, 30, tzinfo=UTC)
    cell = replace(
        record(1),
        zone="FR",
        started_at=start,
        ended_at=start + timedelta(hours=1),
        duration_s=3600.0,
        energy_j=7.2e6,  # 2 kWh
        energy_lower_j=7.2e6,
        energy_upper_j=7.2e6,
    )
    with Ledger(Path(provider_env["CARBONBOOK_LEDGER"])) as ledger:
        ledger.append(cell)
    instruments = Path(provider_env["CARBONBOOK_LEDGER"]).with_name("instruments.toml")
    instruments.write_text("[supplier]\nFR = 50.0\n")

    frame = carbonbook.emissions(instruments=instruments)

    # Half the energy in the 00:00 hour at 21 g/kWh, half in the 01:00 hour at 19 g/kWh.
    assert frame["energy_kwh"].to_list() == pytest.approx([1.0, 1.0])
    assert frame["intensity_g_per_kwh"].to_list() == [21.0, 19.0]
    assert frame["co2e_location_kg"].sum() == pytest.approx((21.0 + 19.0) / 1000)
    assert frame["co2e_market_kg"].sum() == pytest.approx(2 * 50.0 / 1000)
    assert set(frame["market_basis"]) == {"supplier-specific factor"}


def test_emissions_without_providers_need_no_network(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("ELECTRICITYMAPS_API_TOKEN", "WATTTIME_USERNAME", "CARBONBOOK_PROVIDERS"):
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / "ledger.sqlite"
    with Ledger(path) as ledger:
        ledger.append(replace(record(1), record_id=uuid.uuid4().hex))

    frame = carbonbook.emissions(path)

    assert frame["intensity_provider"].to_list() == ["embedded"]
    assert frame.height == 1


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "carbonbook.cli", "intensity", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},
        check=False,
    )


def test_cli_prints_values_with_provenance(provider_env: dict[str, str]) -> None:
    table = run_cli(
        "FR", "--from", "2026-11-01T00:00", "--to", "2026-11-01T03:00", env=provider_env
    )
    as_json = run_cli(
        "FR",
        "--from",
        "2026-11-01T00:00",
        "--to",
        "2026-11-01T03:00",
        "--format",
        "json",
        env=provider_env,
    )

    assert table.returncode == 0, table.stderr
    assert "electricitymaps" in table.stdout
    assert "21.0" in table.stdout
    rows = json.loads(as_json.stdout)
    assert [row["intensity_g_per_kwh"] for row in rows] == [21.0, 19.0, 18.0]
    assert TOKEN not in table.stdout + table.stderr + as_json.stdout


def test_cli_rejects_bad_input_with_a_message(tmp_path: Path) -> None:
    env = {"CARBONBOOK_INTENSITY_CACHE": str(tmp_path / "c.sqlite")}

    bad_time = run_cli("FR", "--at", "yesterday", env=env)
    half_range = run_cli("FR", "--to", "2026-11-01T00:00", env=env)
    bad_provider = run_cli("FR", "--provider", "nope", env=env)

    for result in (bad_time, half_range, bad_provider):
        assert result.returncode == 2
        assert "Traceback" not in result.stderr
    assert "ISO 8601" in bad_time.stderr
    assert "--to needs --from" in half_range.stderr
    assert "unknown intensity provider" in bad_provider.stderr


def test_shifting_report_for_a_label(provider_env: dict[str, str], server: FakeServer) -> None:
    server.route(
        "/carbon-intensity/forecast", Reply(200, example("electricitymaps_forecast.json"))
    )
    labelled = replace(record(1), zone="FR", label="train", energy_j=3.6e6, duration_s=3600.0)
    with Ledger(Path(provider_env["CARBONBOOK_LEDGER"])) as ledger:
        ledger.append(labelled)
        ledger.append(replace(record(2), label="other"))
    forecast = json.loads(example("electricitymaps_forecast.json"))["forecast"]
    first = datetime.fromisoformat(forecast[0]["datetime"].replace("Z", "+00:00"))

    report = carbonbook.shifting("train", zones=["DE", "NO"])
    timed = carbonbook.model.ledger.ledger_shifting("train", zones=["DE"], now=first)

    assert report.energy_kwh == pytest.approx(1.0)
    assert report.zone == "FR"
    assert set(report.place["zone"]) == {"FR", "DE", "NO"}
    assert timed.time is not None
    assert timed.time["advice"][0] == "run now"
    assert timed.time.height >= 2
    with pytest.raises(carbonbook.CarbonbookError, match="no ledger record"):
        carbonbook.shifting("missing")
