"""Billing emissions with carbonbook's intensity providers instead of CCF's static factors.

CCF applies one static factor per cloud region. With a provider chosen (see
`carbonbook.intensity.service`), each billing row is matched to the hourly intensity of
the grid zone its region draws from (Electricity Maps zones, as CCF maps them), and
split across hours like a notebook record. Rows of a region without a mapped zone, and
hours the provider does not cover, keep a fallback that their `intensity_note` names.
Embodied emissions do not depend on the grid and are left as they are.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from carbonbook.intensity.embedded import cloud_region_grid_zone

if TYPE_CHECKING:
    import polars as pl

    from carbonbook.intensity.chain import IntensityChain

__all__ = ["with_provider_intensity"]


def with_provider_intensity(
    frame: pl.DataFrame, *, provider: str | None = None, chain: IntensityChain | None = None
) -> pl.DataFrame:
    """Recompute the use-phase CO2e of an (ungrouped) estimate with live grid intensity.

    Args:
        frame: `carbonbook.billing.estimate` output, not grouped.
        provider: the intensity provider to ask (see `carbonbook.intensity.service`).
        chain: an intensity chain to use instead of building one.

    Returns:
        The same rows split by intensity period, with `intensity_*`, `factor_type`,
        `signal`, `co2e_location_kg` and `co2e_kg` from the provider; CCF's own figures
        stay in `ccf_co2e_kg`.
    """
    import polars as pl

    from carbonbook.intensity.service import build_chain, points_frame, warn_once
    from carbonbook.model.emissions import SERIES_COLUMNS, split_across_periods

    chain = chain or build_chain(provider)
    use = frame.filter(pl.col("usage_kind") != "embodied")
    embodied = frame.filter(pl.col("usage_kind") == "embodied")
    series = []
    spans = use.group_by("zone").agg(pl.col("start").min(), pl.col("end").max())
    for zone, start, end in spans.iter_rows():
        cloud, _, region = zone.partition(":")
        grid_zone = cloud_region_grid_zone(cloud, region)
        if grid_zone is None or not chain.providers:
            continue
        points = chain.series(grid_zone, start, max(end, start + timedelta(minutes=1)))
        series.append(points_frame(points, zone))
    warn_once(chain, stacklevel=3)
    if not series:
        return frame
    intensity = pl.concat(series)
    # Rows without use-phase energy have nothing to re-grid.
    covered = use.filter(
        pl.col("zone").is_in(intensity["zone"].unique().implode()) & (pl.col("energy_kwh") > 0)
    )
    untouched = use.join(
        covered.select("record_id", "usage_kind"), on=["record_id", "usage_kind"], how="anti"
    )
    # The provider's intensity columns replace CCF's.
    columns = list(SERIES_COLUMNS[1:])
    rows = covered.drop([c for c in columns if c in covered.columns]).with_columns(
        pl.col("energy_kwh").alias("_row_energy")
    )
    pieces = split_across_periods(rows, intensity.select("zone", *columns))
    share = pl.col("energy_kwh") / pl.col("_row_energy")
    # The pieces of a row share its other additive figures as they share its energy.
    additive = [c for c in _ADDITIVE if c in pieces.columns]
    grams = pl.col("energy_kwh") * pl.col("pue") * pl.col("intensity_g_per_kwh")
    pieces = pieces.with_columns(*(pl.col(c) * share for c in additive)).with_columns(
        (grams / 1000.0).alias("co2e_location_kg"),
        (grams / 1000.0).alias("co2e_kg"),
    )
    return pl.concat(
        [pieces.select(frame.columns), untouched, embodied], how="vertical_relaxed"
    ).sort("start", "record_id")


_ADDITIVE = ("cost", "ccf_kwh", "ccf_co2e_kg", "embodied_co2e_kg", "usage_amount", "line_items")
