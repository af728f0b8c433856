"""Joining a million cell records with a year of hourly intensity for 50 zones.

Run: python bench/bench_model.py [--records 1000000] [--zones 50]

Side by side, on the same frames: carbonbook's `split_across_periods` (an as-of join that
also splits the records spanning several hours so no energy is lost) and a bare polars
`join_asof` of the records' start times on the series (which assigns each record to one
hour only).
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime, timedelta

import polars as pl

from carbonbook.model.emissions import split_across_periods

T0 = datetime(2026, 1, 1, tzinfo=UTC)
HOURS = 365 * 24
WHEN = pl.Datetime("us", "UTC")


def make_series(zones: list[str]) -> pl.DataFrame:
    hours = pl.datetime_range(
        T0, T0 + timedelta(hours=HOURS - 1), "1h", eager=True, time_zone="UTC"
    )
    frames = []
    for index, zone in enumerate(zones):
        frames.append(
            pl.DataFrame({"intensity_start": hours}).with_columns(
                pl.lit(zone).alias("zone"),
                (pl.col("intensity_start") + pl.duration(hours=1)).alias("intensity_end"),
                (100.0 + 10 * index + 50 * (pl.int_range(pl.len()) % 24 / 24)).alias(
                    "intensity_g_per_kwh"
                ),
                pl.lit("bench").alias("intensity_provider"),
                pl.lit(zone).alias("intensity_zone"),
                pl.lit("lifecycle").alias("factor_type"),
                pl.lit("average").alias("signal"),
                pl.lit(False).alias("intensity_estimated"),
                pl.lit("").alias("intensity_note"),
            )
        )
    return pl.concat(frames).with_columns(pl.col("intensity_start", "intensity_end").cast(WHEN))


def make_records(count: int, zones: list[str]) -> pl.DataFrame:
    index = pl.int_range(count, eager=True)
    # Cells start anywhere in the year and last up to 5 s; one in 200 lasts 2 hours more,
    # so some span several hours.
    offsets_us = (index * 7_919_993_117) % (HOURS * 3600 * 1_000_000)
    long_us = ((index % 200) == 0).cast(pl.Int64) * 7_200_000_000
    durations_us = (index * 104_729) % 5_000_000 + long_us
    start = pl.lit(T0).cast(WHEN) + pl.duration(microseconds=pl.col("offset_us"))
    return (
        pl.DataFrame(
            {
                "record_id": index.cast(pl.String),
                "zone": [zones[i % len(zones)] for i in range(count)],
                "offset_us": offsets_us,
                "duration_us": durations_us,
            }
        )
        .with_columns(start.alias("start"))
        .with_columns(
            (pl.col("start") + pl.duration(microseconds=pl.col("duration_us"))).alias("end"),
            (pl.col("duration_us") / 1e6 * 50.0 / 3.6e6).alias("energy_kwh"),
        )
        .with_columns(
            pl.col("energy_kwh").alias("energy_lower_kwh"),
            pl.col("energy_kwh").alias("energy_upper_kwh"),
        )
        .drop("offset_us", "duration_us")
    )


def timed(function: object) -> tuple[float, pl.DataFrame]:
    start = time.perf_counter()
    result = function()  # type: ignore[operator]
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--zones", type=int, default=50)
    args = parser.parse_args()

    zones = [f"Z{index:02d}" for index in range(args.zones)]
    series = make_series(zones)
    records = make_records(args.records, zones)

    bare_s, bare = timed(
        lambda: records.sort("start").join_asof(
            series.sort("zone", "intensity_start"),
            left_on="start",
            right_on="intensity_start",
            by="zone",
            check_sortedness=False,
        )
    )
    ours_s, ours = timed(lambda: split_across_periods(records, series))
    lost = abs(ours["energy_kwh"].sum() - records["energy_kwh"].sum())

    print(
        f"{args.records:,} records x {series.height:,} hourly intensities ({args.zones} zones)"
    )
    print(f"{'join':<46} {'seconds':>8} {'rows out':>10}")
    print(
        f"{'bare polars join_asof (one hour per record)':<46} {bare_s:>8.3f} {bare.height:>10,}"
    )
    print(f"{'carbonbook split_across_periods':<46} {ours_s:>8.3f} {ours.height:>10,}")
    print(f"ratio {ours_s / bare_s:.2f}x (goal within 3x); carbonbook under 2 s: {ours_s < 2}")
    energy_in, energy_out = records["energy_kwh"].sum(), ours["energy_kwh"].sum()
    print(f"energy in {energy_in:.6f} kWh, out {energy_out:.6f} kWh, difference {lost:.2e}")


if __name__ == "__main__":
    main()
