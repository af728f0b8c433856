"""The fallback chain: grid intensity from the first source that answers.

`IntensityChain` asks a list of providers in order, serves history from the persistent
cache, and ends in the embedded annual data, so that it always answers; each point records
where its figure came from and which providers failed before it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from carbonbook.intensity.providers import (
    IntensityCacheError,
    IntensityPoint,
    IntensityProvider,
    ProviderError,
    SeriesKey,
    ZoneNotAccessibleError,
    require_utc,
    utc_now,
)

if TYPE_CHECKING:
    from carbonbook.intensity.cache import IntensityCache

__all__ = ["HOUR", "RECENT", "SETTLE", "IntensityChain", "embedded_series"]

logger = logging.getLogger(__name__)


# A value younger than this is asked for live (latest, forecast), not from history.
RECENT = timedelta(hours=1)
# Providers revise recent values (estimates become measurements), so the cache serves
# only periods that ended at least this long before they were fetched.
SETTLE = timedelta(hours=2)
HOUR = timedelta(hours=1)


def _floor_hour(at: datetime) -> datetime:
    return at.replace(minute=0, second=0, microsecond=0)


def embedded_series(
    zone: str, start: datetime, end: datetime, fetched_at: datetime
) -> list[IntensityPoint]:
    """Hourly points over [start, end) from the embedded annual figure of the zone."""
    from carbonbook.intensity.embedded import embedded_intensity

    figure = embedded_intensity(zone)
    year = f" ({figure.year})" if figure.year else ""
    points = []
    hour = _floor_hour(start)
    while hour < end:
        points.append(
            IntensityPoint(
                zone=zone,
                start=hour,
                end=hour + HOUR,
                g_per_kwh=figure.g_per_kwh,
                provider="embedded",
                factor_type=figure.factor_type,
                signal="average",
                estimated=True,
                fetched_at=fetched_at,
                raw_value=figure.g_per_kwh,
                source=f"{figure.source}, annual figure{year}, {figure.basis}",
                note=figure.note,
            )
        )
        hour += HOUR
    return points


class IntensityChain:
    """Grid intensity from the first source that answers, never raising for provider failures.

    Providers are asked in order; the embedded annual data answers last. History that a
    provider gave once is served from the cache afterwards, before any provider is called,
    so a re-run gives the same figures offline. Each kind of failure of each provider is
    logged once (warning) and kept in `messages` for the notebook to show once.

    Mixing signals is the caller's choice: a chain of a marginal provider (WattTime
    `co2_moer`) ends in average embedded data, and each point's `signal` says which it is.

    Args:
        providers: the provider clients, best first.
        cache: the persistent cache; None for none.
        clock: the current time, UTC-aware.
        settle: how old a period must be, when fetched, for the cache to serve it later.

    Attributes:
        messages: one line per provider failure kind, in the order they happened.
    """

    def __init__(
        self,
        providers: list[IntensityProvider] | tuple[IntensityProvider, ...] = (),
        cache: IntensityCache | None = None,
        *,
        clock: Callable[[], datetime] = utc_now,
        settle: timedelta = SETTLE,
    ) -> None:
        self.providers = list(providers)
        self.cache = cache
        self.clock = clock
        self.settle = settle
        self.messages: list[str] = []
        self._seen: set[tuple[str, str]] = set()

    def series(self, zone: str, start: datetime, end: datetime) -> list[IntensityPoint]:
        """The intensity over [start, end), oldest first; never empty when end > start.

        Raises:
            ValueError: `start` or `end` is naive.
        """
        start, end = require_utc(start, "start"), require_utc(end, "end")
        if end <= start:
            return []
        for provider in self.providers:
            cached = self._cached(provider, zone, start, end)
            if cached:
                return cached

        failed: list[tuple[str, str]] = []
        for provider in self.providers:
            try:
                points = [p for p in provider.history(zone, start, end) if p.end > start]
                if not points:
                    raise ZoneNotAccessibleError(
                        f"{provider.name}: no data for {zone} from {start:%Y-%m-%d %H:%M} "
                        f"to {end:%Y-%m-%d %H:%M} UTC",
                        provider=provider.name,
                    )
            except ProviderError as exc:
                failed.append((provider.name, self._failed(provider.name, exc)))
                continue
            self._store(provider, zone, points, start, end)
            # Not yet: hours missing inside a provider's answer are not filled from the next
            # source, because mixing sources within one series needs a rule per signal.
            return _annotate(points, failed)
        return _annotate(embedded_series(zone, start, end, self.clock()), failed)

    def intensity(self, zone: str, at: datetime) -> IntensityPoint:
        """The intensity at the instant `at`: live for the last hour and later, else history.

        Raises:
            ValueError: `at` is naive.
        """
        at = require_utc(at, "at")
        now = self.clock()
        if at < now - RECENT:
            return _pick(self.series(zone, _floor_hour(at), _floor_hour(at) + HOUR), at)

        # Not yet: live values are not cached, because providers revise the current hour;
        # offline, the last hour therefore comes from the embedded data.
        failed: list[tuple[str, str]] = []
        for provider in self.providers:
            try:
                if at <= now:
                    return _annotate([provider.latest(zone)], failed)[0]
                ahead = [p for p in provider.forecast(zone) if p.covers(at)]
                if not ahead:
                    raise ZoneNotAccessibleError(
                        f"{provider.name}: the forecast for {zone} does not reach "
                        f"{at:%Y-%m-%d %H:%M} UTC",
                        provider=provider.name,
                    )
                return _annotate(ahead[:1], failed)[0]
            except ProviderError as exc:
                failed.append((provider.name, self._failed(provider.name, exc)))
        hour = _floor_hour(at)
        return _annotate(embedded_series(zone, hour, hour + HOUR, now), failed)[0]

    def _failed(self, name: str, exc: ProviderError) -> str:
        """Log the failure once per provider and kind; the reason, free of credentials."""
        reason = str(exc)
        if (name, exc.kind) not in self._seen:
            self._seen.add((name, exc.kind))
            message = f"{reason} (carbonbook uses the next intensity source meanwhile)"
            logger.warning("%s", message)
            self.messages.append(message)
        return reason

    def _cached(
        self, provider: IntensityProvider, zone: str, start: datetime, end: datetime
    ) -> list[IntensityPoint]:
        if self.cache is None:
            return []
        key = SeriesKey(provider.name, zone, provider.signal, provider.factor_type)
        try:
            if self.cache.covered(key, start, end):
                return self.cache.points(key, start, end)
        except IntensityCacheError as exc:
            self._cache_failed(exc)
        return []

    def _store(
        self,
        provider: IntensityProvider,
        zone: str,
        points: list[IntensityPoint],
        start: datetime,
        end: datetime,
    ) -> None:
        if self.cache is None:
            return
        key = SeriesKey(provider.name, zone, provider.signal, provider.factor_type)
        settled = min(end, self.clock() - self.settle)
        try:
            self.cache.store(key, points, covered=(start, settled) if settled > start else None)
        except IntensityCacheError as exc:
            self._cache_failed(exc)

    def _cache_failed(self, exc: IntensityCacheError) -> None:
        message = f"{exc} (carbonbook goes on without the intensity cache)"
        logger.warning("%s", message)
        self.messages.append(message)
        self.cache = None


def _annotate(
    points: list[IntensityPoint], failed: list[tuple[str, str]]
) -> list[IntensityPoint]:
    """`points` with the failed providers and their reasons recorded in each."""
    if not failed:
        return points
    names = ", ".join(name for name, _ in failed)
    reasons = "; ".join(reason for _, reason in failed)
    return [
        replace(p, fallback_from=names, note=f"{reasons}; {p.note}" if p.note else reasons)
        for p in points
    ]


def _pick(points: list[IntensityPoint], at: datetime) -> IntensityPoint:
    """The point covering `at`, else the last one that starts before it, else the first."""
    for point in points:
        if point.covers(at):
            return point
    before = [p for p in points if p.start <= at]
    return before[-1] if before else points[0]
