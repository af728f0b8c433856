"""The Carbon Intensity API of Great Britain's system operator (NESO), half-hourly.

No credentials. The base URL comes from `CARBONBOOK_UKGRID_URL` (default
`https://api.carbonintensity.org.uk`). Values are operational CO2 (combustion only, no
life-cycle emissions) in gCO2/kWh, published under CC BY 4.0.

Zones:

- `GB`: the national figures (`/intensity/...`); an `actual` value where the API has one,
  else its `forecast`, recorded as estimated.
- `GB-1` to `GB-17`: the API's regions (`/regional/.../regionid/N`), forecasts only:
  1 North Scotland, 2 South Scotland, 3 North West England, 4 North East England,
  5 Yorkshire, 6 North Wales and Merseyside, 7 South Wales, 8 West Midlands,
  9 East Midlands, 10 East England, 11 South West England, 12 South England, 13 London,
  14 South East England, 15 England, 16 Scotland, 17 Wales.

Northern Ireland is outside Great Britain's grid and has no zone here.
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

__all__ = ["DEFAULT_URL", "REGIONS", "UkGridClient"]

DEFAULT_URL = "https://api.carbonintensity.org.uk"
URL_VARIABLE = "CARBONBOOK_UKGRID_URL"
SOURCE = "NESO Carbon Intensity API, CC BY 4.0"
UNIT = "gCO2/kWh"

# The longest range one call may ask for.
MAX_RANGE = timedelta(days=14)

REGIONS: dict[str, str] = {
    "GB-1": "North Scotland",
    "GB-2": "South Scotland",
    "GB-3": "North West England",
    "GB-4": "North East England",
    "GB-5": "Yorkshire",
    "GB-6": "North Wales and Merseyside",
    "GB-7": "South Wales",
    "GB-8": "West Midlands",
    "GB-9": "East Midlands",
    "GB-10": "East England",
    "GB-11": "South West England",
    "GB-12": "South England",
    "GB-13": "London",
    "GB-14": "South East England",
    "GB-15": "England",
    "GB-16": "Scotland",
    "GB-17": "Wales",
}


def _stamp(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%MZ")


class UkGridClient:
    """A client of the NESO Carbon Intensity API for `GB` and its regions.

    Args:
        base_url: the API root; `CARBONBOOK_UKGRID_URL` or the public API when None.
        timeout_s: (connect, read) timeout of each call, in seconds.
        max_tries: calls per request, retries included.
        sleep: the wait between tries; tests pass a recorder.
        session: the `requests.Session` to use; a new one when None.
        clock: the current time, UTC-aware.
        environ: the environment to read; `os.environ` when None.
    """

    name = "ukgrid"
    signal: Signal = "average"
    factor_type: FactorType = "direct"

    def __init__(
        self,
        base_url: str | None = None,
        *,
        timeout_s: tuple[float, float] = DEFAULT_TIMEOUT_S,
        max_tries: int = 3,
        sleep: Callable[[float], None] = time.sleep,
        session: requests.Session | None = None,
        clock: Callable[[], datetime] = utc_now,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        env = os.environ if environ is None else environ
        self.clock = clock
        self.http = ProviderHttp(
            self.name,
            "UK Carbon Intensity API",
            base_url or env.get(URL_VARIABLE) or DEFAULT_URL,
            timeout_s=timeout_s,
            max_tries=max_tries,
            sleep=sleep,
            session=session,
        )

    def __repr__(self) -> str:
        return f"UkGridClient(base_url={self.http.base_url!r})"

    def close(self) -> None:
        """Close the HTTP session."""
        self.http.close()

    def latest(self, zone: str) -> IntensityPoint:
        """The intensity of the current half hour.

        Raises:
            ProviderError: the zone is not GB or a GB region, or the call failed.
        """
        region = self._region(zone)
        path = "/intensity" if region is None else f"/regional/regionid/{region}"
        points = self._points(zone, self.http.get_json(path))
        if not points:
            raise self.http.error(ZoneNotAccessibleError, f"no current value for {zone}")
        return points[-1]

    def history(self, zone: str, start: datetime, end: datetime) -> list[IntensityPoint]:
        """Half-hourly intensities whose periods overlap [start, end), oldest first.

        Ranges longer than 14 days are asked for in 14-day pieces.

        Raises:
            ProviderError: the zone is not GB or a GB region, or a call failed.
            ValueError: `start` or `end` is naive.
        """
        start, end = require_utc(start, "start"), require_utc(end, "end")
        region = self._region(zone)
        points: list[IntensityPoint] = []
        for piece_start, piece_end in spans(start, end, MAX_RANGE):
            window = f"{_stamp(piece_start)}/{_stamp(piece_end)}"
            if region is None:
                path = f"/intensity/{window}"
            else:
                path = f"/regional/intensity/{window}/regionid/{region}"
            points += self._points(zone, self.http.get_json(path))
        unique = {p.start: p for p in points if p.end > start and p.start < end}
        return [unique[at] for at in sorted(unique)]

    def forecast(self, zone: str) -> list[IntensityPoint]:
        """The half-hourly forecast for the next 48 hours, oldest first.

        Raises:
            ProviderError: the zone is not GB or a GB region, or the call failed.
        """
        region = self._region(zone)
        now = _stamp(self.clock())
        if region is None:
            path = f"/intensity/{now}/fw48h"
        else:
            path = f"/regional/intensity/{now}/fw48h/regionid/{region}"
        return self._points(zone, self.http.get_json(path))

    def _region(self, zone: str) -> str | None:
        """None for the national figures, else the API's region id."""
        key = zone.strip().upper()
        if key == "GB":
            return None
        if key in REGIONS:
            return key.removeprefix("GB-")
        raise self.http.error(
            ZoneNotAccessibleError,
            f"covers only GB and its regions GB-1 to GB-17, not {zone!r}; use another "
            "provider for this zone",
        )

    def _points(self, zone: str, body: Any) -> list[IntensityPoint]:
        """Points from a national or a regional answer; a wrong shape is a bad response."""
        fetched_at = self.clock()
        points = []
        try:
            for item in _periods(body["data"]):
                intensity = item["intensity"]
                actual = intensity.get("actual")
                value = actual if actual is not None else intensity["forecast"]
                if value is None:
                    continue
                points.append(
                    IntensityPoint(
                        zone=zone,
                        start=parse_time(item["from"]),
                        end=parse_time(item["to"]),
                        g_per_kwh=float(value),
                        provider=self.name,
                        factor_type=self.factor_type,
                        signal=self.signal,
                        estimated=actual is None,
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
                "the API may have changed, or the base URL is not this API",
            ) from None
        return sorted(points, key=lambda p: p.start)


def _periods(data: Any) -> list[Any]:
    """The half-hour items of an answer: national answers list them in `data`; regional
    answers nest them in one region object (or a list of one) under `data` again."""
    if isinstance(data, dict):
        data = [data]
    periods: list[Any] = []
    for item in data:
        if "intensity" in item:
            periods.append(item)
        else:
            periods.extend(item["data"])
    return periods
