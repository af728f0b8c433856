"""The ledger: an SQLite file that keeps every metered cell as one row.

Several kernels may write one ledger at once. The file is in WAL mode with
`synchronous=NORMAL`: a commit survives a killed process, but a power cut or an
operating-system crash may lose the last records written before it. The file is created
with mode 0600 (its `-wal` and `-shm` files take the same mode) in a directory created
with mode 0700.

The file says it is carbonbook's through `PRAGMA application_id` and carries its schema
version in `PRAGMA user_version`; `MIGRATIONS` upgrades older files, one function per
version, each run in a transaction. A file written by a newer carbonbook is refused and
left untouched.

Reading (`read_records`, `read_ledger`) opens the file read-only and never writes it.
SQLite still needs the `-shm` index of a WAL file to read it: when no writer has the
ledger open, a reader creates empty `-wal` and `-shm` files next to it and leaves them
there (the ledger file itself is unchanged). In a directory the reader may not write, a
ledger without a `-wal` file is read as immutable; one with a `-wal` file cannot be read
there, because its last records live in that log, and the error says what to do.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from carbonbook.ledger_journal import read_journals
from carbonbook.ledger_schema import (
    APPLICATION_ID,
    IDENTITY_QUERY,
    INSERT_SQL,
    MIGRATIONS,
    ORDER_SQL,
    SCHEMA_VERSION,
    SELECT_SQL,
    LedgerCorruptError,
    LedgerError,
    LedgerForeignError,
    LedgerLockedError,
    LedgerNotFoundError,
    LedgerPermissionError,
    LedgerVersionError,
    encode_domains,
    record_from_row,
    row_from_record,
)
from carbonbook.records import CellRecord

if TYPE_CHECKING:
    import polars

__all__ = [
    "APPLICATION_ID",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "Ledger",
    "LedgerCorruptError",
    "LedgerError",
    "LedgerForeignError",
    "LedgerLockedError",
    "LedgerNotFoundError",
    "LedgerPermissionError",
    "LedgerVersionError",
    "default_ledger_path",
    "encode_domains",
    "read_ledger",
    "read_records",
]

logger = logging.getLogger(__name__)

LEDGER_FILE_NAME = "ledger.sqlite"
BUSY_TIMEOUT_S = 5.0

# -- opening, checking, translating errors ---------------------------------------------


def default_ledger_path(environ: Mapping[str, str] | None = None) -> Path:
    """Where the ledger lives when no path is given.

    Args:
        environ: the environment to read; `os.environ` when None.

    Returns:
        `CARBONBOOK_LEDGER` when set, else `$XDG_DATA_HOME/carbonbook/ledger.sqlite` when
        `XDG_DATA_HOME` is an absolute path, else `~/.local/share/carbonbook/ledger.sqlite`.
    """
    env = os.environ if environ is None else environ
    if env.get("CARBONBOOK_LEDGER"):
        return Path(env["CARBONBOOK_LEDGER"]).expanduser()
    xdg = env.get("XDG_DATA_HOME", "")
    if xdg and Path(xdg).is_absolute():
        return Path(xdg) / "carbonbook" / LEDGER_FILE_NAME
    home = Path(env["HOME"]) if env.get("HOME") else Path.home()
    return home / ".local" / "share" / "carbonbook" / LEDGER_FILE_NAME


def _translate(exc: sqlite3.Error, path: Path, doing: str) -> LedgerError:
    """An SQLite error as a LedgerError that names the file and says what to do."""
    name = getattr(exc, "sqlite_errorname", "")
    text = str(exc)
    if name.startswith(("SQLITE_NOTADB", "SQLITE_CORRUPT")) or "malformed" in text:
        return LedgerCorruptError(
            f"the ledger {path} is damaged ({text}). Move it away and carbonbook starts a new "
            f"one; `sqlite3 {path} .recover` may save its rows"
        )
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in text:
        return LedgerLockedError(
            f"the ledger {path} stayed locked by another process ({text}); retry, or check "
            "for a process stuck writing it"
        )
    if name.startswith(("SQLITE_READONLY", "SQLITE_PERM")):
        return LedgerPermissionError(
            f"cannot {doing} the ledger {path}: {text}; give this user write access to the "
            "file and its directory, or set CARBONBOOK_LEDGER to a file you own"
        )
    return LedgerError(f"cannot {doing} the ledger {path}: {text}")


def _os_error(exc: OSError, path: Path, doing: str) -> LedgerError:
    if isinstance(exc, PermissionError):
        return LedgerPermissionError(
            f"cannot {doing} the ledger {path}: permission denied; fix its permissions or "
            "set CARBONBOOK_LEDGER to a file you own"
        )
    return LedgerError(
        f"cannot {doing} the ledger {path}: {exc.strerror or exc}; "
        "set CARBONBOOK_LEDGER to a file path in a directory you can write"
    )


def _check_file(path: Path, flags: int, doing: str) -> None:
    """Fail early, with a clear message, on a missing, odd or forbidden path."""
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise LedgerError(
                f"the ledger path {path} is not a regular file; "
                "set CARBONBOOK_LEDGER to a file path"
            )
        os.close(os.open(path, flags))
    except FileNotFoundError as exc:
        raise LedgerNotFoundError(
            f"no ledger at {path}; set CARBONBOOK_LEDGER or run a metered notebook first"
        ) from exc
    except OSError as exc:
        raise _os_error(exc, path, doing) from exc


def _check_identity(conn: sqlite3.Connection, path: Path, *, writable: bool) -> int:
    """The schema version of a carbonbook ledger (0 for a new, empty file); raise else."""
    # One statement, so that the three are read from one snapshot of the file.
    app_id, version, tables = conn.execute(IDENTITY_QUERY).fetchone()
    if app_id == APPLICATION_ID and version > SCHEMA_VERSION:
        raise LedgerVersionError(
            f"the ledger {path} was written by a newer carbonbook (schema {version}; this "
            f"one knows {SCHEMA_VERSION}); upgrade carbonbook"
        )
    if app_id == APPLICATION_ID and (version == SCHEMA_VERSION or writable):
        return int(version)
    if app_id == 0 and not tables:
        if writable:
            return 0
        raise LedgerForeignError(
            f"{path} is an empty database, not yet a carbonbook ledger; point "
            "CARBONBOOK_LEDGER at your ledger or run a metered notebook first"
        )
    if app_id == APPLICATION_ID:
        raise LedgerVersionError(
            f"the ledger {path} has the older schema {version}; open it once with "
            f"carbonbook.ledger.Ledger({str(path)!r}) to upgrade it, then read it again"
        )
    raise LedgerForeignError(
        f"{path} is an SQLite database of another application (application_id {app_id}, "
        f"tables: {tables or 'none'}), not a carbonbook ledger; set "
        "CARBONBOOK_LEDGER to another file"
    )


def _select(
    conn: sqlite3.Connection, path: Path, session_id: str | None
) -> list[tuple[CellRecord, str]]:
    if session_id is None:
        rows = conn.execute(SELECT_SQL + ORDER_SQL).fetchall()
    else:
        rows = conn.execute(
            SELECT_SQL + " WHERE session_id = ?" + ORDER_SQL, (session_id,)
        ).fetchall()
    return [(record_from_row(row, path), row[-1]) for row in rows]


class Ledger:
    """The ledger file, open for writing; a context manager that closes it.

    Safe to share between threads, and between processes that each open their own.

    Args:
        path: the file; `default_ledger_path()` when None. Created when missing.
        busy_timeout_s: how long a write waits for another writer to finish.

    Raises:
        LedgerError: (a subclass of it) the file cannot be created or opened, is damaged,
            is not a carbonbook ledger, or was written by a newer carbonbook.
    """

    def __init__(
        self, path: Path | str | None = None, *, busy_timeout_s: float = BUSY_TIMEOUT_S
    ) -> None:
        self.path = Path(path).expanduser() if path is not None else default_ledger_path()
        self._lock = threading.Lock()
        self._create_file()
        _check_file(self.path, os.O_RDWR, "write")
        try:
            self._conn: sqlite3.Connection | None = sqlite3.connect(
                self.path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise _translate(exc, self.path, "open") from exc
        try:
            self._open(busy_timeout_s)
        except BaseException:
            self.close()
            raise

    def _create_file(self) -> None:
        parent = self.path.parent
        if parent.exists() and not parent.is_dir():
            raise LedgerError(
                f"cannot create the ledger {self.path}: {parent} is not a directory; "
                "set CARBONBOOK_LEDGER to a file path in a directory"
            )
        try:
            parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.close(os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
            logger.info("created the ledger %s", self.path)
        except FileExistsError:
            pass
        except OSError as exc:
            raise _os_error(exc, self.path, "create") from exc

    def _open(self, busy_timeout_s: float) -> None:
        conn = self._connection()
        deadline_s = time.monotonic() + busy_timeout_s
        while True:
            try:
                conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
                self._prepare(conn)
                return
            except sqlite3.Error as exc:
                error = _translate(exc, self.path, "open")
                # Two processes that both turn a new file to WAL can deadlock; SQLite then
                # answers busy at once instead of waiting, so wait here.
                if not isinstance(error, LedgerLockedError) or time.monotonic() > deadline_s:
                    raise error from exc
            time.sleep(0.01)

    def _prepare(self, conn: sqlite3.Connection) -> None:
        # Check before anything writes, so that a foreign or newer file is not touched.
        if _check_identity(conn, self.path, writable=True) < SCHEMA_VERSION:
            conn.execute("PRAGMA journal_mode = WAL")
            self._migrate(conn)
        elif conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")

    def _migrate(self, conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Another process may have migrated the file while this one waited.
            version = _check_identity(conn, self.path, writable=True)
            for number in range(version + 1, SCHEMA_VERSION + 1):
                logger.debug("ledger %s: migrating to schema %d", self.path, number)
                MIGRATIONS[number - 1](conn)
                conn.execute(f"PRAGMA user_version = {number}")
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise LedgerError(f"the ledger {self.path} is closed; open a new Ledger")
        return self._conn

    def append(self, record: CellRecord) -> bool:
        """Write one record and commit it before returning.

        Args:
            record: the record; ignored when the ledger already holds its `record_id`.

        Returns:
            True when written, False when the id was already there.

        Raises:
            LedgerLockedError: another process held the ledger locked through two busy
                timeouts.
            LedgerError: the write failed for another reason.
        """
        row = row_from_record(record)
        with self._lock:
            conn = self._connection()
            for attempt in (1, 2):
                try:
                    return bool(conn.execute(INSERT_SQL, row).rowcount == 1)
                except sqlite3.Error as exc:
                    error = _translate(exc, self.path, "write")
                    if attempt == 1 and isinstance(error, LedgerLockedError):
                        logger.info("ledger %s is busy; retrying once", self.path)
                        continue
                    raise error from exc
        raise AssertionError("unreachable: the second attempt returns or raises")

    def append_many(self, records: Sequence[CellRecord]) -> int:
        """Write several records in one transaction; returns how many were new.

        Raises:
            LedgerLockedError: another process held the ledger locked through the busy
                timeout.
            LedgerError: the write failed for another reason; nothing was written.
        """
        return self.append_rows([row_from_record(record) for record in records])

    def append_rows(self, rows: Sequence[tuple[object, ...]]) -> int:
        """Write rows made by `row_from_record` in one transaction; returns how many were new.

        Raises:
            LedgerError: as `append_many`.
        """
        if not rows:
            return 0
        with self._lock:
            conn = self._connection()
            try:
                conn.execute("BEGIN IMMEDIATE")
                before = conn.total_changes
                conn.executemany(INSERT_SQL, rows)
                written = conn.total_changes - before
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise _translate(exc, self.path, "write") from exc
            return written

    def records(self, session_id: str | None = None) -> list[CellRecord]:
        """The records in the ledger, oldest first.

        Args:
            session_id: only this kernel session's records, when given.
        """
        with self._lock:
            try:
                return [
                    record for record, _ in _select(self._connection(), self.path, session_id)
                ]
            except sqlite3.Error as exc:
                raise _translate(exc, self.path, "read") from exc

    def close(self) -> None:
        """Close the file (idempotent); the last connection to close checkpoints the log."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


# -- reading without writing -----------------------------------------------------------


def _read(path: Path, session_id: str | None) -> list[tuple[CellRecord, str]]:
    _check_file(path, os.O_RDONLY, "read")
    uri = path.absolute().as_uri() + "?mode=ro"
    try:
        return _read_uri(uri, path, session_id)
    except sqlite3.OperationalError as exc:
        name = getattr(exc, "sqlite_errorname", "")
        if name not in ("SQLITE_CANTOPEN", "SQLITE_READONLY_DIRECTORY"):
            raise _translate(exc, path, "read") from exc
        wal = path.with_name(path.name + "-wal")
        if wal.exists() and wal.stat().st_size > 0:
            raise LedgerPermissionError(
                f"cannot read the ledger {path}: its directory is read-only for this user and "
                f"its last records are still in {wal.name}; open it once as its owner (any "
                "carbonbook command) or copy the ledger with its -wal file somewhere writable"
            ) from exc
    except sqlite3.Error as exc:
        raise _translate(exc, path, "read") from exc
    # Nobody can write a WAL ledger in a directory where its log cannot be created, so
    # reading the file as immutable is safe here.
    try:
        return _read_uri(uri + "&immutable=1", path, session_id)
    except sqlite3.Error as exc:
        raise _translate(exc, path, "read") from exc


def _read_uri(uri: str, path: Path, session_id: str | None) -> list[tuple[CellRecord, str]]:
    conn = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=BUSY_TIMEOUT_S)
    try:
        conn.execute("BEGIN")
        _check_identity(conn, path, writable=False)
        return _select(conn, path, session_id)
    finally:
        conn.close()


def _read_merged(path: Path, session_id: str | None) -> list[tuple[CellRecord, str]]:
    """The ledger's records plus those still in kernels' journals, oldest first."""
    pairs = _read(path, session_id)
    seen = {record.record_id for record, _ in pairs}
    extra = [
        (record, encode_domains(record.domains))
        for record in read_journals(path)
        if record.record_id not in seen
        and (session_id is None or record.session_id == session_id)
    ]
    if not extra:
        return pairs
    for record, raw in extra:
        seen.add(record.record_id)
        pairs.append((record, raw))
    pairs.sort(key=lambda pair: pair[0].started_at)
    return pairs


def read_records(
    path: Path | str | None = None, *, session_id: str | None = None
) -> list[CellRecord]:
    """Read the records of a ledger without writing to it, oldest first.

    Args:
        path: the ledger file; `default_ledger_path()` when None.
        session_id: only this kernel session's records, when given.

    Raises:
        LedgerError: (a subclass of it) the file is missing, unreadable, damaged, not a
            carbonbook ledger, or of a schema this carbonbook does not read.
    """
    resolved = Path(path).expanduser() if path is not None else default_ledger_path()
    return [record for record, _ in _read_merged(resolved, session_id)]


def read_ledger(path: Path | str | None = None) -> polars.DataFrame:
    """The ledger as a polars DataFrame, one row per record, without writing to it.

    Columns: every scalar field of `CellRecord` (times as `Datetime("us", "UTC")`, energies
    and other measures as `Float64`, counts as `Int64`), then `energy_<domain>_j` for each
    additive domain found (see `carbonbook.export.domain_column`; 0.0 where a record lacks
    it), then `domains_json`. An empty ledger gives an empty frame with the record columns.

    Args:
        path: the ledger file; `CARBONBOOK_LEDGER` or the default location when None.

    Raises:
        LedgerError: (a subclass of it) the file is missing, unreadable, damaged, not a
            carbonbook ledger, or of a schema this carbonbook does not read.
    """
    from carbonbook.export import records_to_frame

    resolved = Path(path).expanduser() if path is not None else default_ledger_path()
    pairs = _read_merged(resolved, None)
    return records_to_frame([r for r, _ in pairs], [raw for _, raw in pairs])
