"""Emissions of the ledger with the best intensity available (`carbonbook.emissions`)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from carbonbook.model.emissions import emissions_frame, usage_frame
from carbonbook.model.market import Instruments
from carbonbook.model.schema import emissions_schema

if TYPE_CHECKING:
    import polars as pl

    from carbonbook.intensity.chain import IntensityChain

__all__ = ["ledger_emissions"]


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

    from carbonbook.intensity.service import build_chain, points_frame
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
    return emissions_frame(usage, series, market=instruments)
