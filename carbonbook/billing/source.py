"""Reading billing exports: files, folders and globs, scanned lazily with polars.

A source is a file, a folder (every `.csv`, `.csv.gz` and `.parquet` under it), a glob,
or a list of those. Each file is scanned lazily, only the columns a convention names are
selected, values are parsed, and the line items are summed per (account, region,
service, usage type, unit, vCPU, period, tags) with the streaming engine, so an export
larger than memory works: only the sums are held.
"""

from __future__ import annotations

import glob
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import polars as pl

from carbonbook.errors import CarbonbookError

__all__ = [
    "BillingError",
    "Convention",
    "Usage",
    "columns_of",
    "read_usage",
    "resolve_files",
]

logger = logging.getLogger(__name__)

_SUFFIXES = (".csv", ".csv.gz", ".parquet")
TEXT_FIELDS = ("line_item_type", "service", "usage_type", "unit", "region", "account")
NUMBER_FIELDS = ("usage_amount", "cost", "vcpu")
TIME_FIELDS = ("start", "end")
# Naive timestamp spellings seen in exports; all are UTC.
_NAIVE_FORMATS = (
    "%Y-%m-%dT%H:%M:%SZ",
    "%Y-%m-%dT%H:%M:%S%.fZ",
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d",
)
_AWARE_FORMATS = ("%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S%.f%z")
_UTC = pl.Datetime("us", "UTC")


class BillingError(CarbonbookError):
    """A billing export could not be read or estimated; the message says where and why."""


@dataclass(frozen=True)
class Convention:
    """How one export convention names the columns carbonbook reads.

    Attributes:
        name: the convention, as error messages name it.
        marker: a column only this convention has.
        columns: logical field -> candidate column names, first present wins.
        optional: logical fields that may be missing.
        tag_style: how resource tag keys become column names (`legacy` or `athena`).
    """

    name: str
    marker: str
    columns: Mapping[str, tuple[str, ...]]
    optional: frozenset[str] = field(default_factory=frozenset)
    tag_style: Literal["legacy", "athena"] = "legacy"

    def tag_column(self, key: str) -> str:
        """The column holding the resource tag `key` (e.g. `user:team`)."""
        if self.tag_style == "legacy":
            return f"resourceTags/{key}"
        name = "resource_tags_"
        for char in key:
            if char == ":":
                name += "_"
                continue
            if char.upper() == char and not name.endswith("_"):
                name += "_"
            name += char.lower()
        return name


@dataclass
class Usage:
    """Summed line items of a source, and the rows that were set aside while reading.

    Attributes:
        rows: one row per (TEXT_FIELDS, vcpu, start, end, tags) with `usage_amount`,
            `cost` and `line_items` summed.
        set_aside: rows not estimated: other line item types and unparseable rows, with
            `reason`, `rows`, `usage_amount`, `cost` and an `example` location.
    """

    rows: pl.DataFrame
    set_aside: pl.DataFrame


def resolve_files(source: str | Path | Sequence[str | Path]) -> list[Path]:
    """The export files a source names, sorted.

    Raises:
        BillingError: nothing matches, or a named file does not exist.
    """
    items: Iterable[str | Path] = [source] if isinstance(source, str | Path) else source
    files: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            found = [p for p in path.rglob("*") if p.is_file() and _is_export(p)]
            if not found:
                raise BillingError(
                    f"folder {path} holds no .csv, .csv.gz or .parquet export; "
                    "point at the folder the exports were delivered to"
                )
            files.extend(found)
        elif path.is_file():
            files.append(path)
        elif glob.has_magic(str(item)):
            matched = [Path(p) for p in glob.glob(str(item), recursive=True)]
            found = [p for p in matched if p.is_file() and _is_export(p)]
            if not found:
                raise BillingError(f"the pattern {item} matches no billing export file")
            files.extend(found)
        else:
            raise BillingError(f"billing export {path} does not exist")
    return sorted(set(files))


def _is_export(path: Path) -> bool:
    return path.name.lower().endswith(_SUFFIXES)


def _scan(path: Path) -> pl.LazyFrame:
    if path.name.lower().endswith(".parquet"):
        return pl.scan_parquet(path)
    return pl.scan_csv(path, infer_schema=False)


def columns_of(path: Path) -> list[str]:
    """The column names of one export file (read from its header only)."""
    try:
        return _scan(path).collect_schema().names()
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise BillingError(f"cannot read {path} as CSV or Parquet: {exc}") from exc


def read_usage(
    files: Sequence[Path],
    conventions: Mapping[Path, Convention],
    *,
    line_item_types: Sequence[str] | None,
    tags: Sequence[str] = (),
    strict: bool = False,
) -> Usage:
    """Scan every file, parse its values and sum its line items per key and period.

    Args:
        files: the export files.
        conventions: the convention of each file.
        line_item_types: the line item types to estimate (None: every row).
        tags: resource tag keys to keep as `tag:<key>` columns.
        strict: raise on the first unparseable value instead of setting the row aside.

    Raises:
        BillingError: a required column is missing, a file cannot be read, or (strict)
            a value cannot be parsed; the message names the file, row and column.
    """
    frames = [_normalised(p, conventions[p], tags) for p in files]
    lazy = pl.concat(frames, how="vertical")
    bad = pl.coalesce(
        [pl.when(_is_bad(name)).then(pl.lit(name)) for name in NUMBER_FIELDS + TIME_FIELDS]
    )
    lazy = lazy.with_columns(bad.alias("_bad"))
    kept = pl.col("_bad").is_null()
    if line_item_types is not None:
        kept = kept & pl.col("line_item_type").is_in(list(line_item_types))

    keys = [*TEXT_FIELDS, "vcpu", "start", "end", *(f"tag:{key}" for key in tags)]
    rows = (
        lazy.filter(kept)
        .group_by(keys)
        .agg(
            pl.col("usage_amount").sum(),
            pl.col("cost").sum(),
            pl.len().alias("line_items"),
        )
    )
    reason = (
        pl.when(pl.col("_bad").is_not_null())
        .then(pl.format("unparseable {}", pl.col("_bad")))
        .otherwise(pl.format("line item type {} is not estimated", pl.col("line_item_type")))
    )
    example = pl.format(
        "{}, {}, column {}: value '{}'",
        pl.col("_file"),
        pl.col("_where"),
        _bad_value("_column_"),
        _bad_value("_raw_"),
    )
    aside = (
        lazy.filter(~kept)
        .with_columns(reason.alias("reason"), example.alias("example"))
        .group_by("reason", "line_item_type", "service", "usage_type", "unit", "region")
        .agg(
            pl.len().alias("rows"),
            pl.col("usage_amount").sum(),
            pl.col("cost").sum(),
            pl.col("example").first(),
        )
    )
    try:
        collected_rows, collected_aside = pl.collect_all([rows, aside], engine="streaming")
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise BillingError(f"cannot read the billing export: {exc}") from exc
    if strict:
        _raise_on_bad(collected_aside)
    return Usage(rows=collected_rows, set_aside=collected_aside)


def _raise_on_bad(aside: pl.DataFrame) -> None:
    bad = aside.filter(pl.col("reason").str.starts_with("unparseable"))
    if bad.height:
        total = int(bad["rows"].sum())
        raise BillingError(
            f"{bad['example'][0]!s} cannot be parsed ({total} such row(s) in all); fix the "
            "export or pass strict=False to set such rows aside in the unclassified summary"
        )


def _normalised(path: Path, convention: Convention, tags: Sequence[str]) -> pl.LazyFrame:
    scan = _scan(path)
    try:
        schema = scan.collect_schema()
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise BillingError(f"cannot read {path} as CSV or Parquet: {exc}") from exc
    is_csv = not path.name.lower().endswith(".parquet")
    where = (
        pl.format("line {}", pl.col("_index") + 2)
        if is_csv
        else pl.format("row {}", pl.col("_index") + 1)
    )
    exprs: list[pl.Expr] = [pl.lit(str(path)).alias("_file"), where.alias("_where")]
    for name, candidates in convention.columns.items():
        column = next((c for c in candidates if c in schema), None)
        if column is None and name not in convention.optional:
            wanted = " or ".join(repr(c) for c in candidates)
            raise BillingError(
                f"{path} looks like an {convention.name} export but has no {wanted} column "
                f"(the {name.replace('_', ' ')}); export the report with that column included"
            )
        exprs.extend(_field(name, column, schema.get(column) if column else None))
        exprs.append(pl.lit(column or "", pl.String).alias(f"_column_{name}"))
    for key in tags:
        column = convention.tag_column(key)
        value = pl.col(column).cast(pl.String) if column in schema else pl.lit(None, pl.String)
        exprs.append(value.fill_null("").alias(f"tag:{key}"))
    return scan.with_row_index("_index").select(exprs)


def _field(name: str, column: str | None, dtype: pl.DataType | None) -> list[pl.Expr]:
    if column is None:
        if name in NUMBER_FIELDS:
            missing = pl.lit(None, pl.Float64)
        elif name in TIME_FIELDS:
            missing = pl.lit(None, _UTC)
        else:
            missing = pl.lit("", pl.String)
        return [missing.alias(name), pl.lit(None, pl.String).alias(f"_raw_{name}")]
    raw = pl.col(column)
    if name in TEXT_FIELDS:
        text_value = raw.cast(pl.String).fill_null("")
        return [text_value.alias(name), text_value.alias(f"_raw_{name}")]
    text = raw.cast(pl.String).str.strip_chars()
    if name in NUMBER_FIELDS:
        parsed = (
            raw.cast(pl.Float64, strict=False)
            if dtype is not None and dtype.is_numeric()
            else (text.cast(pl.Float64, strict=False))
        )
        return [parsed.alias(name), text.alias(f"_raw_{name}")]
    if isinstance(dtype, pl.Datetime):
        zoned = raw.dt.replace_time_zone("UTC") if dtype.time_zone is None else raw
        parsed = zoned.dt.convert_time_zone("UTC").cast(_UTC)
    else:
        attempts = [
            text.str.strptime(pl.Datetime("us"), fmt, strict=False).dt.replace_time_zone("UTC")
            for fmt in _NAIVE_FORMATS
        ] + [
            text.str.strptime(pl.Datetime("us", "UTC"), fmt, strict=False)
            for fmt in _AWARE_FORMATS
        ]
        parsed = pl.coalesce(attempts)
    return [parsed.alias(name), text.alias(f"_raw_{name}")]


def _is_bad(name: str) -> pl.Expr:
    raw = pl.col(f"_raw_{name}")
    return pl.col(name).is_null() & raw.is_not_null() & (raw != "")


def _bad_value(prefix: str) -> pl.Expr:
    """The bad column's name (`_column_`) or raw text (`_raw_`); else the line item type."""
    value = pl.col(f"{prefix}line_item_type")
    for name in NUMBER_FIELDS + TIME_FIELDS:
        value = pl.when(pl.col("_bad") == name).then(pl.col(f"{prefix}{name}")).otherwise(value)
    return value.fill_null("")
