"""The ledger's file format: schema versions, error types, and rows to and from records.

Records are stored one row per cell, one column per scalar field of `CellRecord`, with
times as ISO-8601 UTC text (and as epoch seconds, for range queries) and the per-domain
figures as a JSON list in `domains_json`.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from carbonbook.errors import CarbonbookError
from carbonbook.records import CellRecord, DomainRecord

__all__ = [
    "APPLICATION_ID",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "LedgerCorruptError",
    "LedgerError",
    "LedgerForeignError",
    "LedgerLockedError",
    "LedgerNotFoundError",
    "LedgerPermissionError",
    "LedgerVersionError",
    "encode_domains",
]

# "CbLg" in ASCII: the number SQLite keeps at offset 68 of the file header.
APPLICATION_ID = 0x43624C67


class LedgerError(CarbonbookError):
    """The ledger could not be opened, read or written."""


class LedgerNotFoundError(LedgerError):
    """There is no ledger file at the path."""


class LedgerCorruptError(LedgerError):
    """The file is damaged or is not an SQLite database at all."""


class LedgerForeignError(LedgerError):
    """The file is an SQLite database that is not a carbonbook ledger."""


class LedgerVersionError(LedgerError):
    """The ledger's schema is not the one this carbonbook reads."""


class LedgerPermissionError(LedgerError):
    """This user may not read or write the ledger."""


class LedgerLockedError(LedgerError):
    """Another process kept the ledger locked for longer than the busy timeout."""


# -- schema ----------------------------------------------------------------------------


def _v1(conn: sqlite3.Connection) -> None:
    """Create the `cells` and `meta` tables."""
    from carbonbook import __version__

    conn.execute(
        """CREATE TABLE cells (
            id INTEGER PRIMARY KEY, record_id TEXT UNIQUE NOT NULL, session_id TEXT NOT NULL,
            kind TEXT NOT NULL, execution_count INTEGER, cell_id TEXT, notebook_path TEXT,
            label TEXT, source_preview TEXT NOT NULL,
            started_at TEXT NOT NULL, ended_at TEXT NOT NULL,
            started_at_epoch_s REAL NOT NULL, ended_at_epoch_s REAL NOT NULL, duration_s REAL,
            energy_j REAL, energy_lower_j REAL, energy_upper_j REAL,
            host_energy_j REAL, host_energy_lower_j REAL, host_energy_upper_j REAL,
            method TEXT NOT NULL, domains_json TEXT NOT NULL, cpu_time_s REAL,
            zone TEXT NOT NULL, intensity_g_per_kwh REAL, intensity_source TEXT NOT NULL,
            intensity_year INTEGER, intensity_factor_type TEXT NOT NULL,
            intensity_signal TEXT NOT NULL, intensity_basis TEXT NOT NULL, pue REAL,
            co2e_g REAL, co2e_lower_g REAL, co2e_upper_g REAL,
            status TEXT NOT NULL, error TEXT, hostname TEXT NOT NULL,
            kernel_pid INTEGER NOT NULL, carbonbook_version TEXT NOT NULL
        )"""
    )
    conn.execute("CREATE INDEX cells_started ON cells (started_at_epoch_s)")
    conn.execute("CREATE INDEX cells_session ON cells (session_id, started_at_epoch_s)")
    conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    conn.executemany(
        "INSERT INTO meta (key, value) VALUES (?, ?)",
        [("created_at", _iso(datetime.now(UTC))), ("created_by", f"carbonbook {__version__}")],
    )


# MIGRATIONS[n - 1] takes a file from schema n - 1 to schema n.
MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (_v1,)
SCHEMA_VERSION = len(MIGRATIONS)

_FIELDS = tuple(f.name for f in dataclasses.fields(CellRecord) if f.name != "domains")
_TYPES = {f.name: str(f.type) for f in dataclasses.fields(CellRecord)}
_FLOATS = frozenset(name for name in _FIELDS if _TYPES[name] == "float")
_TIMES = frozenset(name for name in _FIELDS if _TYPES[name] == "datetime")
COLUMNS = (*_FIELDS, "domains_json", "started_at_epoch_s", "ended_at_epoch_s")
INSERT_SQL = (
    f"INSERT OR IGNORE INTO cells ({', '.join(COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in COLUMNS)})"
)
SELECT_SQL = f"SELECT {', '.join((*_FIELDS, 'domains_json'))} FROM cells"
ORDER_SQL = " ORDER BY started_at_epoch_s, id"
IDENTITY_QUERY = (
    "SELECT (SELECT application_id FROM pragma_application_id()),"
    " (SELECT user_version FROM pragma_user_version()),"
    " (SELECT group_concat(name, ', ') FROM sqlite_master WHERE type = 'table')"
)


def _iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("record times must be timezone-aware (UTC); got a naive datetime")
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


_DOMAIN_FIELDS = tuple(f.name for f in dataclasses.fields(DomainRecord))


def encode_domains(domains: Sequence[DomainRecord]) -> str:
    """The JSON text kept in the `domains_json` column: a list of `DomainRecord` fields."""
    return json.dumps(
        [{name: getattr(d, name) for name in _DOMAIN_FIELDS} for d in domains],
        ensure_ascii=False,
    )


def row_from_record(record: CellRecord) -> tuple[Any, ...]:
    values = [getattr(record, name) for name in _FIELDS]
    epochs_s = (record.started_at.timestamp(), record.ended_at.timestamp())
    scalars = [_iso(v) if isinstance(v, datetime) else v for v in values]
    return (*scalars, encode_domains(record.domains), *epochs_s)


def record_from_row(row: Sequence[Any], path: Path) -> CellRecord:
    values: dict[str, Any] = dict(zip(_FIELDS, row, strict=False))
    try:
        for name in _TIMES:
            values[name] = datetime.fromisoformat(values[name]).astimezone(UTC)
        for name in _FLOATS:
            # SQLite stores a NaN as NULL.
            values[name] = float("nan") if values[name] is None else float(values[name])
        domains = tuple(DomainRecord(**d) for d in json.loads(row[len(_FIELDS)]))
    except (TypeError, ValueError) as exc:
        raise LedgerCorruptError(
            f"record {values.get('record_id')!r} in {path} cannot be read ({exc}); "
            "the file was changed outside carbonbook"
        ) from exc
    return CellRecord(**values, domains=domains)
