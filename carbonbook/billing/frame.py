"""From classified billing lines to the emissions frame: CCF's arithmetic, vectorised.

A provider module sums the line items (`carbonbook.billing.source`) and classifies each
distinct kind of row (per-usage-unit coefficients, at the meter). This module multiplies
them out, applies PUE and CCF's grid factors, scales unknown usage by known usage, and
lays the result out as the emissions schema (`carbonbook.model.schema`) plus the billing
columns.

Energy columns:
- `energy_kwh` is at the meter, before PUE (the schema's convention); 0 for embodied rows.
- `ccf_kwh` is CCF's own kWh figure: PUE and replication included, and for embodied rows
  CCF's "kWh" of embodied emissions (tonnes / grid factor), which CCF adds to its total.
- `co2e_kg` is use phase, `embodied_co2e_kg` embodied; their sum is `ccf_co2e_kg`, CCF's
  CO2e. Unknown rows split CCF's ratio into the use and embodied parts it was made of.

`cost` is carried once per billing line (on its compute, storage, network or unknown
row, or on a line billed as memory or GPU on its own; 0 on the GPU, memory and embodied
rows derived from a compute line) so that summing `cost` gives the bill.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import polars as pl

from carbonbook.billing import ccf
from carbonbook.billing.classification import Classification
from carbonbook.model.schema import EMISSIONS_COLUMNS, emissions_schema

__all__ = [
    "BILLING_COLUMNS",
    "CLASS_FIELDS",
    "CLASS_SCHEMA",
    "UNCLASSIFIED_COLUMNS",
    "class_row",
    "estimate_frame",
    "region_table",
]

logger = logging.getLogger(__name__)

BILLING_COLUMNS: tuple[str, ...] = (
    "co2e_kg",
    "embodied_co2e_kg",
    "cost",
    "ccf_kwh",
    "ccf_co2e_kg",
    "coefficients",
    "usage_type",
    "usage_unit",
    "usage_amount",
    "line_items",
)
UNCLASSIFIED_COLUMNS: tuple[str, ...] = (
    "provider",
    "reason",
    "estimated",
    "line_item_type",
    "service",
    "usage_type",
    "usage_unit",
    "region",
    "rows",
    "usage_amount",
    "cost",
    "example",
)
_KEYS = ["service", "usage_type", "unit", "_vcpu_key"]

# What a provider's classification gives per distinct key; energies in kWh per usage unit
# at the meter (before PUE), embodied in tonnes CO2e per usage unit.
_TEXT, _REAL, _FLAG = pl.String, pl.Float64, pl.Boolean
CLASS_FIELDS: dict[str, type[pl.DataType]] = {
    "kind": _TEXT,
    "reason": _TEXT,
    "usage_scale": _REAL,
    "instance_type": _TEXT,
    "cpu_kwh_per_usage": _REAL,
    "gpu_kwh_per_usage": _REAL,
    "memory_kwh_per_usage": _REAL,
    "storage_kwh_per_tbh": _REAL,
    "tb_per_usage": _REAL,
    "gb_month": _FLAG,
    "network_kwh_per_usage": _REAL,
    "embodied_t_per_usage": _REAL,
    "medium": _TEXT,
    "replication": _REAL,
    "coefficients": _TEXT,
}
CLASS_SCHEMA: dict[str, type[pl.DataType]] = {
    "service": _TEXT,
    "usage_type": _TEXT,
    "unit": _TEXT,
    "_vcpu_key": _REAL,
    "ccf_unit": _TEXT,
    **CLASS_FIELDS,
}


def class_row(found: Classification, **keys: object) -> dict[str, object]:
    """One row of a provider's classification table: the figures of `found`, CCF's unit,
    and the key columns it was classified under."""
    row: dict[str, object] = {name: getattr(found, name) for name in CLASS_FIELDS}
    row.update(keys, ccf_unit=found.unit)
    return row


# Kinds whose energy counts as known usage; `memory` and `gpu` are lines of their own
# (GCP bills RAM and GPUs as separate SKUs).
_KNOWN = ("compute", "storage", "network", "memory", "gpu")


def region_table(provider: str, regions: Sequence[str]) -> pl.DataFrame:
    """CCF's grid factor (t CO2e/kWh), the region key it came from, and PUE per region."""
    table = ccf.tables()
    rows = [(r, *table.grid_factor(provider, r), table.pue(provider, r)) for r in set(regions)]
    return pl.DataFrame(
        rows,
        schema={
            "region": pl.String,
            "grid_t": pl.Float64,
            "grid_key": pl.String,
            "pue": pl.Float64,
        },
        orient="row",
    )


def estimate_frame(
    rows: pl.DataFrame,
    classes: pl.DataFrame,
    *,
    provider: str,
    ratio_by: str,
    unknown_by_service: bool,
    tags: Sequence[str] = (),
    ratio_embodied: bool = True,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Multiply summed lines by their classification and lay out the emissions frame.

    Args:
        rows: summed line items (`carbonbook.billing.source.Usage.rows`).
        classes: one row per distinct (service, usage_type, unit, vcpu) with the fields of
            a provider's classification (`kind`, `ccf_unit`, per-usage coefficients ...).
        provider: `aws`, `gcp` or `azure`.
        ratio_by: the line column unknown usage is scaled by (`cost` or `usage_amount`).
        unknown_by_service: scale by the same service and unit first, then the unit.
        tags: the tag keys whose `tag:<key>` columns are carried along.
        ratio_embodied: whether known rows' embodied "kWh" counts in the unknown ratio
            (CCF's AWS and Azure code adds it; its GCP code does not).

    Returns:
        (the emissions frame, the lines that were not estimated or used a fallback).
    """
    keys = [*_KEYS, "machine_type"] if "machine_type" in classes.columns else _KEYS
    lines = (
        rows.with_columns(pl.col("vcpu").fill_null(-1.0).alias("_vcpu_key"))
        .join(classes, on=keys, how="left")
        .join(region_table(provider, rows["region"].unique().to_list()), on="region")
    )
    u = pl.col("usage_amount") * pl.col("usage_scale")
    if "per_line" in lines.columns:
        # A kind CCF sizes per billing line, ignoring the amount (Azure managed disks).
        u = pl.when(pl.col("per_line")).then(pl.col("line_items").cast(pl.Float64)).otherwise(u)
    days = pl.col("start").dt.month_end().dt.day().cast(pl.Float64)
    tb_hours = (
        u * pl.col("tb_per_usage") * pl.when(pl.col("gb_month")).then(days).otherwise(1.0)
    )
    lines = lines.with_columns(
        (u * pl.col("cpu_kwh_per_usage")).alias("_cpu"),
        (u * pl.col("gpu_kwh_per_usage")).alias("_gpu"),
        (u * pl.col("memory_kwh_per_usage")).alias("_memory"),
        (tb_hours * pl.col("storage_kwh_per_tbh")).alias("_storage"),
        (u * pl.col("network_kwh_per_usage")).alias("_network"),
        (u * pl.col("embodied_t_per_usage")).alias("_embodied_t"),
        # A provider that rescales the amount (GCP's mCPU) scales its ratio basis too.
        (
            pl.col(ratio_by) * (pl.col("usage_scale") if ratio_by == "usage_amount" else 1.0)
        ).alias("_basis"),
    )
    use = pl.sum_horizontal("_cpu", "_gpu", "_memory", "_storage", "_network") * pl.col("pue")
    lines = lines.with_columns(
        use.alias("_use_ccf"), (pl.col("_embodied_t") / pl.col("grid_t")).alias("_emb_ccf")
    )
    lines = _scale_unknown(lines, unknown_by_service, ratio_embodied)

    parts = [
        _part(lines, "compute", "compute", "_cpu", with_cost=True),
        _part(lines, "lambda", "compute", "_cpu", with_cost=True, method="ccf:compute:lambda"),
        _part(
            lines.filter(pl.col("gpu_kwh_per_usage") > 0, pl.col("kind") != "gpu"),
            None,
            "compute",
            "_gpu",
            method="ccf:compute:gpu",
        ),
        _part(lines, "gpu", "compute", "_gpu", with_cost=True, method="ccf:compute:gpu"),
        _part(
            lines.filter(pl.col("memory_kwh_per_usage") > 0, pl.col("kind") != "memory"),
            None,
            "memory",
            "_memory",
        ),
        _part(lines, "memory", "memory", "_memory", with_cost=True),
        _part(lines, "storage", "storage", "_storage", with_cost=True),
        _part(lines, "network", "network", "_network", with_cost=True),
        _embodied(lines.filter(pl.col("embodied_t_per_usage") > 0)),
        _unknown(lines.filter(pl.col("kind") == "unknown", pl.col("_ratio_ok"))),
    ]
    long = pl.concat(parts, how="vertical")
    return _layout(long, provider, tags), _unclassified(lines, provider)


def _scale_unknown(lines: pl.DataFrame, by_service: bool, embodied: bool) -> pl.DataFrame:
    known = lines.filter(pl.col("kind").is_in(_KNOWN))
    sums = [
        pl.col("_use_ccf").sum().alias("_t_use"),
        (pl.col("_emb_ccf").sum() if embodied else pl.lit(0.0)).alias("_t_emb"),
        pl.col("_basis").sum().alias("_t_basis"),
    ]
    by_unit = known.group_by("ccf_unit").agg(sums)
    scaled = lines.join(by_unit, on="ccf_unit", how="left")
    scaled = scaled.with_columns(pl.lit("unit").alias("_ratio_basis"))
    if by_service:
        by_pair = known.group_by("service", "ccf_unit").agg([s.name.suffix("_s") for s in sums])
        scaled = scaled.join(by_pair, on=["service", "ccf_unit"], how="left")
        has_pair = pl.col("_t_basis_s").is_not_null() & (pl.col("_t_basis_s") != 0)
        scaled = scaled.with_columns(
            [
                pl.when(has_pair).then(pl.col(f"{c}_s")).otherwise(pl.col(c)).alias(c)
                for c in ("_t_use", "_t_emb", "_t_basis")
            ]
            + [
                pl.when(has_pair)
                .then(pl.lit("service and unit"))
                .otherwise(pl.col("_ratio_basis"))
                .alias("_ratio_basis")
            ]
        )
    ok = pl.col("_t_basis").is_not_null() & (pl.col("_t_basis") != 0)
    return scaled.with_columns(
        ok.alias("_ratio_ok"),
        (pl.col("_t_use") / pl.col("_t_basis") * pl.col("_basis")).alias("_unknown_use"),
        (pl.col("_t_emb") / pl.col("_t_basis") * pl.col("_basis")).alias("_unknown_emb"),
    )


def _part(
    lines: pl.DataFrame,
    kind: str | None,
    usage_kind: str,
    meter: str,
    *,
    with_cost: bool = False,
    method: str | None = None,
) -> pl.DataFrame:
    if kind is not None:
        lines = lines.filter(pl.col("kind") == kind)
    if method is not None:
        method_expr = pl.lit(method)
    elif usage_kind == "storage":
        method_expr = pl.format("ccf:storage:{}", pl.col("medium"))
    else:
        method_expr = pl.lit(f"ccf:{usage_kind}")
    ccf_kwh = pl.col(meter) * pl.col("pue")
    return _common(
        lines,
        usage_kind=usage_kind,
        method=method_expr,
        energy=pl.col(meter),
        ccf_kwh=ccf_kwh,
        co2e_kg=ccf_kwh * pl.col("grid_t") * 1000,
        embodied_kg=pl.lit(0.0),
        with_cost=with_cost,
    )


def _embodied(lines: pl.DataFrame) -> pl.DataFrame:
    return _common(
        lines,
        usage_kind="embodied",
        method=pl.lit("ccf:embodied"),
        energy=pl.lit(0.0),
        ccf_kwh=pl.col("_emb_ccf"),
        co2e_kg=pl.lit(0.0),
        embodied_kg=pl.col("_embodied_t") * 1000,
        with_cost=False,
    )


def _unknown(lines: pl.DataFrame) -> pl.DataFrame:
    ratio = pl.format(
        "kwh_per_{}={} from {} '{}'",
        pl.lit("basis"),
        ((pl.col("_t_use") + pl.col("_t_emb")) / pl.col("_t_basis")).round_sig_figs(10),
        pl.col("_ratio_basis"),
        pl.col("ccf_unit"),
    )
    lines = lines.with_columns(ratio.alias("coefficients"))
    return _common(
        lines,
        usage_kind="unknown",
        method=pl.lit("ccf:unknown"),
        energy=pl.col("_unknown_use") / pl.col("pue"),
        ccf_kwh=pl.col("_unknown_use") + pl.col("_unknown_emb"),
        co2e_kg=pl.col("_unknown_use") * pl.col("grid_t") * 1000,
        embodied_kg=pl.col("_unknown_emb") * pl.col("grid_t") * 1000,
        with_cost=True,
    )


def _common(
    lines: pl.DataFrame,
    *,
    usage_kind: str,
    method: pl.Expr,
    energy: pl.Expr,
    ccf_kwh: pl.Expr,
    co2e_kg: pl.Expr,
    embodied_kg: pl.Expr,
    with_cost: bool,
) -> pl.DataFrame:
    coefficients = pl.format(
        "{} pue={} grid={}:{} t/kWh",
        pl.col("coefficients").fill_null(""),
        pl.col("pue"),
        pl.col("grid_key"),
        pl.col("grid_t"),
    ).str.strip_chars()
    return lines.select(
        pl.exclude("coefficients", "method"),
        pl.lit(usage_kind).alias("usage_kind"),
        method.alias("method"),
        energy.cast(pl.Float64).alias("energy_kwh"),
        ccf_kwh.cast(pl.Float64).alias("ccf_kwh"),
        co2e_kg.cast(pl.Float64).alias("co2e_kg"),
        embodied_kg.cast(pl.Float64).alias("embodied_co2e_kg"),
        (pl.col("cost") if with_cost else pl.lit(0.0)).cast(pl.Float64).alias("_row_cost"),
        coefficients.alias("coefficients"),
    )


def _layout(long: pl.DataFrame, provider: str, tags: Sequence[str]) -> pl.DataFrame:
    schema = emissions_schema()
    region = pl.when(pl.col("region") != "").then(pl.col("region")).otherwise(pl.lit("unknown"))
    fallback = pl.col("grid_key") != pl.col("region")
    values: dict[str, pl.Expr] = {
        "source": pl.lit("billing"),
        "record_id": pl.format(
            "{}:{}:{}:{}:{}:{}",
            pl.lit(provider),
            pl.col("account"),
            pl.col("region"),
            pl.col("service"),
            pl.col("usage_type"),
            pl.col("start").dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
        ),
        "zone": pl.format("{}:{}", pl.lit(provider), region),
        "provider": pl.lit(provider),
        "energy_kind": pl.when(pl.col("usage_kind") == "embodied")
        .then(pl.lit("embodied"))
        .otherwise(pl.lit("it")),
        "intensity_g_per_kwh": pl.col("grid_t") * 1e6,
        "intensity_provider": pl.lit("ccf"),
        "intensity_zone": pl.col("grid_key"),
        "signal": pl.lit("average"),
        # CCF's factors are generation emission rates (eGRID, EEA and similar), which count
        # combustion only; the embedded cloud-region figures are labelled the same way.
        "factor_type": pl.lit("direct"),
        "intensity_estimated": pl.lit(False),
        "intensity_note": pl.when(fallback)
        .then(pl.format("region '{}' has no CCF grid factor; CCF's Unknown used", region))
        .otherwise(pl.lit("CCF static grid factor")),
        "co2e_location_kg": pl.col("energy_kwh") * pl.col("pue") * pl.col("grid_t") * 1000,
        "cost": pl.col("_row_cost"),
        "ccf_co2e_kg": pl.col("co2e_kg") + pl.col("embodied_co2e_kg"),
        "usage_unit": pl.col("unit"),
    }
    present = set(long.columns)
    exprs = []
    for name in EMISSIONS_COLUMNS + BILLING_COLUMNS:
        if name in values:
            expr = values[name]
        elif name in present:
            expr = pl.col(name)
        else:
            expr = pl.lit(None)
        dtype = schema.get(name)
        exprs.append((expr.cast(dtype) if dtype is not None else expr).alias(name))
    exprs.extend(pl.col(f"tag:{key}") for key in tags)
    return long.select(exprs).sort("start", "account", "service", "usage_type", "usage_kind")


def _unclassified(lines: pl.DataFrame, provider: str) -> pl.DataFrame:
    skipped = lines.filter(pl.col("kind") == "skip").with_columns(
        pl.col("reason"), pl.lit(False).alias("estimated")
    )
    no_ratio = lines.filter(pl.col("kind") == "unknown", ~pl.col("_ratio_ok")).with_columns(
        pl.format(
            "unknown usage with no known '{}' usage to scale from", pl.col("ccf_unit")
        ).alias("reason"),
        pl.lit(False).alias("estimated"),
    )
    estimated = (pl.col("kind") != "skip") & ~(
        (pl.col("kind") == "unknown") & ~pl.col("_ratio_ok")
    )
    fallback = lines.filter(estimated, pl.col("grid_key") != pl.col("region")).with_columns(
        pl.format(
            "region '{}' has no CCF grid factor; CCF's Unknown factor used", pl.col("region")
        ).alias("reason"),
        pl.lit(True).alias("estimated"),
    )
    merged = pl.concat(
        [frame.select(_SUMMARY_INPUT) for frame in (skipped, no_ratio, fallback)]
    )
    return (
        merged.group_by("reason", "estimated", "service", "usage_type", "unit", "region")
        .agg(
            pl.col("line_items").sum().alias("rows"),
            pl.col("usage_amount").sum(),
            pl.col("cost").sum(),
        )
        .select(
            pl.lit(provider).alias("provider"),
            "reason",
            "estimated",
            pl.lit(None, pl.String).alias("line_item_type"),
            "service",
            "usage_type",
            pl.col("unit").alias("usage_unit"),
            "region",
            pl.col("rows").cast(pl.Int64),
            "usage_amount",
            "cost",
            pl.lit(None, pl.String).alias("example"),
        )
    )


_SUMMARY_INPUT = [
    "reason",
    "estimated",
    "service",
    "usage_type",
    "unit",
    "region",
    "line_items",
    "usage_amount",
    "cost",
]
