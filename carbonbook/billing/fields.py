"""The fields of a billing row, and how each is read from an export's columns.

Every provider's export is normalised to the same fields: text (`service`, `usage_type`,
`unit`, `region`, `account` ...), numbers (`usage_amount`, `cost`, `vcpu`) and times
(`start`, `end`). A value read as text keeps its raw form, so that one that cannot be
parsed can be reported with what it said; typed columns (Parquet) need no parsing.
"""

from __future__ import annotations

from typing import Any

import polars as pl

__all__ = [
    "NUMBER_FIELDS",
    "TEXT_FIELDS",
    "TIME_FIELDS",
    "coalesced_field",
    "is_bad",
    "missing",
    "read_field",
    "resolve",
    "typed",
]

TEXT_FIELDS = (
    "line_item_type",
    "service",
    "usage_type",
    "unit",
    "region",
    "account",
    "machine_type",
)
NUMBER_FIELDS = ("usage_amount", "cost", "vcpu")
TIME_FIELDS = ("start", "end")
# Naive timestamp spellings seen in exports; all are UTC.
_NAIVE_FORMATS = (
    "%Y-%m-%dT%H:%M:%SZ",
    "%Y-%m-%dT%H:%M:%S%.fZ",
    "%Y-%m-%d %H:%M:%S UTC",
    "%Y-%m-%d %H:%M:%S%.f UTC",
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d",
    "%m/%d/%Y",
)
_AWARE_FORMATS = ("%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S%.f%z")
_UTC = pl.Datetime("us", "UTC")


def resolve(candidate: str, schema: pl.Schema) -> tuple[pl.Expr, pl.DataType] | None:
    """The expression and type a candidate column names, or None if the file lacks it.

    `a.b` is column `a.b`, else field `b` of struct column `a`; `a[k]` is the `value` of
    the element whose `key` is `k` in list-of-struct column `a`.
    """
    if candidate in schema:
        return pl.col(candidate), schema[candidate]
    if candidate.endswith("]") and "[" in candidate:
        column, key = candidate[:-1].split("[", 1)
        dtype = schema.get(column)
        if not isinstance(dtype, pl.List) or not isinstance(dtype.inner, pl.Struct):
            return None
        names = {f.name for f in dtype.inner.fields}
        if not {"key", "value"} <= names:
            return None
        value = pl.col(column).list.eval(
            pl.element().filter(pl.element().struct.field("key") == key).struct.field("value")
        )
        return value.list.first(), pl.String()
    head, _, rest = candidate.partition(".")
    dtype = schema.get(head)
    expr = pl.col(head)
    for part in rest.split(".") if rest else ():
        if not isinstance(dtype, pl.Struct):
            return None
        fields: dict[str, Any] = {f.name: f.dtype for f in dtype.fields}
        if part not in fields:
            return None
        expr, dtype = expr.struct.field(part), fields[part]
    return (expr, dtype) if rest and dtype is not None else None


def coalesced_field(name: str, found: list[tuple[pl.Expr, pl.DataType]]) -> list[pl.Expr]:
    texts = [expr.cast(pl.String) for expr, _ in found]
    value = pl.coalesce([pl.when(t != "").then(t) for t in texts]).fill_null("")
    if name in TEXT_FIELDS:
        return [value.alias(name)]
    return [value.alias(name), value.alias(f"_raw_{name}")]


def missing(name: str) -> list[pl.Expr]:
    if name in NUMBER_FIELDS:
        missing = pl.lit(None, pl.Float64)
    elif name in TIME_FIELDS:
        missing = pl.lit(None, _UTC)
    else:
        return [pl.lit("", pl.String).alias(name)]
    return [missing.alias(name), pl.lit(None, pl.String).alias(f"_raw_{name}")]


def read_field(name: str, raw: pl.Expr, dtype: pl.DataType | None) -> list[pl.Expr]:
    none = pl.lit(None, pl.String).alias(f"_raw_{name}")
    if name in TEXT_FIELDS:
        return [raw.cast(pl.String).fill_null("").alias(name)]
    if name in NUMBER_FIELDS and dtype is not None and dtype.is_numeric():
        # A typed number is never malformed: no raw text to keep.
        return [raw.cast(pl.Float64, strict=False).alias(name), none]
    if isinstance(dtype, pl.Datetime):
        if dtype.time_zone == "UTC" and dtype.time_unit == "us":
            return [raw.alias(name), none]
        zoned = raw.dt.replace_time_zone("UTC") if dtype.time_zone is None else raw
        return [zoned.dt.convert_time_zone("UTC").cast(_UTC).alias(name), none]
    text = raw.cast(pl.String).str.strip_chars()
    if name in NUMBER_FIELDS:
        return [text.cast(pl.Float64, strict=False).alias(name), text.alias(f"_raw_{name}")]
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


def typed(name: str, dtype: pl.DataType | None) -> bool:
    """Whether a column's own type already gives the field's value (no text to parse)."""
    if name in NUMBER_FIELDS:
        return dtype is not None and dtype.is_numeric()
    return isinstance(dtype, pl.Datetime)


def is_bad(name: str) -> pl.Expr:
    raw = pl.col(f"_raw_{name}")
    return pl.col(name).is_null() & raw.is_not_null() & (raw != "")
