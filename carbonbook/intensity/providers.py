"""Live and historical grid intensity: the common types, errors, HTTP and the fallback chain.

Each provider module (`electricitymaps`, `watttime`, `ukgrid`) is a thin client over one
`requests.Session`; they share `ProviderHttp` for timeouts, retries and the translation of
HTTP failures into `ProviderError` subclasses. The fallback chain that puts them together
with the cache and the embedded data is `carbonbook.intensity.chain.IntensityChain`.

`requests` is imported only when a provider makes its first call.
"""

from __future__ import annotations

import email.utils
import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Literal, NamedTuple, Protocol

from carbonbook.errors import CarbonbookError

if TYPE_CHECKING:
    import requests

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "IntensityCacheError",
    "IntensityPoint",
    "IntensityProvider",
    "ProviderAuthError",
    "ProviderError",
    "ProviderHttp",
    "ProviderRateLimitError",
    "ProviderResponseError",
    "ProviderUnavailableError",
    "SeriesKey",
    "ZoneNotAccessibleError",
    "parse_time",
    "utc_now",
]

logger = logging.getLogger(__name__)

FactorType = Literal["lifecycle", "direct"]
Signal = Literal["average", "marginal"]

# (connect, read) seconds for every call.
DEFAULT_TIMEOUT_S: tuple[float, float] = (3.05, 10.0)
MAX_SERVER_TEXT = 200


@dataclass(frozen=True, slots=True)
class IntensityPoint:
    """The grid intensity of one zone over one period, with its provenance.

    Attributes:
        zone: the carbonbook zone asked for (`FR`, `US-CAL-CISO`, `GB-13`).
        start: the start of the period, UTC-aware.
        end: the end of the period (exclusive), UTC-aware.
        g_per_kwh: grams CO2e per kilowatt-hour.
        provider: `electricitymaps`, `watttime`, `ukgrid` or `embedded`.
        factor_type: `lifecycle` (upstream emissions included) or `direct` (combustion).
        signal: `average` (for inventories) or `marginal` (for shifting decisions).
        estimated: True for provider estimates and forecasts, False for reported values.
        fetched_at: when the value was obtained, UTC-aware.
        unit: the unit the provider gave (`gCO2eq/kWh`, `lbs_co2_per_mwh`).
        raw_value: the value in that unit, before conversion to g/kWh.
        source: who published the figure, with its licence where one applies.
        fallback_from: the providers that failed before this one answered, or empty.
        note: why a fallback happened, or another caveat; never holds a credential.
    """

    zone: str
    start: datetime
    end: datetime
    g_per_kwh: float
    provider: str
    factor_type: FactorType
    signal: Signal
    estimated: bool
    fetched_at: datetime
    unit: str = "gCO2eq/kWh"
    raw_value: float | None = None
    source: str = ""
    fallback_from: str = ""
    note: str = ""

    def covers(self, at: datetime) -> bool:
        """Whether the instant `at` falls inside this point's period."""
        return self.start <= at < self.end


class SeriesKey(NamedTuple):
    """What a cached series is filed under: who said it, for where, of which kind."""

    provider: str
    zone: str
    signal: Signal
    factor_type: FactorType


class IntensityProvider(Protocol):
    """What the chain needs from a provider client.

    `name`, `signal` and `factor_type` key the cache; the methods raise `ProviderError`.
    """

    name: str
    signal: Signal
    factor_type: FactorType

    def latest(self, zone: str) -> IntensityPoint:
        """The most recent value for the zone."""
        ...

    def history(self, zone: str, start: datetime, end: datetime) -> list[IntensityPoint]:
        """The values whose periods overlap [start, end), oldest first."""
        ...

    def forecast(self, zone: str) -> list[IntensityPoint]:
        """The forecast values from now on, oldest first."""
        ...


# -- errors ---------------------------------------------------------------------------------


class ProviderError(CarbonbookError):
    """A grid-intensity provider could not give an answer.

    Attributes:
        provider: the provider's name (`electricitymaps`, `watttime`, `ukgrid`).
        status: the HTTP status, when there was an answer.
        kind: a short word for the failure (`auth`, `rate_limit`, `unavailable`, ...).
    """

    kind: ClassVar[str] = "error"

    def __init__(self, message: str, *, provider: str, status: int | None = None) -> None:
        super().__init__(message)
        self.provider = provider
        self.status = status


class ProviderAuthError(ProviderError):
    """The credentials are missing or were refused (HTTP 401 or 403)."""

    kind = "auth"


class ProviderRateLimitError(ProviderError):
    """The provider kept answering 429 (too many requests) after the retries."""

    kind = "rate_limit"


class ProviderUnavailableError(ProviderError):
    """No usable answer: no network, a timeout, a dropped connection or a 5xx answer."""

    kind = "unavailable"


class ProviderResponseError(ProviderError):
    """The answer was not what the provider documents (not JSON, empty, missing fields)."""

    kind = "bad_response"


class ZoneNotAccessibleError(ProviderError):
    """The provider has no data for the zone, or the account may not read it."""

    kind = "zone"


class IntensityCacheError(CarbonbookError):
    """The intensity cache file cannot be opened, read or written."""


def redact(text: str, secrets: tuple[str, ...]) -> str:
    """`text` with every non-empty secret replaced by `***`."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


# -- time helpers -----------------------------------------------------------------------------


def utc_now() -> datetime:
    """The current time, UTC-aware (the default clock of the clients and the chain)."""
    return datetime.now(UTC)


def parse_time(text: object) -> datetime:
    """An ISO 8601 timestamp from a provider as a UTC-aware datetime.

    Raises:
        ValueError: `text` is not a string in ISO 8601 form.
    """
    if not isinstance(text, str):
        raise ValueError(f"expected an ISO 8601 time, got {text!r}")
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def require_utc(value: datetime, name: str) -> datetime:
    """`value` converted to UTC.

    Raises:
        ValueError: `value` is naive, so its time zone would be a guess.
    """
    if value.tzinfo is None:
        raise ValueError(
            f"{name} must be timezone-aware; pass datetime(..., tzinfo=datetime.UTC)"
        )
    return value.astimezone(UTC)


def spans(
    start: datetime, end: datetime, longest: timedelta
) -> Iterator[tuple[datetime, datetime]]:
    """[start, end) cut into consecutive pieces no longer than `longest`."""
    while start < end:
        stop = min(end, start + longest)
        yield start, stop
        start = stop


# -- HTTP -------------------------------------------------------------------------------------


def _server_text(response: requests.Response) -> str:
    """The provider's own error message from a JSON error body, shortened, or empty."""
    try:
        body = response.json()
    except ValueError:
        return ""
    if not isinstance(body, dict):
        return ""
    for key in ("message", "error", "detail"):
        value = body.get(key)
        if isinstance(value, dict):
            value = value.get("message")
        if isinstance(value, str) and value:
            return value[:MAX_SERVER_TEXT]
    return ""


def _retry_after_s(response: requests.Response) -> float | None:
    """The wait a 429 or 503 answer asks for, in seconds, from `Retry-After`."""
    header = response.headers.get("Retry-After")
    if not header:
        return None
    try:
        return max(0.0, float(header))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - utc_now()).total_seconds())


StatusRule = tuple[type[ProviderError], str]


class ProviderHttp:
    """GET with timeouts, retries and error translation, shared by the provider clients.

    Retries (up to `max_tries` calls in all) follow 429, 5xx answers and connection
    failures, waiting `backoff_s`, then twice that, and so on, or what `Retry-After`
    asks for, never more than `max_wait_s`. A read timeout is not retried: a server that
    is that slow once is slow again, and the notebook waits for every try.

    Args:
        provider: the provider's name, recorded in errors.
        label: the provider's name in messages ("Electricity Maps").
        base_url: prefix of every path.
        timeout_s: (connect, read) timeout in seconds.
        max_tries: calls per request, retries included.
        backoff_s: the first wait between tries, in seconds.
        max_wait_s: the longest wait between tries, in seconds.
        sleep: called with each wait, in seconds; tests pass a recorder.
        session: the `requests.Session` to use; a new one when None.
        statuses: per-status error type and message that replace the defaults.
        secrets: returns the credentials in use, which are removed from every message.
    """

    def __init__(
        self,
        provider: str,
        label: str,
        base_url: str,
        *,
        timeout_s: tuple[float, float] = DEFAULT_TIMEOUT_S,
        max_tries: int = 3,
        backoff_s: float = 0.5,
        max_wait_s: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        session: requests.Session | None = None,
        statuses: Mapping[int, StatusRule] | None = None,
        secrets: Callable[[], tuple[str, ...]] = tuple,
    ) -> None:
        self.provider = provider
        self.label = label
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.max_tries = max(1, max_tries)
        self.backoff_s = backoff_s
        self.max_wait_s = max_wait_s
        self.sleep = sleep
        self._session = session
        self._statuses = dict(statuses or {})
        self._secrets = secrets

    def __repr__(self) -> str:
        return f"ProviderHttp({self.provider!r}, base_url={self.base_url!r})"

    @property
    def session(self) -> requests.Session:
        """The session, created on first use (this is where `requests` is imported)."""
        if self._session is None:
            import requests

            self._session = requests.Session()
        return self._session

    def close(self) -> None:
        """Close the session's connections."""
        if self._session is not None:
            self._session.close()

    def error(
        self, kind: type[ProviderError], message: str, status: int | None = None
    ) -> ProviderError:
        """An error of type `kind` with the credentials removed from its message."""
        text = redact(f"{self.label}: {message}", self._secrets())
        return kind(text, provider=self.provider, status=status)

    def get_json(
        self,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        auth: tuple[str, str] | None = None,
    ) -> Any:
        """The decoded JSON body of a successful GET of `base_url + path`.

        Raises:
            ProviderError: a subclass that says what failed (see the module's classes).
        """
        import requests

        url = self.base_url + path
        failure: ProviderError | None = None
        for attempt in range(1, self.max_tries + 1):
            wait_s = self.backoff_s * 2 ** (attempt - 1)
            try:
                response = self.session.get(
                    url, params=params, headers=headers, auth=auth, timeout=self.timeout_s
                )
            except requests.ConnectionError as exc:
                failure = self.error(
                    ProviderUnavailableError,
                    f"could not reach {self.base_url} ({type(exc).__name__}); check the "
                    "network or proxy settings; carbonbook uses the next source meanwhile",
                )
            except requests.Timeout:
                raise self.error(
                    ProviderUnavailableError,
                    f"no answer from {self.base_url} within {self.timeout_s[1]:g} s; "
                    "the service may be slow, try again later",
                ) from None
            except requests.RequestException as exc:
                raise self.error(
                    ProviderUnavailableError, f"the request failed ({type(exc).__name__})"
                ) from None
            else:
                if response.ok:
                    return self._decode(response)
                failure = self._status_error(response)
                if response.status_code != 429 and response.status_code < 500:
                    raise failure
                asked_s = _retry_after_s(response)
                if asked_s is not None:
                    wait_s = asked_s
            if attempt < self.max_tries:
                logger.debug(
                    "%s: try %d failed, waiting %.2f s", self.provider, attempt, wait_s
                )
                self.sleep(min(wait_s, self.max_wait_s))
        assert failure is not None
        raise failure

    def _decode(self, response: requests.Response) -> Any:
        if not response.content.strip():
            raise self.error(
                ProviderResponseError,
                "the answer was empty; the service may be degraded, try again later",
                response.status_code,
            )
        try:
            return json.loads(response.content)
        except ValueError:
            raise self.error(
                ProviderResponseError,
                "the answer was not JSON; check the base URL points at the API",
                response.status_code,
            ) from None

    def _status_error(self, response: requests.Response) -> ProviderError:
        status = response.status_code
        said = _server_text(response)
        said = f": {said}" if said else ""
        rule = self._statuses.get(status)
        if rule is not None:
            return self.error(rule[0], f"{rule[1]} (HTTP {status}{said})", status)
        if status in (401, 403):
            kind: type[ProviderError] = ProviderAuthError
            text = "the credentials were refused; check them"
        elif status == 404:
            kind, text = ZoneNotAccessibleError, "no data for this request"
        elif status == 429:
            kind, text = ProviderRateLimitError, "too many requests; wait and try again"
        elif status >= 500:
            kind, text = ProviderUnavailableError, "the service failed; try again later"
        else:
            kind, text = ProviderResponseError, "the request was refused"
        return self.error(kind, f"{text} (HTTP {status}{said})", status)
