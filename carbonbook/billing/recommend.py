"""Region-switch recommendations: where the same work would emit less.

For each provider, service and region of an estimate, the same provider's regions with a
lower CCF grid factor are ranked by the use-phase CO2e the same energy would emit there
("kWh-neutral": the meter energy is assumed unchanged; each region's own PUE applies).
Embodied emissions do not depend on the region and are left out. Moving a workload can
change latency, price and data-residency obligations: these are candidates, not advice.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from carbonbook.billing.ccf import UNKNOWN, tables

if TYPE_CHECKING:
    import polars as pl

__all__ = ["recommendations"]


def _candidates(provider: str) -> list[tuple[str, float, float]]:
    """(region, t CO2e/kWh, PUE) of every region CCF has a factor for, cleanest first."""
    loaded = tables()
    found = [
        (region, factor, loaded.pue(provider, region))
        for (name, region), factor in loaded.grid.items()
        if name == provider and region != UNKNOWN and factor > 0
    ]
    return sorted(found, key=lambda row: row[1] * row[2])


def recommendations(frame: pl.DataFrame, *, best: int = 3) -> pl.DataFrame:
    """The cleaner regions for each service and region of an estimate.

    Args:
        frame: `carbonbook.billing.estimate` output (grouped or not) with `provider`,
            `service`, `region`, `energy_kwh` and `co2e_kg` columns.
        best: how many candidate regions to list per service and region.

    Returns:
        Columns `provider`, `service`, `region`, `energy_kwh`, `co2e_kg` (now),
        `candidate_region`, `candidate_co2e_kg`, `saving_kg` and `saving_pct`, largest
        saving first; empty when no region is cleaner.
    """
    import polars as pl

    needed = {"provider", "service", "region", "energy_kwh", "co2e_kg"}
    missing = needed - set(frame.columns)
    if missing:
        from carbonbook.billing import BillingError

        raise BillingError(
            f"recommendations need the columns {sorted(missing)}; pass an estimate that "
            "is not grouped, or grouped by service and region"
        )
    current = (
        frame.filter(pl.col("energy_kwh") > 0)
        .group_by("provider", "service", "region")
        .agg(pl.col("energy_kwh").sum(), pl.col("co2e_kg").sum())
    )
    rows = []
    for provider, service, region, energy_kwh, co2e_kg in current.iter_rows():
        options = 0
        for candidate, factor, pue in _candidates(provider):
            if candidate == region or options >= best:
                continue
            candidate_kg = energy_kwh * pue * factor * 1000.0
            if candidate_kg >= co2e_kg:
                break
            options += 1
            rows.append(
                (
                    provider,
                    service,
                    region,
                    energy_kwh,
                    co2e_kg,
                    candidate,
                    candidate_kg,
                    co2e_kg - candidate_kg,
                    (co2e_kg - candidate_kg) / co2e_kg * 100.0 if co2e_kg else 0.0,
                )
            )
    schema = {
        "provider": pl.String,
        "service": pl.String,
        "region": pl.String,
        "energy_kwh": pl.Float64,
        "co2e_kg": pl.Float64,
        "candidate_region": pl.String,
        "candidate_co2e_kg": pl.Float64,
        "saving_kg": pl.Float64,
        "saving_pct": pl.Float64,
    }
    result = pl.DataFrame(rows, schema=schema, orient="row")
    return result.sort("saving_kg", descending=True)
