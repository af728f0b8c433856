"""Reading billing exports: files, folders and globs, scanned lazily with polars.

A source is a file, a folder (every `.csv`, `.csv.gz`, `.parquet`, `.json` and `.jsonl`
under it), a glob, or a list of those. A convention's column may name a field of a struct
column (`service.description`) or the value of a key in a list of key/value structs
(`system_labels[compute.googleapis.com/machine_spec]`), as BigQuery writes nested rows
to Parquet and JSON lines. Each file is scanned lazily, only the columns a convention names are
selected, values are parsed, and the line items are summed per (account, region,
service, usage type, unit, vCPU, period, tags) with the streaming engine, so an export
larger than memory works: only the sums are held.
"""

from __future__ import annotations

import glob
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import polars as pl

from carbonbook.billing.fields import (
    NUMBER_FIELDS,
    TEXT_FIELDS,
    TIME_FIELDS,
    coalesced_field,
    is_bad,
    missing,
    read_field,
    resolve,
    typed,
)
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

_PERIOD_EVERY = {"hour": "1h", "day": "1d", "month": "1mo"}
_SEP = "\x1f"
_SUFFIXES = (".csv", ".csv.gz", ".parquet", ".json", ".jsonl")


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
        coalesced: fields whose present candidates are all read, the first non-empty
            value winning (the others: the first present candidate).
        period: the length of a line (`1d`) where the export has no end column.
    """

    name: str
    marker: str
    columns: Mapping[str, tuple[str, ...]]
    optional: frozenset[str] = field(default_factory=frozenset)
    tag_style: Literal["legacy", "athena"] = "legacy"
    coalesced: frozenset[str] = field(default_factory=frozenset)
    period: str | None = None

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
    name = path.name.lower()
    if name.endswith(".parquet"):
        return pl.scan_parquet(path)
    if name.endswith((".json", ".jsonl")):
        return pl.scan_ndjson(path, infer_schema_length=None)
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
    period: str | None = None,
    keep_account: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> Usage:
    """Scan every file, parse its values and sum its line items per key and period.

    The CCF estimates are linear in usage, so summing line items before estimating them
    gives the same figures; summing to the grouping a caller asks for (`period`, and
    whether accounts are kept apart) keeps the estimate small whatever the input size.

    Args:
        files: the export files.
        conventions: the convention of each file.
        line_item_types: the line item types to estimate (None: every row).
        tags: resource tag keys to keep as `tag:<key>` columns.
        strict: raise on the first unparseable value instead of setting the row aside.
        period: `hour`, `day` or `month` to sum line items by that period of their start
            (the period becomes the row's start and end), `all` to sum over the whole
            source, or None to keep each line item's own period.
        keep_account: keep accounts apart (False sums across accounts).
        progress: called with (files done, files) after each file; the files are then
            read one by one and their sums combined, which gives the same result.

    Raises:
        BillingError: a required column is missing, a file cannot be read, or (strict)
            a value cannot be parsed; the message names the file, row and column.
    """
    normalised = [_normalised(p, conventions[p], tags, i) for i, p in enumerate(files)]
    infos = [info for _, info in normalised]
    frames = [frame for frame, _ in normalised]
    kept = pl.col("_bad").is_null()
    if line_item_types is not None:
        kept = kept & pl.col("line_item_type").is_in(list(line_item_types))
    # One key tells a row set aside, and why; rows to estimate share a null key, so the
    # group-by hashes as few columns as it can.
    aside_key = (
        pl.when(kept)
        .then(pl.lit(None, pl.String))
        .when(pl.col("_bad").is_not_null())
        .then(pl.col("_bad") + pl.lit(_SEP) + pl.col("line_item_type"))
        .otherwise(pl.lit(_SEP) + pl.col("line_item_type"))
    )
    frames = [frame.with_columns(aside_key.alias("_aside")) for frame in frames]

    # One pass: line items are summed per key; the rows set aside (unparseable, or of a
    # line item type not estimated) are summed too, keeping the first row's diagnostics.
    constant = {"line_item_type"} | ({"account"} if not keep_account else set())
    if not any(info.columns.get("machine_type") for info in infos):
        constant.add("machine_type")
    text = [f for f in TEXT_FIELDS if f not in constant]
    tag_keys = [f"tag:{key}" for key in tags]
    keys: list[Any] = [*text, "vcpu", *tag_keys, "_aside"]
    if period is None:
        keys += ["start", "end"]
    elif period != "all":
        keys.append(pl.col("start").dt.truncate(_PERIOD_EVERY[period]).alias("_period"))
    raws = [f"_raw_{name}" for name in NUMBER_FIELDS + TIME_FIELDS]
    aggregates = [
        pl.col("usage_amount").sum(),
        pl.col("cost").sum(),
        pl.len().alias("line_items"),
        *(pl.col(name).first() for name in ("_file", "_index", *raws)),
    ]
    if period is not None:
        aggregates += [pl.col("start").min().alias("_first"), pl.col("end").max()]
    try:
        if progress is None or len(frames) < 2:
            lazy = pl.concat(frames, how="vertical")
            summed = lazy.group_by(keys).agg(aggregates).collect(engine="streaming")
        else:
            summed = _summed_file_by_file(frames, keys, aggregates, progress)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise BillingError(f"cannot read the billing export: {exc}") from exc
    if period is not None:
        start = pl.col("_period") if period != "all" else pl.col("_first")
        summed = summed.with_columns(start.alias("start")).drop(
            "_period", "_first", strict=False
        )
    # `_aside` is "<bad field><sep><line item type>", or "<sep><type>" for a type that
    # is not estimated, or null for the rows to estimate.
    parts = pl.col("_aside").str.split_exact(_SEP, 1)
    summed = summed.with_columns(
        parts.struct.field("field_0").replace("", None).alias("_bad"),
        parts.struct.field("field_1").fill_null("").alias("line_item_type"),
    )
    if not keep_account:
        summed = summed.with_columns(pl.lit("all accounts").alias("account"))
    if "machine_type" in constant:
        summed = summed.with_columns(pl.lit("").alias("machine_type"))

    kept_rows = pl.col("_aside").is_null()
    collected_rows = summed.filter(kept_rows).drop("_aside", "_bad", "_file", "_index", *raws)
    reason = (
        pl.when(pl.col("_bad").is_not_null())
        .then(pl.format("unparseable {}", pl.col("_bad")))
        .otherwise(pl.format("line item type {} is not estimated", pl.col("line_item_type")))
    )
    example = pl.format(
        "{}, {} {}, column {}: value '{}'",
        _per_file(infos, lambda info: str(info.path)),
        _per_file(infos, lambda info: info.unit),
        pl.col("_index") + _per_file(infos, lambda info: info.first, pl.UInt32),
        _bad_column(infos),
        _bad_raw(),
    )
    collected_aside = (
        summed.filter(~kept_rows)
        .sort("_file", "_index")
        .with_columns(reason.alias("reason"), example.alias("example"))
        .group_by("reason", "line_item_type", "service", "usage_type", "unit", "region")
        .agg(
            pl.col("line_items").sum().alias("rows"),
            pl.col("usage_amount").sum(),
            pl.col("cost").sum(),
            pl.col("example").first(),
        )
    )
    if strict:
        _raise_on_bad(collected_aside)
    return Usage(rows=collected_rows, set_aside=collected_aside)


def _summed_file_by_file(
    frames: Sequence[pl.LazyFrame],
    keys: Sequence[Any],
    aggregates: Sequence[pl.Expr],
    progress: Callable[[int, int], None],
) -> pl.DataFrame:
    """The same sums as one pass over every file, reading one file at a time."""
    parts = []
    for done, frame in enumerate(frames, start=1):
        parts.append(frame.group_by(keys).agg(aggregates).collect(engine="streaming"))
        progress(done, len(frames))
    names = [key if isinstance(key, str) else key.meta.output_name() for key in keys]
    combined = pl.concat(parts, how="vertical")
    again = []
    for column in combined.columns:
        if column in names:
            continue
        if column in ("usage_amount", "cost", "line_items"):
            again.append(pl.col(column).sum())
        elif column == "_first":
            again.append(pl.col(column).min())
        elif column == "end":
            again.append(pl.col(column).max())
        else:
            again.append(pl.col(column).first())
    return combined.group_by(names, maintain_order=True).agg(again)


def _raise_on_bad(aside: pl.DataFrame) -> None:
    bad = aside.filter(pl.col("reason").str.starts_with("unparseable"))
    if bad.height:
        total = int(bad["rows"].sum())
        raise BillingError(
            f"{bad['example'][0]!s} cannot be parsed ({total} such row(s) in all); fix the "
            "export or pass strict=False to set such rows aside in the unclassified summary"
        )


@dataclass(frozen=True)
class _FileInfo:
    """How to point at a row of one file in a message: its path, row unit and columns."""

    path: Path
    unit: str
    first: int
    columns: dict[str, str]


def _normalised(
    path: Path, convention: Convention, tags: Sequence[str], file_id: int
) -> tuple[pl.LazyFrame, _FileInfo]:
    scan = _scan(path)
    try:
        schema = scan.collect_schema()
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise BillingError(f"cannot read {path} as CSV or Parquet: {exc}") from exc
    lower = path.name.lower()
    if lower.endswith((".csv", ".csv.gz")):
        unit, first = "line", 2
    elif lower.endswith((".json", ".jsonl")):
        unit, first = "line", 1
    else:
        unit, first = "row", 1
    # Diagnostics (file, row, column, raw text) are rebuilt only for the rows set aside.
    exprs: list[pl.Expr] = [pl.lit(file_id, pl.UInt32).alias("_file")]
    columns: dict[str, str] = {}
    parsed_from_text: set[str] = set()
    for name in TEXT_FIELDS + NUMBER_FIELDS + TIME_FIELDS:
        candidates = convention.columns.get(name, ())
        found = [(c, r) for c in candidates if (r := resolve(c, schema)) is not None]
        if not found and candidates and name not in convention.optional:
            wanted = " or ".join(repr(c) for c in candidates)
            raise BillingError(
                f"{path} looks like an {convention.name} export but has no {wanted} column "
                f"(the {name.replace('_', ' ')}); export the report with that column included"
            )
        if name in convention.coalesced and len(found) > 1:
            exprs.extend(coalesced_field(name, [r for _, r in found]))
            parsed_from_text.add(name)
        else:
            exprs.extend(read_field(name, *found[0][1]) if found else missing(name))
            dtype = found[0][1][1] if found else None
            if found and not typed(name, dtype):
                parsed_from_text.add(name)
        columns[name] = found[0][0] if found else ""
    for key in tags:
        column = convention.tag_column(key)
        value = pl.col(column).cast(pl.String) if column in schema else pl.lit(None, pl.String)
        exprs.append(value.fill_null("").alias(f"tag:{key}"))
    # Only values read as text can be malformed; typed Parquet columns cannot.
    textual = [name for name in NUMBER_FIELDS + TIME_FIELDS if name in parsed_from_text]
    bad = pl.coalesce(
        [pl.lit(None, pl.String), *(pl.when(is_bad(n)).then(pl.lit(n)) for n in textual)]
    )
    selected = (
        scan.with_row_index("_index")
        .select(pl.col("_index"), *exprs)
        .with_columns(bad.alias("_bad"))
    )
    if convention.period is not None:
        ends = pl.col("start").dt.offset_by(convention.period)
        selected = selected.with_columns(pl.col("end").fill_null(ends))
    return selected, _FileInfo(path, unit, first, columns)


def _per_file(infos: Sequence[_FileInfo], value: Any, dtype: Any = pl.String) -> pl.Expr:
    """An expression giving, for each row, `value(info)` of the file the row came from."""
    mapping = {index: value(info) for index, info in enumerate(infos)}
    return pl.col("_file").replace_strict(mapping, return_dtype=dtype)


def _bad_column(infos: Sequence[_FileInfo]) -> pl.Expr:
    """The name, in its file, of the column that could not be parsed (or the type's)."""
    value = _per_file(infos, lambda info: info.columns.get("line_item_type", ""))
    for name in NUMBER_FIELDS + TIME_FIELDS:
        column = _per_file(infos, lambda info, name=name: info.columns.get(name, ""))
        value = pl.when(pl.col("_bad") == name).then(column).otherwise(value)
    return value.fill_null("")


def _bad_raw() -> pl.Expr:
    """The raw text that could not be parsed, or the row's line item type."""
    value = pl.col("line_item_type")
    for name in NUMBER_FIELDS + TIME_FIELDS:
        value = pl.when(pl.col("_bad") == name).then(pl.col(f"_raw_{name}")).otherwise(value)
    return value.fill_null("")
