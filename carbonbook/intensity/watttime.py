"""WattTime (API v3): the marginal (or average) emission rate of a grid region, 5-minutely.

Credentials come from `WATTTIME_USERNAME` and `WATTTIME_PASSWORD`: the client logs in
(`/login`, HTTP basic auth) for a bearer token, which lasts 30 minutes; it logs in again
before then and once more when a call answers 401. The base URL comes from
`CARBONBOOK_WATTTIME_URL` (default `https://api.watttime.org`).

WattTime names balancing-authority regions (`CAISO_NORTH`, `PJM_DC`), not countries, so
the client takes a `regions` mapping from carbonbook zones to WattTime regions, such as
`{"US-CAL-CISO": "CAISO_NORTH"}`. A zone that is not in the mapping and is written like a
region (upper case with an underscore) is used as the region itself.

The default signal `co2_moer` is marginal: the emissions of the next kilowatt-hour, for
deciding when to run work, not for inventories; `co2_aoer` is the average signal. Values
come in lbs_co2_per_mwh and are converted to g/kWh (1 lb = 453.59237 g); the original
value and unit are kept in each point. Both signals count direct (combustion) emissions.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from carbonbook.intensity.providers import (
    DEFAULT_TIMEOUT_S,
    FactorType,
    IntensityPoint,
    ProviderAuthError,
    ProviderError,
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

__all__ = ["DEFAULT_URL", "G_PER_KWH_PER_LB_PER_MWH", "WattTimeClient"]

DEFAULT_URL = "https://api.watttime.org"
USER_VARIABLE = "WATTTIME_USERNAME"
PASSWORD_VARIABLE = "WATTTIME_PASSWORD"
URL_VARIABLE = "CARBONBOOK_WATTTIME_URL"
SOURCE = "WattTime"

# 1 lb/MWh = 453.59237 g per 1000 kWh.
G_PER_KWH_PER_LB_PER_MWH = 453.59237 / 1000.0
UNITS_TO_G_PER_KWH = {"lbs_co2_per_mwh": G_PER_KWH_PER_LB_PER_MWH}

# A token lasts 30 minutes; renew it a little before.
TOKEN_LIFETIME = timedelta(minutes=25)
MAX_RANGE = timedelta(days=32)
REGION_FORM = re.compile(r"^[A-Z0-9]+(_[A-Z0-9]+)+$")


def _iso(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


class WattTimeClient:
    """A client of WattTime's forecast and historical endpoints.

    Args:
        username: the account; `WATTTIME_USERNAME` when None.
        password: its password; `WATTTIME_PASSWORD` when None.
        base_url: the API root; `CARBONBOOK_WATTTIME_URL` or the public API when None.
        regions: carbonbook zone -> WattTime region (`{"US-CAL-CISO": "CAISO_NORTH"}`).
        signal_type: `co2_moer` (marginal) or `co2_aoer` (average).
        timeout_s: (connect, read) timeout of each call, in seconds.
        max_tries: calls per request, retries included.
        sleep: the wait between tries; tests pass a recorder.
        session: the `requests.Session` to use; a new one when None.
        clock: the current time, UTC-aware (token age and `fetched_at`).
        environ: the environment to read; `os.environ` when None.
    """

    name = "watttime"
    factor_type: FactorType = "direct"

    def __init__(
        self,
        username: str | None = None,
        password: str | None = None,
        base_url: str | None = None,
        *,
        regions: Mapping[str, str] | None = None,
        signal_type: Literal["co2_moer", "co2_aoer"] = "co2_moer",
        timeout_s: tuple[float, float] = DEFAULT_TIMEOUT_S,
        max_tries: int = 3,
        sleep: Callable[[float], None] = time.sleep,
        session: requests.Session | None = None,
        clock: Callable[[], datetime] = utc_now,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        env = os.environ if environ is None else environ
        self._username = username if username is not None else env.get(USER_VARIABLE, "")
        self._password = password if password is not None else env.get(PASSWORD_VARIABLE, "")
        self._token = ""
        self._token_at: datetime | None = None
        self.regions = dict(regions or {})
        self.signal_type = signal_type
        self.signal: Signal = "marginal" if signal_type == "co2_moer" else "average"
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
                403: (
                    ZoneNotAccessibleError,
                    "the account may not read this region; pick a region the plan covers",
                )
            },
            secrets=lambda: (self._password, self._token),
        )

    def __repr__(self) -> str:
        login = "set" if self._username and self._password else "missing"
        return f"WattTimeClient(base_url={self.http.base_url!r}, login={login})"

    def close(self) -> None:
        """Close the HTTP session."""
        self.http.close()

    def region(self, zone: str) -> str:
        """The WattTime region of a carbonbook zone.

        Raises:
            ZoneNotAccessibleError: the zone is neither mapped nor written like a region.
        """
        if zone in self.regions:
            return self.regions[zone]
        if REGION_FORM.match(zone):
            return zone
        raise self.http.error(
            ZoneNotAccessibleError,
            f"no WattTime region for zone {zone!r}; pass regions={{{zone!r}: 'CAISO_NORTH'}} "
            "(or the region that covers it) to WattTimeClient",
        )

    def latest(self, zone: str) -> IntensityPoint:
        """The current value: the first point of the newest forecast, so estimated.

        Raises:
            ProviderError: no login, an unknown region, or a call failed.
        """
        points = self.forecast(zone)
        if not points:
            raise self.http.error(ZoneNotAccessibleError, f"no current value for {zone}")
        return points[0]

    def history(self, zone: str, start: datetime, end: datetime) -> list[IntensityPoint]:
        """Values whose 5-minute periods overlap [start, end), oldest first.

        Ranges longer than 32 days are asked for in 32-day pieces.

        Raises:
            ProviderError: no login, an unknown region, or a call failed.
            ValueError: `start` or `end` is naive.
        """
        start, end = require_utc(start, "start"), require_utc(end, "end")
        region = self.region(zone)
        points: list[IntensityPoint] = []
        for piece_start, piece_end in spans(start, end, MAX_RANGE):
            params = {"start": _iso(piece_start), "end": _iso(piece_end)}
            body = self._get("/v3/historical", region, params)
            points += self._points(zone, body, estimated=False)
        unique = {p.start: p for p in points if p.end > start and p.start < end}
        return [unique[at] for at in sorted(unique)]

    def forecast(self, zone: str) -> list[IntensityPoint]:
        """The newest forecast, 5-minutely, oldest first.

        Raises:
            ProviderError: no login, an unknown region, or a call failed.
        """
        body = self._get("/v3/forecast", self.region(zone), {})
        return self._points(zone, body, estimated=True)

    def _login(self) -> str:
        if not (self._username and self._password):
            raise self.http.error(
                ProviderAuthError,
                f"no login; set {USER_VARIABLE} and {PASSWORD_VARIABLE} to a WattTime account",
            )
        try:
            body = self.http.get_json("/login", auth=(self._username, self._password))
        except ProviderError as exc:
            if exc.status not in (401, 403):
                raise
            raise self.http.error(
                ProviderAuthError,
                f"the login was refused; check {USER_VARIABLE} and {PASSWORD_VARIABLE}",
            ) from None
        token = body.get("token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise self.http.error(ProviderResponseError, "the login answer has no token")
        self._token, self._token_at = token, self.clock()
        return token

    def _bearer(self) -> str:
        fresh = self._token_at is not None and self.clock() - self._token_at < TOKEN_LIFETIME
        return self._token if self._token and fresh else self._login()

    def _get(self, path: str, region: str, params: dict[str, str]) -> dict[str, Any]:
        params = {"region": region, "signal_type": self.signal_type, **params}
        try:
            body = self.http.get_json(
                path, params=params, headers={"Authorization": f"Bearer {self._bearer()}"}
            )
        except ProviderAuthError as exc:
            if exc.status != 401:
                raise
            # The token expired early or was revoked: log in again, once.
            body = self.http.get_json(
                path, params=params, headers={"Authorization": f"Bearer {self._login()}"}
            )
        if not isinstance(body, dict):
            raise self.http.error(ProviderResponseError, "the answer was not a JSON object")
        return body

    def _points(
        self, zone: str, body: dict[str, Any], *, estimated: bool
    ) -> list[IntensityPoint]:
        """Points from a forecast or historical answer, converted to g/kWh."""
        fetched_at = self.clock()
        try:
            meta = body["meta"]
            unit = meta["units"]
            step = timedelta(seconds=float(meta.get("data_point_period_seconds", 300)))
            if unit not in UNITS_TO_G_PER_KWH:
                raise ValueError(f"unit {unit!r} is not one carbonbook converts")
            factor = UNITS_TO_G_PER_KWH[unit]
            points = []
            for item in body["data"]:
                start = parse_time(item["point_time"])
                value = float(item["value"])
                points.append(
                    IntensityPoint(
                        zone=zone,
                        start=start,
                        end=start + step,
                        g_per_kwh=value * factor,
                        provider=self.name,
                        factor_type=self.factor_type,
                        signal=self.signal,
                        estimated=estimated,
                        fetched_at=fetched_at,
                        unit=unit,
                        raw_value=value,
                        source=f"{SOURCE} {self.signal_type}",
                    )
                )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise self.http.error(
                ProviderResponseError,
                f"the answer is not in the documented shape ({type(exc).__name__}: {exc}); "
                "the API may have changed, or the base URL is not the v3 API",
            ) from None
        return sorted(points, key=lambda p: p.start)
