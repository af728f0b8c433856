"""The emissions frame: one schema for notebook records and cloud billing rows alike.

Every row is some energy used somewhere over a period, with the intensity applied to it
and where that intensity came from. A notebook cell that spans several intensity periods
becomes several rows, one per period, whose energies add up to the cell's.

| column | type | meaning |
| --- | --- | --- |
| `source` | str | `notebook` or `billing` |
| `record_id` | str | the ledger record (or billing line) the row comes from |
| `start`, `end` | datetime (UTC) | the part of the record this row covers |
| `zone` | str | the grid zone the energy was drawn from |
| `notebook`, `label`, `execution_count` | str, str, int | what ran (notebook rows) |
| `provider`, `account`, `service`, `region`, `usage_kind` | str | what ran (billing rows) |
| `energy_kwh` | f64 | energy at the meter (use phase, before PUE) |
| `energy_lower_kwh`, `energy_upper_kwh` | f64 | its bounds |
| `energy_kind` | str | `it` for measured or estimated IT energy |
| `method` | str | `measured`, `estimated` or `mixed` |
| `pue` | f64 | power usage effectiveness applied |
| `intensity_g_per_kwh` | f64 | grid intensity applied |
| `intensity_provider` | str | `electricitymaps`, `watttime`, `ukgrid`, `embedded` ... |
| `intensity_zone` | str | the zone the provider answered for |
| `intensity_start`, `intensity_end` | datetime (UTC) | the intensity's own period |
| `factor_type` | str | `lifecycle` or `direct` |
| `signal` | str | `average` or `marginal` |
| `intensity_estimated` | bool | the provider marked the value estimated or forecast |
| `intensity_note` | str | a fallback or substitution, in words, or empty |
| `co2e_location_kg` | f64 | Scope 2 location-based: energy x PUE x intensity |
| `co2e_location_lower_kg`, `co2e_location_upper_kg` | f64 | from the energy bounds |
| `co2e_market_kg` | f64 | Scope 2 market-based (see `carbonbook.model.market`) |
| `market_basis` | str | which instrument or factor the market-based figure used |
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import polars as pl

__all__ = ["EMISSIONS_COLUMNS", "emissions_schema"]

EMISSIONS_COLUMNS: tuple[str, ...] = (
    "source",
    "record_id",
    "start",
    "end",
    "zone",
    "notebook",
    "label",
    "execution_count",
    "provider",
    "account",
    "service",
    "region",
    "usage_kind",
    "energy_kwh",
    "energy_lower_kwh",
    "energy_upper_kwh",
    "energy_kind",
    "method",
    "pue",
    "intensity_g_per_kwh",
    "intensity_provider",
    "intensity_zone",
    "intensity_start",
    "intensity_end",
    "factor_type",
    "signal",
    "intensity_estimated",
    "intensity_note",
    "co2e_location_kg",
    "co2e_location_lower_kg",
    "co2e_location_upper_kg",
    "co2e_market_kg",
    "market_basis",
)


def emissions_schema() -> dict[str, pl.DataType]:
    """The polars types of `EMISSIONS_COLUMNS`, in order."""
    import polars as pl

    when = pl.Datetime("us", "UTC")
    text = pl.String()
    real = pl.Float64()
    types: dict[str, pl.DataType] = {}
    for name in EMISSIONS_COLUMNS:
        if name in ("start", "end", "intensity_start", "intensity_end"):
            types[name] = when
        elif name == "execution_count":
            types[name] = pl.Int64()
        elif name == "intensity_estimated":
            types[name] = pl.Boolean()
        elif name.endswith(("_kwh", "_kg")) or name == "pue":
            types[name] = real
        else:
            types[name] = text
    return types
