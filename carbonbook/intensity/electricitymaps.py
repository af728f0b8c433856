"""Electricity Maps (API v3): hourly average carbon intensity of a zone, in gCO2eq/kWh.

The token comes from `ELECTRICITYMAPS_API_TOKEN` and is sent in the `auth-token` header;
the base URL from `CARBONBOOK_ELECTRICITYMAPS_URL` (default
`https://api.electricitymaps.com/v3`). Zones are Electricity Maps zones (`DE`, `FR`,
`US-CAL-CISO`), the same names carbonbook uses. Values are life-cycle factors unless the
client is made with `emission_factor_type="direct"`; each point records the type the
answer gave.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from carbonbook.intensity.providers import (
    DEFAULT_TIMEOUT_S,
    FactorType,
    IntensityPoint,
    ProviderAuthError,
    ProviderHttp,
    ProviderResponseError,
    Signal,
    ZoneNotAccessibleError,
    parse_time,
    require_utc,
    spans,
    utc_now,
)

if TYPE_CHECKING:
    import requests

__all__ = ["DEFAULT_URL", "ElectricityMapsClient"]

DEFAULT_URL = "https://api.electricitymaps.com/v3"
TOKEN_VARIABLE = "ELECTRICITYMAPS_API_TOKEN"
URL_VARIABLE = "CARBONBOOK_ELECTRICITYMAPS_URL"
SOURCE = "Electricity Maps"
UNIT = "gCO2eq/kWh"

# The longest range one past-range call may ask for, hourly.
MAX_RANGE = timedelta(days=10)
GRANULARITY = {
    "5_minutes": timedelta(minutes=5),
    "15_minutes": timedelta(minutes=15),
    "hourly": timedelta(hours=1),
    "daily": timedelta(days=1),
}


def _iso(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


class ElectricityMapsClient:
    """A client of the Electricity Maps carbon-intensity endpoints.

    Args:
        token: the API token; `ELECTRICITYMAPS_API_TOKEN` when None.
        base_url: the API root; `CARBONBOOK_ELECTRICITYMAPS_URL` or the public API when None.
        emission_factor_type: `lifecycle` (Electricity Maps' default) or `direct`.
        timeout_s: (connect, read) timeout of each call, in seconds.
        max_tries: calls per request, retries included.
        sleep: the wait between tries; tests pass a recorder.
        session: the `requests.Session` to use; a new one when None.
        clock: the current time, UTC-aware, recorded as `fetched_at`.
        environ: the environment to read; `os.environ` when None.
    """

    name = "electricitymaps"
    signal: Signal = "average"

    def __init__(
        self,
        token: str | None = None,
        base_url: str | None = None,
        *,
        emission_factor_type: FactorType = "lifecycle",
        timeout_s: tuple[float, float] = DEFAULT_TIMEOUT_S,
        max_tries: int = 3,
        sleep: Callable[[float], None] = time.sleep,
        session: requests.Session | None = None,
        clock: Callable[[], datetime] = utc_now,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        env = os.environ if environ is None else environ
        self._token = token if token is not None else env.get(TOKEN_VARIABLE, "")
        self.factor_type: FactorType = emission_factor_type
        self.clock = clock
        self.http = ProviderHttp(
            self.name,
            SOURCE,
            base_url or env.get(URL_VARIABLE) or DEFAULT_URL,
            timeout_s=timeout_s,
            max_tries=max_tries,
            sleep=sleep,
            session=session,
            statuses={
                401: (
                    ProviderAuthError,
                    f"the token was refused, or the plan's rate limit was exceeded (both "
                    f"answer 401); check {TOKEN_VARIABLE} and the plan's limits",
                ),
                404: (ZoneNotAccessibleError, "no data for this zone and time"),
            },
            secrets=lambda: (self._token,),
        )

    def __repr__(self) -> str:
        token = "set" if self._token else "missing"
        return f"ElectricityMapsClient(base_url={self.http.base_url!r}, token={token})"

    def close(self) -> None:
        """Close the HTTP session."""
        self.http.close()

    def latest(self, zone: str) -> IntensityPoint:
        """The intensity of the current hour in `zone`.

        Raises:
            ProviderError: no token, or the call failed (a subclass says how).
        """
        body = self._get("/carbon-intensity/latest", {"zone": zone})
        if isinstance(body.get("data"), dict):
            body = body["data"]
        points = self._points(zone, [body], body, forecast=False)
        if not points:
            raise self.http.error(ZoneNotAccessibleError, f"no current value for zone {zone!r}")
        return points[0]

    def history(self, zone: str, start: datetime, end: datetime) -> list[IntensityPoint]:
        """Hourly intensities whose hours overlap [start, end), oldest first.

        Ranges longer than ten days are asked for in ten-day pieces.

        Raises:
            ProviderError: no token, or a call failed (a subclass says how).
            ValueError: `start` or `end` is naive.
        """
        start, end = require_utc(start, "start"), require_utc(end, "end")
        points: list[IntensityPoint] = []
        for piece_start, piece_end in spans(start, end, MAX_RANGE):
            params = {"zone": zone, "start": _iso(piece_start), "end": _iso(piece_end)}
            body = self._get("/carbon-intensity/past-range", params)
            points += self._points(zone, self._items(body, "data"), body, forecast=False)
        unique = {p.start: p for p in points if p.end > start and p.start < end}
        return [unique[at] for at in sorted(unique)]

    def recent(self, zone: str) -> list[IntensityPoint]:
        """The hourly intensities of the last 24 hours, oldest first.

        Raises:
            ProviderError: no token, or the call failed (a subclass says how).
        """
        body = self._get("/carbon-intensity/history", {"zone": zone})
        return self._points(zone, self._items(body, "history"), body, forecast=False)

    def forecast(self, zone: str) -> list[IntensityPoint]:
        """The forecast hourly intensities from now on, oldest first.

        Raises:
            ProviderError: no token, or the call failed (a subclass says how).
        """
        body = self._get("/carbon-intensity/forecast", {"zone": zone})
        return self._points(zone, self._items(body, "forecast"), body, forecast=True)

    def _get(self, path: str, params: dict[str, str]) -> dict[str, Any]:
        if not self._token:
            raise self.http.error(
                ProviderAuthError,
                f"no API token; set {TOKEN_VARIABLE} (from the Electricity Maps portal)",
            )
        params["emissionFactorType"] = self.factor_type
        body = self.http.get_json(path, params=params, headers={"auth-token": self._token})
        if not isinstance(body, dict):
            raise self.http.error(ProviderResponseError, "the answer was not a JSON object")
        return body

    def _items(self, body: dict[str, Any], name: str) -> list[Any]:
        items = body.get(name, body.get("data"))
        if isinstance(items, dict):
            items = items.get(name, items.get("data"))
        if not isinstance(items, list):
            raise self.http.error(ProviderResponseError, f"the answer has no {name!r} list")
        return items

    def _points(
        self, zone: str, items: list[Any], body: Mapping[str, Any], *, forecast: bool
    ) -> list[IntensityPoint]:
        """Points from the answer's items; a missing or mistyped field is a bad response."""
        fetched_at = self.clock()
        step = GRANULARITY.get(str(body.get("temporalGranularity")), timedelta(hours=1))
        points = []
        try:
            for item in items:
                value = item["carbonIntensity"]
                if value is None:
                    continue
                start = parse_time(item["datetime"])
                factor = item.get("emissionFactorType", self.factor_type)
                points.append(
                    IntensityPoint(
                        zone=zone,
                        start=start,
                        end=start + step,
                        g_per_kwh=float(value),
                        provider=self.name,
                        factor_type="direct" if factor == "direct" else "lifecycle",
                        signal=self.signal,
                        estimated=forecast or bool(item.get("isEstimated", False)),
                        fetched_at=fetched_at,
                        unit=UNIT,
                        raw_value=float(value),
                        source=SOURCE,
                    )
                )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise self.http.error(
                ProviderResponseError,
                f"the answer is not in the documented shape ({type(exc).__name__}: {exc}); "
                "the API may have changed, or the base URL is not the v3 API",
            ) from None
        return points
