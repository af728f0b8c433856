"""Grid-intensity providers, cache and fallback chain, over real HTTP to 127.0.0.1."""

from __future__ import annotations

import base64
import json
import logging
import os
import socket
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from carbonbook.errors import CarbonbookError
from carbonbook.intensity.cache import IntensityCache, default_cache_path
from carbonbook.intensity.chain import IntensityChain
from carbonbook.intensity.electricitymaps import ElectricityMapsClient
from carbonbook.intensity.embedded import embedded_intensity
from carbonbook.intensity.providers import (
    ProviderAuthError,
    ProviderError,
    ProviderRateLimitError,
    ProviderResponseError,
    ProviderUnavailableError,
    ZoneNotAccessibleError,
)
from carbonbook.intensity.ukgrid import UkGridClient
from carbonbook.intensity.watttime import G_PER_KWH_PER_LB_PER_MWH, WattTimeClient
from tests.httpfake import FakeServer, Reply, example

NOW = datetime(2026, 11, 30, 14, 10, tzinfo=UTC)
TOKEN = "em-SECRET-token-4f1c"
PASSWORD = "wt-SECRET-password-9a2b"
BEARER = "wt-SECRET-bearer-77d0"
SECRETS = (TOKEN, PASSWORD, BEARER)
FAST = (0.5, 0.3)


def clock() -> datetime:
    return NOW


@pytest.fixture(autouse=True)
def _local_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """No proxy, and the default URLs point at a closed local port, never the internet."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    for name in ("ELECTRICITYMAPS", "WATTTIME", "UKGRID"):
        monkeypatch.setenv(f"CARBONBOOK_{name}_URL", f"http://127.0.0.1:{closed_port()}")


@pytest.fixture
def server() -> Iterator[FakeServer]:
    fake = FakeServer().start()
    yield fake
    fake.stop()


@pytest.fixture
def sleeps() -> list[float]:
    return []


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def em(server: FakeServer, sleeps: list[float], **kwargs: Any) -> ElectricityMapsClient:
    return ElectricityMapsClient(
        TOKEN, server.url, timeout_s=FAST, sleep=sleeps.append, clock=clock, **kwargs
    )


def wt(server: FakeServer, sleeps: list[float], **kwargs: Any) -> WattTimeClient:
    server.route("/login", Reply(200, {"token": BEARER}))
    return WattTimeClient(
        "alice",
        PASSWORD,
        server.url,
        timeout_s=FAST,
        sleep=sleeps.append,
        clock=clock,
        **kwargs,
    )


def uk(server: FakeServer, sleeps: list[float]) -> UkGridClient:
    return UkGridClient(server.url, timeout_s=FAST, sleep=sleeps.append, clock=clock)


# -- Electricity Maps -----------------------------------------------------------------------


def test_electricitymaps_latest_parses_the_documented_body(
    server: FakeServer, sleeps: list[float]
) -> None:
    server.route("/carbon-intensity/latest", Reply(200, example("electricitymaps_latest.json")))
    point = em(server, sleeps).latest("DE")
    assert point.g_per_kwh == 302.0
    assert (point.start, point.end) == (
        NOW.replace(minute=0),
        NOW.replace(minute=0) + timedelta(hours=1),
    )
    assert point.estimated is True
    assert (point.factor_type, point.signal, point.provider) == (
        "lifecycle",
        "average",
        "electricitymaps",
    )
    assert point.fetched_at == NOW
    seen = server.requests[0]
    assert seen.headers["auth-token"] == TOKEN
    assert seen.query == {"zone": ["DE"], "emissionFactorType": ["lifecycle"]}


def test_electricitymaps_accepts_a_body_wrapped_in_data(
    server: FakeServer, sleeps: list[float]
) -> None:
    inner = json.loads(example("electricitymaps_latest.json"))
    server.route("/carbon-intensity/latest", Reply(200, {"data": inner}))
    assert em(server, sleeps).latest("DE").g_per_kwh == 302.0


def test_electricitymaps_history_asks_ten_days_at_a_time(
    server: FakeServer, sleeps: list[float]
) -> None:
    server.route(
        "/carbon-intensity/past-range", Reply(200, example("electricitymaps_past_range.json"))
    )
    client = em(server, sleeps, emission_factor_type="direct")
    start = datetime(2026, 11, 1, tzinfo=UTC)
    points = client.history("FR", start, start + timedelta(days=25))
    assert [p.g_per_kwh for p in points] == [21.0, 19.0, 18.0]
    assert all(p.factor_type == "direct" and not p.estimated for p in points)
    starts = [seen.query["start"][0] for seen in server.requests]
    assert starts == ["2026-11-01T00:00:00Z", "2026-11-11T00:00:00Z", "2026-11-21T00:00:00Z"]
    assert server.requests[-1].query["end"] == ["2026-11-26T00:00:00Z"]
    assert server.requests[0].query["emissionFactorType"] == ["direct"]


def test_electricitymaps_recent_and_forecast(server: FakeServer, sleeps: list[float]) -> None:
    server.route(
        "/carbon-intensity/history", Reply(200, example("electricitymaps_history.json"))
    )
    server.route(
        "/carbon-intensity/forecast", Reply(200, example("electricitymaps_forecast.json"))
    )
    client = em(server, sleeps)
    assert [p.g_per_kwh for p in client.recent("DE")] == [318.0, 309.0, 302.0]
    ahead = client.forecast("GB")
    assert [p.g_per_kwh for p in ahead] == [181.0, 196.0, 224.0]
    assert all(p.estimated for p in ahead)


def test_electricitymaps_401_says_what_to_check_and_is_not_retried(
    server: FakeServer, sleeps: list[float]
) -> None:
    server.route(
        "/carbon-intensity/latest", Reply(401, example("electricitymaps_error_401.json"))
    )
    with pytest.raises(ProviderAuthError, match="ELECTRICITYMAPS_API_TOKEN") as caught:
        em(server, sleeps).latest("DE")
    assert "Invalid auth-token" in str(caught.value)
    assert isinstance(caught.value, CarbonbookError)
    assert len(server.requests) == 1
    assert sleeps == []


def test_electricitymaps_404_is_a_zone_error(server: FakeServer, sleeps: list[float]) -> None:
    server.route(
        "/carbon-intensity/latest", Reply(404, example("electricitymaps_error_404.json"))
    )
    with pytest.raises(ZoneNotAccessibleError, match="No recent data"):
        em(server, sleeps).latest("XX")


def test_electricitymaps_without_a_token_makes_no_request(server: FakeServer) -> None:
    client = ElectricityMapsClient(base_url=server.url, environ={})
    with pytest.raises(ProviderAuthError, match="set ELECTRICITYMAPS_API_TOKEN"):
        client.latest("DE")
    assert server.requests == []
    assert "token=missing" in repr(client)


def test_500_then_success_is_retried_after_a_backoff(
    server: FakeServer, sleeps: list[float]
) -> None:
    server.route(
        "/carbon-intensity/latest",
        Reply(500, {"error": "boom"}),
        Reply(502, b"<html>bad gateway</html>"),
        Reply(200, example("electricitymaps_latest.json")),
    )
    assert em(server, sleeps).latest("DE").g_per_kwh == 302.0
    assert sleeps == [0.5, 1.0]


def test_429_waits_as_long_as_retry_after_says_within_the_cap(
    server: FakeServer, sleeps: list[float]
) -> None:
    server.route(
        "/carbon-intensity/latest",
        Reply(429, {"error": "slow down"}, {"Retry-After": "2"}),
        Reply(429, {"error": "slow down"}, {"Retry-After": "999"}),
        Reply(503, {"error": "busy"}, {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}),
        Reply(200, example("electricitymaps_latest.json")),
    )
    client = em(server, sleeps, max_tries=4)
    assert client.latest("DE").g_per_kwh == 302.0
    assert sleeps == [2.0, 30.0, 0.0]


def test_429_every_time_becomes_a_rate_limit_error_after_three_tries(
    server: FakeServer, sleeps: list[float]
) -> None:
    server.route("/carbon-intensity/latest", Reply(429, {"error": "slow down"}))
    with pytest.raises(ProviderRateLimitError, match="HTTP 429"):
        em(server, sleeps).latest("DE")
    assert len(server.requests) == 3
    assert sleeps == [0.5, 1.0]


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (b"<html>not json</html>", "not JSON"),
        (b"", "empty"),
        (b"   \n", "empty"),
        ({"zone": "DE"}, "documented shape"),
        ({"carbonIntensity": 1, "datetime": "yesterday"}, "documented shape"),
        ([1, 2, 3], "not a JSON object"),
    ],
)
def test_bad_bodies_are_response_errors(
    server: FakeServer, sleeps: list[float], body: object, match: str
) -> None:
    server.route("/carbon-intensity/latest", Reply(200, body))
    with pytest.raises(ProviderResponseError, match=match):
        em(server, sleeps).latest("DE")


def test_a_slow_answer_times_out_without_retrying(
    server: FakeServer, sleeps: list[float]
) -> None:
    server.route(
        "/carbon-intensity/latest",
        Reply(200, example("electricitymaps_latest.json"), delay_s=2.0),
    )
    with pytest.raises(ProviderUnavailableError, match=r"within 0\.3 s"):
        em(server, sleeps).latest("DE")
    assert len(server.requests) == 1


def test_a_dropped_connection_is_retried(server: FakeServer, sleeps: list[float]) -> None:
    server.route(
        "/carbon-intensity/latest",
        Reply(drop=True),
        Reply(200, example("electricitymaps_latest.json")),
    )
    assert em(server, sleeps).latest("DE").g_per_kwh == 302.0
    assert len(server.requests) == 2
    assert sleeps == [0.5]


def test_dropped_every_time_is_unavailable(server: FakeServer, sleeps: list[float]) -> None:
    server.route("/carbon-intensity/latest", Reply(drop=True))
    with pytest.raises(ProviderUnavailableError, match="could not reach"):
        em(server, sleeps).latest("DE")
    assert len(server.requests) == 3


def test_no_server_is_unavailable(sleeps: list[float]) -> None:
    client = ElectricityMapsClient(
        TOKEN, f"http://127.0.0.1:{closed_port()}", sleep=sleeps.append
    )
    with pytest.raises(ProviderUnavailableError):
        client.latest("DE")
    assert len(sleeps) == 2


# -- WattTime -------------------------------------------------------------------------------


def test_watttime_logs_in_and_converts_pounds_per_mwh(
    server: FakeServer, sleeps: list[float]
) -> None:
    server.route("/v3/forecast", Reply(200, example("watttime_forecast.json")))
    points = wt(server, sleeps).forecast("CAISO_NORTH")
    assert [p.raw_value for p in points] == [870.0, 865.2, 861.9]
    assert points[0].g_per_kwh == pytest.approx(870.0 * 0.45359237)
    assert pytest.approx(0.45359237) == G_PER_KWH_PER_LB_PER_MWH
    assert points[0].unit == "lbs_co2_per_mwh"
    assert points[0].end - points[0].start == timedelta(minutes=5)
    assert all(p.signal == "marginal" and p.estimated for p in points)
    login, data = server.requests
    expected = base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
    assert login.headers["Authorization"] == f"Basic {expected}"
    assert data.headers["Authorization"] == f"Bearer {BEARER}"
    assert data.query == {"region": ["CAISO_NORTH"], "signal_type": ["co2_moer"]}


def test_watttime_history_maps_the_zone_and_reuses_the_token(
    server: FakeServer, sleeps: list[float]
) -> None:
    server.route("/v3/historical", Reply(200, example("watttime_historical.json")))
    client = wt(server, sleeps, regions={"US-CAL-CISO": "CAISO_NORTH"}, signal_type="co2_aoer")
    start = datetime(2026, 11, 29, tzinfo=UTC)
    first = client.history("US-CAL-CISO", start, start + timedelta(hours=1))
    client.history("US-CAL-CISO", start, start + timedelta(hours=1))
    assert [p.raw_value for p in first] == [902.0, 899.5, 897.1]
    assert all(p.signal == "average" and not p.estimated for p in first)
    assert server.paths() == ["/login", "/v3/historical", "/v3/historical"]
    assert server.requests[1].query["region"] == ["CAISO_NORTH"]
    assert server.requests[1].query["signal_type"] == ["co2_aoer"]


def test_watttime_renews_an_old_token(server: FakeServer, sleeps: list[float]) -> None:
    server.route("/v3/forecast", Reply(200, example("watttime_forecast.json")))
    now = [NOW]
    client = WattTimeClient("alice", PASSWORD, server.url, clock=lambda: now[0])
    server.route("/login", Reply(200, {"token": BEARER}))
    client.forecast("CAISO_NORTH")
    now[0] += timedelta(minutes=26)
    client.forecast("CAISO_NORTH")
    assert server.paths().count("/login") == 2


def test_watttime_logs_in_again_once_on_401(server: FakeServer, sleeps: list[float]) -> None:
    server.route(
        "/v3/forecast",
        Reply(401, {"error": "expired"}),
        Reply(200, example("watttime_forecast.json")),
    )
    points = wt(server, sleeps).forecast("CAISO_NORTH")
    assert len(points) == 3
    assert server.paths() == ["/login", "/v3/forecast", "/login", "/v3/forecast"]


def test_watttime_401_after_a_new_login_is_an_auth_error(
    server: FakeServer, sleeps: list[float]
) -> None:
    server.route("/v3/forecast", Reply(401, {"error": "no"}))
    with pytest.raises(ProviderAuthError):
        wt(server, sleeps).forecast("CAISO_NORTH")
    assert server.paths().count("/v3/forecast") == 2


def test_watttime_refused_login_names_the_variables(
    server: FakeServer, sleeps: list[float]
) -> None:
    client = wt(server, sleeps)
    server.route("/login", Reply(403, {"error": "bad credentials"}))
    with pytest.raises(ProviderAuthError, match="WATTTIME_USERNAME and WATTTIME_PASSWORD"):
        client.forecast("CAISO_NORTH")


def test_watttime_403_is_a_zone_error_with_the_server_reason(
    server: FakeServer, sleeps: list[float]
) -> None:
    server.route("/v3/forecast", Reply(403, example("watttime_error_403.json")))
    with pytest.raises(ZoneNotAccessibleError, match="does not have access to region PJM_DC"):
        wt(server, sleeps).forecast("PJM_DC")


def test_watttime_unmapped_zone_says_how_to_map_it(
    server: FakeServer, sleeps: list[float]
) -> None:
    with pytest.raises(ZoneNotAccessibleError, match="regions="):
        wt(server, sleeps).latest("FR")
    assert server.requests == []


# -- UK Carbon Intensity API ----------------------------------------------------------------


def test_ukgrid_latest_prefers_the_actual_value(
    server: FakeServer, sleeps: list[float]
) -> None:
    server.route("/intensity", Reply(200, example("ukci_intensity.json")))
    point = uk(server, sleeps).latest("GB")
    assert (point.g_per_kwh, point.estimated) == (191.0, False)
    assert (point.factor_type, point.signal) == ("direct", "average")
    assert point.end - point.start == timedelta(minutes=30)
    assert "CC BY 4.0" in point.source


def test_ukgrid_forecast_starts_now(server: FakeServer, sleeps: list[float]) -> None:
    server.route("/intensity/*", Reply(200, example("ukci_fw48h.json")))
    points = uk(server, sleeps).forecast("GB")
    assert [p.g_per_kwh for p in points] == [186.0, 192.0, 201.0]
    assert all(p.estimated for p in points)
    assert server.paths() == ["/intensity/2026-11-30T14:10Z/fw48h"]


def test_ukgrid_history_asks_fourteen_days_at_a_time(
    server: FakeServer, sleeps: list[float]
) -> None:
    server.route("/intensity/*", Reply(200, example("ukci_fw48h.json")))
    start = datetime(2026, 11, 1, tzinfo=UTC)
    uk(server, sleeps).history("GB", start, start + timedelta(days=20))
    assert server.paths() == [
        "/intensity/2026-11-01T00:00Z/2026-11-15T00:00Z",
        "/intensity/2026-11-15T00:00Z/2026-11-21T00:00Z",
    ]


def test_ukgrid_regions_use_the_regional_endpoints(
    server: FakeServer, sleeps: list[float]
) -> None:
    periods = json.loads(example("ukci_fw48h.json"))["data"]
    regional = {"data": {"regionid": 13, "shortname": "London", "data": periods}}
    server.route("/regional/intensity/*", Reply(200, regional))
    server.route("/regional/regionid/13", Reply(200, {"data": [regional["data"]]}))
    client = uk(server, sleeps)
    start = datetime(2026, 11, 30, 14, tzinfo=UTC)
    points = client.history("GB-13", start, start + timedelta(hours=2))
    assert [p.g_per_kwh for p in points] == [186.0, 192.0, 201.0]
    assert client.latest("GB-13").g_per_kwh == 201.0
    assert server.paths() == [
        "/regional/intensity/2026-11-30T14:00Z/2026-11-30T16:00Z/regionid/13",
        "/regional/regionid/13",
    ]


def test_ukgrid_other_zones_and_error_bodies(server: FakeServer, sleeps: list[float]) -> None:
    client = uk(server, sleeps)
    with pytest.raises(ZoneNotAccessibleError, match="only GB"):
        client.latest("FR")
    assert server.requests == []
    server.route("/intensity/*", Reply(400, example("ukci_error.json")))
    with pytest.raises(ProviderResponseError, match="valid start datetime"):
        client.forecast("GB")


# -- the cache ------------------------------------------------------------------------------


def past_range(server: FakeServer) -> None:
    server.route(
        "/carbon-intensity/past-range", Reply(200, example("electricitymaps_past_range.json"))
    )


NOV_1 = datetime(2026, 11, 1, tzinfo=UTC)


def test_history_is_served_from_the_cache_the_second_time(
    server: FakeServer, sleeps: list[float], tmp_path: Path
) -> None:
    past_range(server)
    path = tmp_path / "cache.sqlite"
    chain = IntensityChain([em(server, sleeps)], IntensityCache(path), clock=clock)
    first = chain.series("FR", NOV_1, NOV_1 + timedelta(hours=3))
    second = chain.series("FR", NOV_1, NOV_1 + timedelta(hours=3))
    assert len(server.requests) == 1
    assert second == first
    server.stop()

    # A new session on the same file works with no server at all.
    again = IntensityChain([em(server, sleeps)], IntensityCache(path), clock=clock)
    assert (
        again.series("FR", NOV_1 + timedelta(hours=1), NOV_1 + timedelta(hours=2)) == first[1:2]
    )
    assert again.messages == []


def test_the_cache_file_is_private_and_in_wal_mode(
    server: FakeServer, sleeps: list[float], tmp_path: Path
) -> None:
    past_range(server)
    path = tmp_path / "deep" / "cache.sqlite"
    IntensityChain([em(server, sleeps)], IntensityCache(path), clock=clock).series(
        "FR", NOV_1, NOV_1 + timedelta(hours=3)
    )
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT count(*) FROM intensity_point").fetchone()[0] == 3


def test_a_wider_or_recent_range_is_fetched_again(
    server: FakeServer, sleeps: list[float], tmp_path: Path
) -> None:
    past_range(server)
    chain = IntensityChain(
        [em(server, sleeps)], IntensityCache(tmp_path / "c.sqlite"), clock=clock
    )
    chain.series("FR", NOV_1, NOV_1 + timedelta(hours=3))
    chain.series("FR", NOV_1, NOV_1 + timedelta(hours=4))
    assert len(server.requests) == 2
    recent = NOW - timedelta(hours=1)
    item = json.loads(example("electricitymaps_past_range.json"))["data"][0]
    item["datetime"] = "2026-11-30T13:00:00.000Z"
    server.route("/carbon-intensity/past-range", Reply(200, {"zone": "FR", "data": [item]}))
    assert chain.series("FR", recent, NOW)[0].provider == "electricitymaps"
    chain.series("FR", recent, NOW)
    assert len(server.requests) == 4


def test_default_cache_path_follows_the_environment(tmp_path: Path) -> None:
    chosen = tmp_path / "x.sqlite"
    assert default_cache_path({"CARBONBOOK_INTENSITY_CACHE": str(chosen)}) == chosen
    assert default_cache_path({"XDG_DATA_HOME": "/data"}) == Path(
        "/data/carbonbook/intensity-cache.sqlite"
    )
    assert default_cache_path({"XDG_DATA_HOME": "rel", "HOME": "/home/u"}) == Path(
        "/home/u/.local/share/carbonbook/intensity-cache.sqlite"
    )
    assert IntensityCache(environ={"CARBONBOOK_INTENSITY_CACHE": str(chosen)}).path == chosen


def test_an_unusable_cache_is_reported_once_and_skipped(
    server: FakeServer, sleeps: list[float], tmp_path: Path
) -> None:
    past_range(server)
    blocked = tmp_path / "a-directory"
    blocked.mkdir()
    chain = IntensityChain([em(server, sleeps)], IntensityCache(blocked), clock=clock)
    points = chain.series("FR", NOV_1, NOV_1 + timedelta(hours=3))
    chain.series("FR", NOV_1, NOV_1 + timedelta(hours=3))
    assert [p.provider for p in points] == ["electricitymaps"] * 3
    assert len(chain.messages) == 1
    assert "CARBONBOOK_INTENSITY_CACHE" in chain.messages[0]


# -- the chain ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "reply",
    [
        Reply(401, example("electricitymaps_error_401.json")),
        Reply(403, {"error": "forbidden"}),
        Reply(404, example("electricitymaps_error_404.json")),
        Reply(429, {"error": "slow"}, {"Retry-After": "1"}),
        Reply(500, {"error": "boom"}),
        Reply(200, b"garbage"),
        Reply(200, b""),
        Reply(200, {"zone": "FR", "data": []}),
        Reply(200, example("electricitymaps_past_range.json"), delay_s=2.0),
        Reply(drop=True),
    ],
)
def test_every_failure_falls_back_to_the_embedded_data(
    server: FakeServer, sleeps: list[float], reply: Reply
) -> None:
    server.route("/carbon-intensity/past-range", reply)
    chain = IntensityChain([em(server, sleeps)], clock=clock)
    points = chain.series("FR", NOV_1, NOV_1 + timedelta(days=1))
    assert len(points) == 24
    assert {p.provider for p in points} == {"embedded"}
    assert points[0].g_per_kwh == embedded_intensity("FR").g_per_kwh
    assert points[0].fallback_from == "electricitymaps"
    assert points[0].note.lower().startswith("electricity")
    assert len(chain.messages) == 1


def test_the_chain_tries_providers_in_order_and_logs_once(
    server: FakeServer, sleeps: list[float], caplog: pytest.LogCaptureFixture
) -> None:
    server.route(
        "/carbon-intensity/past-range", Reply(401, example("electricitymaps_error_401.json"))
    )
    server.route("/intensity/*", Reply(200, example("ukci_fw48h.json")))
    chain = IntensityChain([em(server, sleeps), uk(server, sleeps)], clock=clock)
    start = datetime(2026, 11, 30, 14, tzinfo=UTC)
    with caplog.at_level(logging.WARNING, logger="carbonbook"):
        for _ in range(3):
            points = chain.series("GB", start, start + timedelta(hours=1))
    assert [p.provider for p in points] == ["ukgrid", "ukgrid"]
    assert points[0].fallback_from == "electricitymaps"
    assert "ELECTRICITYMAPS_API_TOKEN" in points[0].note
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert chain.messages == [warnings[0].getMessage()]


def test_intensity_at_uses_latest_forecast_or_history(
    server: FakeServer, sleeps: list[float], tmp_path: Path
) -> None:
    server.route("/intensity", Reply(200, example("ukci_intensity.json")))
    server.route("/intensity/*", Reply(200, example("ukci_fw48h.json")))
    chain = IntensityChain([uk(server, sleeps)], IntensityCache(tmp_path / "c"), clock=clock)
    assert chain.intensity("GB", NOW).g_per_kwh == 191.0
    assert chain.intensity("GB", NOW + timedelta(minutes=40)).g_per_kwh == 192.0
    later = chain.intensity("GB", NOW + timedelta(days=3))
    assert (later.provider, later.fallback_from) == ("embedded", "ukgrid")
    assert "does not reach" in later.note
    forecast_path = "/intensity/2026-11-30T14:10Z/fw48h"
    assert server.paths() == ["/intensity", forecast_path, forecast_path]


def test_intensity_in_the_past_picks_the_covering_period(
    server: FakeServer, sleeps: list[float]
) -> None:
    server.route("/intensity/*", Reply(200, example("ukci_fw48h.json")))
    chain = IntensityChain([uk(server, sleeps)], clock=lambda: NOW + timedelta(days=2))
    point = chain.intensity("GB", datetime(2026, 11, 30, 14, 40, tzinfo=UTC))
    assert (point.provider, point.g_per_kwh) == ("ukgrid", 192.0)
    assert server.paths() == ["/intensity/2026-11-30T14:00Z/2026-11-30T15:00Z"]


def test_no_providers_means_embedded_without_a_fallback_note() -> None:
    chain = IntensityChain(clock=clock)
    point = chain.intensity("aws:eu-west-3", NOW)
    assert (point.provider, point.fallback_from, point.factor_type) == (
        "embedded",
        "",
        "direct",
    )
    assert point.start == NOW.replace(minute=0)
    assert chain.series("FR", NOV_1, NOV_1) == []
    with pytest.raises(ValueError, match="timezone-aware"):
        chain.series("FR", datetime(2026, 11, 1), NOV_1)


# -- secrets and imports --------------------------------------------------------------------


def test_no_secret_appears_in_messages_logs_reprs_or_the_cache(
    server: FakeServer, sleeps: list[float], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The servers echo the credentials back, as a careless API might.
    server.route("/carbon-intensity/*", Reply(401, {"error": f"bad token {TOKEN}"}))
    server.route("/login", Reply(200, {"token": BEARER}))
    server.route("/v3/*", Reply(403, {"message": f"{BEARER} {PASSWORD} forbidden"}))
    em_client = em(server, sleeps)
    wt_client = WattTimeClient("alice", PASSWORD, server.url, timeout_s=FAST, clock=clock)
    cache_path = tmp_path / "cache.sqlite"
    chain = IntensityChain([em_client, wt_client], IntensityCache(cache_path), clock=clock)

    texts: list[str] = []
    with caplog.at_level(logging.DEBUG):
        points = chain.series("CAISO_NORTH", NOV_1, NOV_1 + timedelta(hours=2))
        for call in (lambda: em_client.latest("DE"), lambda: wt_client.forecast("CAISO_NORTH")):
            with pytest.raises(ProviderError) as caught:
                call()
            texts += [str(caught.value), repr(caught.value)]
    server.route(
        "/carbon-intensity/past-range", Reply(200, example("electricitymaps_past_range.json"))
    )
    IntensityChain([em_client], IntensityCache(cache_path), clock=clock).series(
        "FR", NOV_1, NOV_1 + timedelta(hours=3)
    )

    texts += [caplog.text, *chain.messages, repr(em_client), repr(wt_client), repr(chain)]
    texts += [repr(p) for p in points]
    assert points[0].provider == "embedded"
    assert "***" in points[0].note
    blobs = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
    assert b"Electricity Maps" in blobs  # the scan reads the cached rows
    for secret in SECRETS:
        assert all(secret not in text for text in texts), secret
        assert secret.encode() not in blobs, secret


def test_importing_carbonbook_and_the_intensity_modules_loads_no_requests() -> None:
    code = (
        "import sys, carbonbook, carbonbook.intensity.chain, carbonbook.intensity.cache\n"
        "from carbonbook.intensity import electricitymaps, watttime, ukgrid\n"
        "electricitymaps.ElectricityMapsClient('t'); watttime.WattTimeClient()\n"
        "ukgrid.UkGridClient()\n"
        "print('requests' in sys.modules)"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert result.stdout.strip() == "False"
