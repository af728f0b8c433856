"""Energy x intensity x PUE: turning metered energy into emissions, period by period.

Records (notebook cells, later billing rows) carry energy over a time span in a zone;
an intensity series carries grams CO2e per kWh over periods (hourly or finer) per zone.
Each record is matched to the periods it overlaps, and split across them in proportion
to the time it spent in each, so that the energies of the pieces add up exactly to the
record's. A part of a record that no period covers keeps its energy and takes the
embedded annual figure of its zone, saying so in `intensity_note`.

Location-based Scope 2 is energy x PUE x intensity; market-based Scope 2 comes from
`carbonbook.model.market`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from carbonbook.intensity.embedded import embedded_intensity
from carbonbook.model.schema import EMISSIONS_COLUMNS, emissions_schema
from carbonbook.records import CellRecord

if TYPE_CHECKING:
    import polars as pl

__all__ = [
    "SERIES_COLUMNS",
    "emissions_frame",
    "fallback_series",
    "split_across_periods",
    "usage_frame",
]

JOULES_PER_KWH = 3.6e6

# The columns an intensity series has (see `carbonbook.intensity.providers`).
SERIES_COLUMNS: tuple[str, ...] = (
    "zone",
    "intensity_start",
    "intensity_end",
    "intensity_g_per_kwh",
    "intensity_provider",
    "intensity_zone",
    "factor_type",
    "signal",
    "intensity_estimated",
    "intensity_note",
)

# The schema's columns that say what ran on the billing side; notebook rows leave them empty.
_BILLING_WHAT = ("provider", "account", "service", "region", "usage_kind")


def usage_frame(records: Sequence[CellRecord] | pl.DataFrame) -> pl.DataFrame:
    """Notebook records (or the frame of `read_ledger`) as usage rows, energy in kWh.

    The energy is the attributed energy of the kernel's process tree, with its bounds.
    """
    import polars as pl

    if isinstance(records, pl.DataFrame):
        frame = records
    else:
        from carbonbook.export import records_to_frame

        frame = records_to_frame(list(records))
    schema = emissions_schema()
    return frame.select(
        pl.lit("notebook").alias("source"),
        pl.col("record_id"),
        pl.col("started_at").alias("start"),
        pl.col("ended_at").alias("end"),
        pl.col("zone"),
        pl.col("notebook_path").alias("notebook"),
        pl.col("label"),
        pl.col("execution_count").cast(pl.Int64),
        *(pl.lit(None, schema[name]).alias(name) for name in _BILLING_WHAT),
        (pl.col("energy_j") / JOULES_PER_KWH).alias("energy_kwh"),
        (pl.col("energy_lower_j") / JOULES_PER_KWH).alias("energy_lower_kwh"),
        (pl.col("energy_upper_j") / JOULES_PER_KWH).alias("energy_upper_kwh"),
        pl.lit("it").alias("energy_kind"),
        pl.col("method"),
        pl.col("pue"),
    )


def fallback_series(zones: Sequence[str]) -> pl.DataFrame:
    """One open-ended row per zone with its embedded annual intensity."""
    import polars as pl

    rows: dict[str, list[Any]] = {name: [] for name in SERIES_COLUMNS}
    for zone in sorted(set(zones)):
        found = embedded_intensity(zone)
        note = "no period of the series covers this time: embedded annual figure"
        rows["zone"].append(zone)
        rows["intensity_start"].append(None)
        rows["intensity_end"].append(None)
        rows["intensity_g_per_kwh"].append(found.g_per_kwh)
        rows["intensity_provider"].append("embedded")
        rows["intensity_zone"].append(found.basis)
        rows["factor_type"].append(found.factor_type)
        rows["signal"].append(found.signal)
        rows["intensity_estimated"].append(False)
        rows["intensity_note"].append(f"{note} ({found.note})" if found.note else note)
    schema = {name: emissions_schema().get(name, pl.String()) for name in SERIES_COLUMNS}
    return pl.DataFrame(rows, schema=schema)


def _seconds(expr: pl.Expr) -> pl.Expr:
    import polars as pl

    return expr.dt.total_microseconds().cast(pl.Float64) / 1e6


def _overlaps(rest: pl.DataFrame, periods: pl.DataFrame) -> pl.DataFrame:
    """The pieces of records that do not lie inside one period, one per overlap."""
    import polars as pl

    energy = ["energy_kwh", "energy_lower_kwh", "energy_upper_kwh"]
    keys = periods.select("zone", "intensity_start", "_p")
    # The periods of a zone are consecutive rows of `periods`: find, for each record,
    # the first and the last period it can touch, and take every period in between.
    first = rest.sort("start").join_asof(
        keys,
        left_on="start",
        right_on="intensity_start",
        by="zone",
        strategy="backward",
        check_sortedness=False,
    )
    first = (
        first.join_asof(
            keys.rename({"_p": "_p_next"}),
            left_on="start",
            right_on="intensity_start",
            by="zone",
            strategy="forward",
            check_sortedness=False,
        )
        .with_columns(pl.coalesce("_p", "_p_next").alias("_p_first"))
        .drop("_p", "_p_next", "intensity_start", "intensity_start_right", strict=False)
    )
    last = (
        first.sort("end")
        .join_asof(
            keys.rename({"_p": "_p_last"}),
            left_on="end",
            right_on="intensity_start",
            by="zone",
            strategy="backward",
            check_sortedness=False,
        )
        .drop("intensity_start", strict=False)
    )
    spans = last.filter(pl.col("_p_first").is_not_null() & pl.col("_p_last").is_not_null())
    exploded = (
        spans.with_columns(
            pl.int_ranges("_p_first", pl.col("_p_last") + 1, dtype=pl.UInt32).alias("_p")
        )
        .explode("_p")
        .drop("_p_first", "_p_last")
    )
    joined = exploded.join(periods.drop("zone"), on="_p", how="inner")
    piece_start = pl.max_horizontal("start", "intensity_start")
    piece_end = pl.min_horizontal("end", "intensity_end")
    overlap_s = _seconds(piece_end - piece_start)
    fraction = pl.when(pl.col("_span_s") > 0).then(overlap_s / pl.col("_span_s")).otherwise(1.0)
    keep = (overlap_s > 0) | (
        (pl.col("_span_s") == 0)
        & (pl.col("intensity_start") <= pl.col("start"))
        & (pl.col("intensity_end") > pl.col("start"))
    )
    return (
        joined.filter(keep)
        .with_columns(fraction.alias("_fraction"))
        .with_columns(
            piece_start.alias("start"),
            piece_end.alias("end"),
            *(pl.col(name) * pl.col("_fraction") for name in energy),
        )
        .drop("_p")
    )


def split_across_periods(usage: pl.DataFrame, series: pl.DataFrame) -> pl.DataFrame:
    """Split each usage row across the intensity periods it overlaps.

    Args:
        usage: rows with at least `record_id`, `zone`, `start`, `end` and the energy
            columns (`energy_kwh`, `energy_lower_kwh`, `energy_upper_kwh`).
        series: intensity periods with `SERIES_COLUMNS`; periods of one zone must not
            overlap.

    Returns:
        One row per (record, period) overlap, with the piece's `start`, `end`, its share
        of the energies and the period's intensity columns; the uncovered remainder of a
        record, if any, is one more row with the zone's embedded annual intensity.
    """
    import polars as pl

    energy = ["energy_kwh", "energy_lower_kwh", "energy_upper_kwh"]
    periods = series.select(SERIES_COLUMNS).sort("zone", "intensity_start").with_row_index("_p")
    rows = usage.with_row_index("_row").with_columns(
        _seconds(pl.col("end") - pl.col("start")).alias("_span_s")
    )

    # Most records lie inside one period: find it with an as-of join on the start.
    located = rows.sort("start").join_asof(
        periods,
        left_on="start",
        right_on="intensity_start",
        by="zone",
        strategy="backward",
        check_sortedness=False,
    )
    inside = (pl.col("intensity_end") >= pl.col("end")) & (
        (pl.col("intensity_end") > pl.col("start")) | (pl.col("_span_s") > 0)
    )
    single = located.filter(inside.fill_null(False))
    rest = rows.join(single.select("_row"), on="_row", how="anti")

    pieces = [single.drop("_row", "_span_s", "_p")]
    if rest.height:
        overlaps = _overlaps(rest, periods)
        covered = overlaps.group_by("_row").agg(pl.col("_fraction").sum().alias("_covered"))
        remainder = (
            rest.join(covered, on="_row", how="left")
            .with_columns(pl.col("_covered").fill_null(0.0))
            .filter(pl.col("_covered") < 1.0 - 1e-12)
            .with_columns(*(pl.col(name) * (1.0 - pl.col("_covered")) for name in energy))
            .drop("_covered")
            .join(fallback_series(rest["zone"].to_list()), on="zone", how="left")
        )
        pieces.append(overlaps.drop("_row", "_span_s", "_fraction"))
        pieces.append(remainder.drop("_row", "_span_s"))
    return pl.concat(pieces, how="diagonal_relaxed")


def emissions_frame(
    usage: pl.DataFrame,
    series: pl.DataFrame | None = None,
    *,
    market: Any | None = None,
) -> pl.DataFrame:
    """The emissions frame (`carbonbook.model.schema`) of usage rows.

    Args:
        usage: usage rows, for example from `usage_frame`.
        series: intensity periods; None uses each zone's embedded annual figure.
        market: contractual instruments (`carbonbook.model.market.Instruments`) for the
            market-based figure; without them it equals the location-based one.
    """
    import polars as pl

    if series is None or series.height == 0:
        series = fallback_series(usage["zone"].unique().to_list()).with_columns(
            pl.lit(None, pl.Datetime("us", "UTC")).alias("intensity_start"),
            pl.lit(None, pl.Datetime("us", "UTC")).alias("intensity_end"),
        )
        pieces = usage.join(series, on="zone", how="left")
    else:
        pieces = split_across_periods(usage, series)
    factor = pl.col("pue") * pl.col("intensity_g_per_kwh") / 1000.0
    frame = pieces.with_columns(
        (pl.col("energy_kwh") * factor).alias("co2e_location_kg"),
        (pl.col("energy_lower_kwh") * factor).alias("co2e_location_lower_kg"),
        (pl.col("energy_upper_kwh") * factor).alias("co2e_location_upper_kg"),
    )
    if market is None:
        frame = frame.with_columns(
            pl.col("co2e_location_kg").alias("co2e_market_kg"),
            pl.lit("no contractual instruments: location-based").alias("market_basis"),
        )
    else:
        frame = market.apply(frame)
    schema = emissions_schema()
    return frame.select(pl.col(name).cast(schema[name]) for name in EMISSIONS_COLUMNS).sort(
        "start", "record_id"
    )
