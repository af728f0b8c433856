"""Cloud billing exports to energy and CO2e, the way Cloud Carbon Footprint computes them.

`estimate(source)` reads an export (a file, a folder, a glob, or a list of them), works
out which provider and convention wrote it from the header, and returns one row per
billing line and usage kind in the emissions schema (`carbonbook.model.schema`) plus the
billing columns `co2e_kg` (use phase), `embodied_co2e_kg`, `cost`, `ccf_kwh`,
`ccf_co2e_kg`, `coefficients`, `usage_type`, `usage_unit`, `usage_amount`, `line_items`.
`unclassified(source)` lists what was not estimated, or was estimated with a fallback,
with row counts and cost, so that nothing is dropped silently. `run` returns both.

By default the figures are CCF's (commit b7a049c of its application code), quirks
included. Corrections that carbonbook offers for some quirks are opt-in, by name:

- `u_family_embodied`: for the AWS `u-*` families CCF reads the server's embodied
  emissions from the memory column (6144 t for u-6tb1.metal instead of 35.76 t); use the
  embodied column instead.
- `unknown_same_service`: CCF's AWS code scales unknown usage by the kWh per cost of the
  same pricing unit across all services (it never hands the service to its estimator);
  use the same service and unit first, then the unit.

Providers: `aws` (Cost and Usage Reports), `gcp` (the BigQuery billing export) and
`azure` (Cost Management exports). A provider plugs in as one module exposing `PROVIDER`,
`CONVENTIONS`, `LINE_ITEM_TYPES`, `RATIO_BY`, optionally `RATIO_EMBODIED` (default True)
and `prepare(rows)` (rewrites the summed lines before estimating, e.g. region names),
`detect(columns)` and `classes(rows, corrections)` (see `aws`).
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol, cast, get_args

import polars as pl

from carbonbook.billing.frame import UNCLASSIFIED_COLUMNS, estimate_frame
from carbonbook.billing.recommend import recommendations
from carbonbook.billing.regrid import with_provider_intensity
from carbonbook.billing.source import (
    BillingError,
    Convention,
    columns_of,
    read_usage,
    resolve_files,
)

__all__ = [
    "CORRECTIONS",
    "BillingError",
    "BillingResult",
    "Correction",
    "estimate",
    "recommendations",
    "run",
    "unclassified",
    "with_provider_intensity",
]

logger = logging.getLogger(__name__)

Correction = Literal["u_family_embodied", "unknown_same_service"]
CORRECTIONS: tuple[str, ...] = get_args(Correction)
Source = str | Path | Sequence[str | Path]

_PROVIDERS = {
    "aws": "carbonbook.billing.aws",
    "gcp": "carbonbook.billing.gcp",
    "azure": "carbonbook.billing.azure",
}
_PERIODS = {"hour": "1h", "day": "1d", "month": "1mo"}
_SUMS = (
    "energy_kwh",
    "ccf_kwh",
    "co2e_location_kg",
    "co2e_kg",
    "embodied_co2e_kg",
    "ccf_co2e_kg",
    "cost",
    "line_items",
)


class _Provider(Protocol):
    PROVIDER: str
    CONVENTIONS: tuple[Convention, ...]
    LINE_ITEM_TYPES: tuple[str, ...] | None
    RATIO_BY: str

    def detect(self, columns: Sequence[str]) -> Convention | None: ...

    def classes(self, rows: pl.DataFrame, corrections: Sequence[str]) -> pl.DataFrame: ...


@dataclass(frozen=True)
class BillingResult:
    """The estimate of a billing source and what could not be (fully) estimated.

    Attributes:
        frame: the emissions frame (see `estimate`).
        unclassified: one row per (reason, service, usage type, unit, region) with
            `rows` (line items), `usage_amount`, `cost`, `estimated` (a figure was still
            produced, with a fallback) and `example` (a file and row, where known).
    """

    frame: pl.DataFrame
    unclassified: pl.DataFrame


def run(
    source: Source,
    provider: str | None = None,
    *,
    group_by: str | Sequence[str] | None = None,
    strict: bool = False,
    corrections: Sequence[Correction] = (),
    tags: Sequence[str] = (),
    progress: Callable[[int, int], None] | None = None,
    intensity: str | None = None,
) -> BillingResult:
    """Estimate a billing source and report what was set aside, in one pass.

    Args:
        source: a file, folder, glob, or a list of them; CSV, .csv.gz, Parquet or JSON
            lines.
        provider: force a provider (`aws`, `gcp`, `azure`); default: detect it from the header.
        group_by: sum the frame by these columns; `hour`, `day` and `month` group by the
            period the line's start falls in. The grouped frame keeps the group columns,
            `start` (first), `end` (last) and the sums of the energy, CO2e, cost and
            line-item columns.
        strict: raise on the first unparseable value (default: set such rows aside).
        corrections: carbonbook corrections of CCF quirks (see the module docstring).
        tags: resource tag keys (`user:team`) to carry as `tag:<key>` columns.
        progress: called with (files read, files) as the files are read (for a
            progress bar); the result is the same.
        intensity: None for CCF's static grid factors; a provider name
            (`electricitymaps`, `watttime`, `ukgrid`) or `auto` (the configured ones) for
            hourly intensity of each region's grid (see `with_provider_intensity`).

    Returns:
        The frame and the unclassified summary.

    Raises:
        BillingError: the source cannot be read, has no known convention, misses a
            required column, or (strict) holds a value that cannot be parsed.
    """
    unknown = [c for c in corrections if c not in CORRECTIONS]
    if unknown:
        raise BillingError(f"unknown correction(s) {unknown}; choose from {list(CORRECTIONS)}")
    files = resolve_files(source)
    module, conventions = _detect(files, provider)
    logger.info("reading %d %s billing file(s)", len(files), module.PROVIDER)

    columns = [group_by] if isinstance(group_by, str) else list(group_by or [])
    period: str | None = None
    if group_by is not None:
        # Sum line items to the grouping asked for before estimating (exact: CCF's
        # figures are linear in usage), so the estimate stays small for large exports.
        # Never across months: CCF turns GB-months into hours with the days of the
        # line's month.
        asked = [name for name in ("hour", "day", "month") if name in columns]
        period = asked[0] if asked else "month"
        if intensity is not None:
            # Hourly intensity needs each line's own hours.
            period = "hour"
    usage = read_usage(
        files,
        conventions,
        line_item_types=module.LINE_ITEM_TYPES,
        tags=tags,
        strict=strict,
        period=period,
        keep_account=group_by is None or "account" in columns,
        progress=progress,
    )
    prepare = getattr(module, "prepare", None)
    rows = prepare(usage.rows) if prepare is not None else usage.rows
    frame, fallback = estimate_frame(
        rows,
        module.classes(rows, corrections),
        provider=module.PROVIDER,
        ratio_by=module.RATIO_BY,
        unknown_by_service="unknown_same_service" in corrections,
        tags=tags,
        ratio_embodied=getattr(module, "RATIO_EMBODIED", True),
    )
    aside = usage.set_aside.select(
        pl.lit(module.PROVIDER).alias("provider"),
        "reason",
        pl.lit(False).alias("estimated"),
        "line_item_type",
        "service",
        "usage_type",
        pl.col("unit").alias("usage_unit"),
        "region",
        pl.col("rows").cast(pl.Int64),
        "usage_amount",
        "cost",
        "example",
    )
    summary = pl.concat([aside, fallback.select(UNCLASSIFIED_COLUMNS)], how="vertical")
    if summary.height:
        logger.info(
            "%d kind(s) of billing rows not estimated or estimated with a fallback; "
            "see carbonbook.billing.unclassified()",
            summary.height,
        )
    if intensity is not None:
        frame = with_provider_intensity(
            frame, provider=None if intensity == "auto" else intensity
        )
    if group_by is not None:
        frame = _group(frame, columns)
    return BillingResult(frame=frame, unclassified=summary.sort("cost", descending=True))


def estimate(
    source: Source,
    provider: str | None = None,
    *,
    group_by: str | Sequence[str] | None = None,
    strict: bool = False,
    corrections: Sequence[Correction] = (),
    tags: Sequence[str] = (),
    intensity: str | None = None,
) -> pl.DataFrame:
    """Energy and CO2e of a billing export, one row per billing line and usage kind.

    Rows keep the line's period (`start`, `end`: hourly where the export is hourly),
    `usage_kind` (compute, memory, storage, network, embodied, unknown), `method`
    (`ccf:compute`, `ccf:storage:ssd` ...) and `coefficients` (microarchitecture, watts,
    replication, PUE, grid factor). `energy_kwh` is at the meter (before PUE);
    `ccf_kwh` and `ccf_co2e_kg` are CCF's figures. See `run` for the arguments.

    Raises:
        BillingError: see `run`.
    """
    return run(
        source,
        provider,
        group_by=group_by,
        strict=strict,
        corrections=corrections,
        tags=tags,
        intensity=intensity,
    ).frame


def unclassified(
    source: Source,
    provider: str | None = None,
    *,
    strict: bool = False,
    corrections: Sequence[Correction] = (),
    tags: Sequence[str] = (),
) -> pl.DataFrame:
    """What in a billing export was not estimated, or was estimated with a fallback.

    One row per (reason, service, usage type, unit, region) with the line items, usage
    and cost involved. See `run` for the arguments and `BillingResult` for the columns.
    """
    return run(source, provider, strict=strict, corrections=corrections, tags=tags).unclassified


def _detect(
    files: Sequence[Path], forced: str | None
) -> tuple[_Provider, dict[Path, Convention]]:
    if forced is not None and forced not in _PROVIDERS:
        raise BillingError(f"unknown provider {forced!r}; choose from {sorted(_PROVIDERS)}")
    names = [forced] if forced else list(_PROVIDERS)
    modules = [cast(_Provider, importlib.import_module(_PROVIDERS[n])) for n in names]
    chosen: _Provider | None = None
    conventions: dict[Path, Convention] = {}
    for path in files:
        columns = columns_of(path)
        found = [(m, c) for m in modules if (c := m.detect(columns)) is not None]
        if not found:
            expected = "; ".join(
                f"{c.name}: a {c.marker!r} column" for m in modules for c in m.CONVENTIONS
            )
            raise BillingError(f"{path} is not a billing export carbonbook knows ({expected})")
        module, convention = found[0]
        if chosen is not None and module is not chosen:
            raise BillingError(
                f"{path} is a {module.PROVIDER} export but earlier files are "
                f"{chosen.PROVIDER}; estimate each provider's exports separately"
            )
        chosen = module
        conventions[path] = convention
    assert chosen is not None  # resolve_files never returns an empty list
    return chosen, conventions


def _group(frame: pl.DataFrame, columns: list[str]) -> pl.DataFrame:
    keys: list[pl.Expr] = []
    for name in columns:
        if name in _PERIODS:
            keys.append(pl.col("start").dt.truncate(_PERIODS[name]).alias(name))
        elif name in frame.columns and name not in _SUMS:
            keys.append(pl.col(name))
        else:
            raise BillingError(
                f"cannot group billing rows by {name!r}; use hour, day, month or one of "
                f"the frame's text columns such as service, region, account, usage_kind"
            )
    sums = [pl.col(c).sum() for c in _SUMS]
    return (
        frame.group_by(keys)
        .agg(pl.col("start").min(), pl.col("end").max(), *sums)
        .sort(columns)
    )
