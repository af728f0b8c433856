"""What the same energy would emit elsewhere or later: tables a user can act on.

`place_shift` compares zones at their embedded annual intensities (or at a series, when
given). `time_shift` slides a job of a given duration over a forecast series and ranks
the start times by the CO2e the job would emit, against starting now:

    start (UTC)         g/kWh   co2e_kg   change   advice
    2026-12-04 03:00    142.0   0.0142    -38%     run at 03:00 UTC: -38%
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from carbonbook.intensity.embedded import embedded_intensity
from carbonbook.model.emissions import emissions_frame
from carbonbook.model.schema import emissions_schema

if TYPE_CHECKING:
    import polars as pl

__all__ = ["place_shift", "time_shift"]


def _change_pct(value: float, reference: float) -> float:
    return (value - reference) / reference * 100.0 if reference > 0 else 0.0


def place_shift(
    energy_kwh: float, zone: str, alternatives: Sequence[str], *, pue: float = 1.0
) -> pl.DataFrame:
    """The CO2e of `energy_kwh` in `zone` and in each alternative zone.

    Uses the embedded annual intensities, so every zone is compared on the same basis
    (their factor types are shown: Ember's country figures are life-cycle, the cloud
    regions' are direct).

    Returns:
        Columns `zone`, `intensity_g_per_kwh`, `factor_type`, `basis`, `co2e_kg`,
        `change_pct` (against `zone`), sorted by CO2e.
    """
    import polars as pl

    reference = embedded_intensity(zone).g_per_kwh
    rows = []
    for candidate in [zone, *[z for z in alternatives if z != zone]]:
        found = embedded_intensity(candidate)
        co2e_kg = energy_kwh * pue * found.g_per_kwh / 1000.0
        rows.append(
            (
                candidate,
                found.g_per_kwh,
                found.factor_type,
                found.basis,
                co2e_kg,
                _change_pct(found.g_per_kwh, reference),
            )
        )
    return pl.DataFrame(
        rows,
        schema=["zone", "intensity_g_per_kwh", "factor_type", "basis", "co2e_kg", "change_pct"],
        orient="row",
    ).sort("co2e_kg")


def _window_rows(zone: str, starts: list[datetime], duration: timedelta) -> pl.DataFrame:
    import polars as pl

    schema = emissions_schema()
    count = len(starts)
    return pl.DataFrame(
        {
            "record_id": [str(i) for i in range(count)],
            "zone": [zone] * count,
            "start": starts,
            "end": [s + duration for s in starts],
            "energy_kwh": [1.0] * count,
            "energy_lower_kwh": [1.0] * count,
            "energy_upper_kwh": [1.0] * count,
            "pue": [1.0] * count,
        }
    ).with_columns(
        pl.col("start", "end").cast(pl.Datetime("us", "UTC")),
        *(
            pl.lit(value, schema[name]).alias(name)
            for name, value in (
                ("source", "forecast"),
                ("method", "estimated"),
                ("energy_kind", "it"),
                ("notebook", None),
                ("label", None),
                ("execution_count", None),
                ("provider", None),
                ("account", None),
                ("service", None),
                ("region", None),
                ("usage_kind", None),
            )
        ),
    )


def time_shift(
    energy_kwh: float,
    duration: timedelta,
    forecast: pl.DataFrame,
    *,
    now: datetime,
    best: int = 3,
    pue: float = 1.0,
) -> pl.DataFrame:
    """The best times to start a job of `duration` within a forecast, against now.

    Args:
        energy_kwh: the job's energy.
        duration: how long it runs.
        forecast: one zone's intensity periods (`SERIES_COLUMNS`), such as a provider's
            forecast for the next hours.
        now: the time the job would otherwise start (UTC).
        best: how many start times to list.
        pue: the PUE to apply.

    Returns:
        Columns `start`, `intensity_g_per_kwh` (time-weighted over the run), `co2e_kg`,
        `change_pct` and `advice`; the first row is starting now, then the best starts.
    """
    import polars as pl

    if forecast.height == 0:
        raise ValueError("time_shift needs a forecast with at least one period")
    zone = forecast["zone"][0]
    horizon_end = forecast["intensity_end"].max()
    starts = [now] + [
        s
        for s in forecast["intensity_start"].to_list()
        if s > now and s + duration <= horizon_end
    ]
    per_kwh = (
        emissions_frame(_window_rows(zone, starts, duration), forecast)
        .group_by("record_id")
        .agg(pl.col("co2e_location_kg").sum().alias("kg_per_kwh"))
        .with_columns(pl.col("record_id").cast(pl.Int64).alias("_index"))
        .sort("_index")
    )
    grams = [value * 1000.0 for value in per_kwh["kg_per_kwh"].to_list()]
    reference = grams[0]
    rows = []
    for start, g_per_kwh in zip(starts, grams, strict=True):
        change = _change_pct(g_per_kwh, reference)
        when = "now" if start == now else f"at {start:%H:%M} UTC"
        advice = f"run {when}: {change:+.0f}%" if start != now else "run now"
        rows.append((start, g_per_kwh, energy_kwh * pue * g_per_kwh / 1000.0, change, advice))
    frame = pl.DataFrame(
        rows,
        schema=["start", "intensity_g_per_kwh", "co2e_kg", "change_pct", "advice"],
        orient="row",
    )
    return pl.concat([frame.head(1), frame.slice(1).sort("co2e_kg").head(best)])
