"""The ledger's emissions with the best intensity available, and shifting advice for it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from carbonbook.model.emissions import emissions_frame, usage_frame
from carbonbook.model.market import Instruments
from carbonbook.model.schema import emissions_schema
from carbonbook.model.shifting import place_shift, time_shift

if TYPE_CHECKING:
    import polars as pl

    from carbonbook.intensity.chain import IntensityChain

__all__ = ["DEFAULT_ALTERNATIVES", "ShiftReport", "ledger_emissions", "ledger_shifting"]


def ledger_emissions(
    path: str | Path | None = None,
    *,
    provider: str | None = None,
    instruments: Instruments | str | Path | None = None,
    chain: IntensityChain | None = None,
) -> pl.DataFrame:
    """The emissions frame of every record in the ledger.

    Energy is the stored raw energy; intensity comes, period by period, from the chosen
    providers (see `carbonbook.intensity.service`), else from the embedded annual data.

    Args:
        path: the ledger; `CARBONBOOK_LEDGER` or the default location when None.
        provider: one provider to ask before the embedded data.
        instruments: contractual instruments for market-based Scope 2, or the path of a
            TOML file declaring them.
        chain: an intensity chain to use instead of building one.

    Raises:
        LedgerError: the ledger cannot be read.
        InstrumentsError: the instruments file is malformed.
    """
    import polars as pl

    from carbonbook.intensity.service import build_chain, points_frame, warn_once
    from carbonbook.ledger import read_ledger

    if isinstance(instruments, (str, Path)):
        instruments = Instruments.from_toml(instruments)
    usage = usage_frame(read_ledger(path))
    if usage.height == 0:
        return pl.DataFrame(schema=emissions_schema())
    chain = chain or build_chain(provider)
    series = None
    if chain.providers:
        spans = usage.group_by("zone").agg(pl.col("start").min(), pl.col("end").max())
        frames = [
            points_frame(
                chain.series(zone, start, max(end, start + timedelta(minutes=1))), zone
            )
            for zone, start, end in spans.iter_rows()
        ]
        series = pl.concat(frames) if frames else None
        warn_once(chain, stacklevel=4)
    return emissions_frame(usage, series, market=instruments)


DEFAULT_ALTERNATIVES = ("FR", "SE", "NO", "GB", "DE", "US", "IN", "PL")


@dataclass(frozen=True, slots=True)
class ShiftReport:
    """What the selected work would have emitted elsewhere, and at better times.

    Attributes:
        energy_kwh: the selected records' energy.
        zone: the zone they ran in.
        place: `place_shift` of that energy.
        time: `time_shift` over a provider's forecast, or None without one.
        note: why there is no time table, or empty.
    """

    energy_kwh: float
    zone: str
    place: pl.DataFrame
    time: pl.DataFrame | None
    note: str = ""

    def __repr__(self) -> str:
        parts = [f"{self.energy_kwh:.4g} kWh in {self.zone}", repr(self.place)]
        parts.append(repr(self.time) if self.time is not None else self.note)
        return "\n".join(parts)

    def _repr_html_(self) -> str:
        time = self.time._repr_html_() if self.time is not None else f"<p>{self.note}</p>"
        return (
            f"<p>{self.energy_kwh:.4g} kWh in {self.zone}</p>{self.place._repr_html_()}{time}"
        )


def ledger_shifting(
    label: str | None = None,
    *,
    notebook: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    zones: Sequence[str] = DEFAULT_ALTERNATIVES,
    provider: str | None = None,
    path: str | Path | None = None,
    now: datetime | None = None,
) -> ShiftReport:
    """Place and time shifting for the records of a label, a notebook or a period.

    The time table slides a job as long as the selected records together over the first
    forecast a chosen provider gives (see `carbonbook.intensity.service`).

    Raises:
        LedgerError: the ledger cannot be read.
        CarbonbookError: no record matches the selection.
    """
    import polars as pl

    from carbonbook.errors import CarbonbookError
    from carbonbook.intensity.providers import ProviderError
    from carbonbook.intensity.service import build_chain, points_frame
    from carbonbook.ledger import read_ledger

    frame = read_ledger(path)
    if label is not None:
        frame = frame.filter(pl.col("label") == label)
    if notebook is not None:
        frame = frame.filter(pl.col("notebook_path") == notebook)
    if start is not None:
        frame = frame.filter(pl.col("started_at") >= start)
    if end is not None:
        frame = frame.filter(pl.col("ended_at") <= end)
    if frame.height == 0:
        raise CarbonbookError("no ledger record matches that label, notebook or period")
    totals = frame.select(
        (pl.col("energy_j").sum() / 3.6e6).alias("energy_kwh"),
        pl.col("pue").mean().fill_null(1.0).alias("pue"),
        pl.col("duration_s").sum().alias("duration_s"),
    ).row(0)
    energy_kwh, pue, duration_s = (float(value) for value in totals)
    zone = str(frame["zone"].mode().sort()[0])
    duration = timedelta(seconds=max(1.0, duration_s))
    place = place_shift(energy_kwh, zone, zones, pue=pue)

    chain = build_chain(provider)
    for client in chain.providers:
        try:
            forecast = points_frame(client.forecast(zone), zone)
        except ProviderError as exc:
            chain.messages.append(f"{client.name}: {exc}")
            continue
        if forecast.height:
            moment = now or datetime.now(tz=UTC)
            table = time_shift(energy_kwh, duration, forecast, now=moment, pue=pue)
            return ShiftReport(energy_kwh, zone, place, table)
    note = "no forecast: choose a provider (provider=, CARBONBOOK_PROVIDERS or credentials)"
    if chain.messages:
        note = "no forecast: " + "; ".join(chain.messages)
    return ShiftReport(energy_kwh, zone, place, None, note)
