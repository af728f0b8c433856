"""The intensity a user asks for: which providers to ask, and frames of their answers.

Providers are used only when the user has chosen them, so that nothing reaches the
network by default:

- `provider=` names one (`electricitymaps`, `watttime`, `ukgrid`, `embedded`);
- else `CARBONBOOK_PROVIDERS` lists them in order (`electricitymaps,ukgrid`);
- else every provider whose credentials are set (`ELECTRICITYMAPS_API_TOKEN`,
  `WATTTIME_USERNAME` and `WATTTIME_PASSWORD`), Electricity Maps first.

The chain always ends in the embedded annual data, and history is cached on disk.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from carbonbook.errors import CarbonbookError, CarbonbookWarning

if TYPE_CHECKING:
    import polars as pl

    from carbonbook.intensity.chain import IntensityChain
    from carbonbook.intensity.providers import IntensityPoint, IntensityProvider

__all__ = [
    "PROVIDER_NAMES",
    "build_chain",
    "intensity_frame",
    "parse_when",
    "points_frame",
    "warn_once",
]

# Messages already shown in this process: each is shown once per session.
_shown: set[str] = set()


def warn_once(chain: IntensityChain, *, stacklevel: int = 3) -> None:
    """Show each of the chain's failure messages once per session, as a warning."""
    for message in chain.messages:
        if message not in _shown:
            _shown.add(message)
            warnings.warn(
                message,
                CarbonbookWarning,
                stacklevel=stacklevel,
            )


PROVIDER_NAMES = ("electricitymaps", "watttime", "ukgrid", "embedded")


def parse_when(text: str) -> datetime:
    """An ISO 8601 time (`2026-12-03T10:00`, `...Z`, `...+01:00`); naive times are UTC.

    Raises:
        CarbonbookError: the text is not such a time.
    """
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise CarbonbookError(
            f"{text!r} is not a time; write it as ISO 8601, such as 2026-12-03T10:00Z"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _make(name: str, environ: Mapping[str, str]) -> IntensityProvider | None:
    if name == "electricitymaps":
        from carbonbook.intensity.electricitymaps import ElectricityMapsClient

        return ElectricityMapsClient(environ=environ)
    if name == "watttime":
        from carbonbook.intensity.watttime import WattTimeClient

        return WattTimeClient(environ=environ)
    if name == "ukgrid":
        from carbonbook.intensity.ukgrid import UkGridClient

        return UkGridClient(environ=environ)
    if name == "embedded":
        return None
    raise CarbonbookError(
        f"unknown intensity provider {name!r}; choose one of {', '.join(PROVIDER_NAMES)}"
    )


def chosen_providers(
    provider: str | None = None, environ: Mapping[str, str] | None = None
) -> list[str]:
    """The provider names to ask, in order (see the module docstring)."""
    env = os.environ if environ is None else environ
    if provider:
        return [provider.strip().lower()]
    listed = env.get("CARBONBOOK_PROVIDERS", "")
    if listed.strip():
        return [name.strip().lower() for name in listed.split(",") if name.strip()]
    names = []
    if env.get("ELECTRICITYMAPS_API_TOKEN"):
        names.append("electricitymaps")
    if env.get("WATTTIME_USERNAME") and env.get("WATTTIME_PASSWORD"):
        names.append("watttime")
    return names


def build_chain(
    provider: str | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    cache: bool = True,
) -> IntensityChain:
    """The fallback chain of the chosen providers, ending in the embedded data.

    Raises:
        CarbonbookError: a provider name is unknown.
    """
    from carbonbook.intensity.chain import IntensityChain

    env = os.environ if environ is None else environ
    clients = [c for c in (_make(n, env) for n in chosen_providers(provider, env)) if c]
    store = None
    if cache and clients:
        from carbonbook.intensity.cache import IntensityCache

        store = IntensityCache(environ=env)
    return IntensityChain(clients, store)


def points_frame(points: Sequence[IntensityPoint], zone: str | None = None) -> pl.DataFrame:
    """Intensity points as a frame with the model's series columns and their provenance."""
    import polars as pl

    when = pl.Datetime("us", "UTC")
    rows = [
        {
            "zone": zone or p.zone,
            "intensity_start": p.start,
            "intensity_end": p.end,
            "intensity_g_per_kwh": p.g_per_kwh,
            "intensity_provider": p.provider,
            "intensity_zone": p.zone,
            "factor_type": p.factor_type,
            "signal": p.signal,
            "intensity_estimated": p.estimated,
            "intensity_note": "; ".join(
                part
                for part in (
                    f"fell back from {p.fallback_from}" if p.fallback_from else "",
                    p.note,
                )
                if part
            ),
            "unit": p.unit,
            "raw_value": p.raw_value,
            "source": p.source,
            "fetched_at": p.fetched_at,
        }
        for p in points
    ]
    schema: dict[str, pl.DataType | type[pl.DataType]] = {
        "zone": pl.String,
        "intensity_start": when,
        "intensity_end": when,
        "intensity_g_per_kwh": pl.Float64,
        "intensity_provider": pl.String,
        "intensity_zone": pl.String,
        "factor_type": pl.String,
        "signal": pl.String,
        "intensity_estimated": pl.Boolean,
        "intensity_note": pl.String,
        "unit": pl.String,
        "raw_value": pl.Float64,
        "source": pl.String,
        "fetched_at": when,
    }
    return pl.DataFrame(rows, schema=schema)


def intensity_frame(
    zone: str,
    start: datetime | None = None,
    end: datetime | None = None,
    *,
    provider: str | None = None,
    chain: IntensityChain | None = None,
) -> pl.DataFrame:
    """The intensity of a zone over [start, end), or at one instant when `end` is None.

    Args:
        zone: the grid zone.
        start: the start (UTC); now when None.
        end: the end; None for the single value in force at `start`.
        provider: one provider to ask before the embedded data (see `build_chain`).
        chain: a chain to use instead of building one.
    """
    chain = chain or build_chain(provider)
    moment = start or datetime.now(tz=UTC)
    if end is None:
        points = [chain.intensity(zone, moment)]
    else:
        if end <= moment:
            raise CarbonbookError(f"the end ({end:%Y-%m-%d %H:%M}) is not after the start")
        if end - moment > timedelta(days=366):
            raise CarbonbookError("ask for at most a year of intensity at once")
        points = chain.series(zone, moment, end)
    warn_once(chain, stacklevel=4)
    return points_frame(points, zone)
