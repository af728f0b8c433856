"""A persistent cache of grid-intensity points, so that history is fetched only once.

The cache is its own SQLite file in WAL mode, readable and writable by its owner only
(mode 0600), shared safely by several kernels. It holds two tables: the points, keyed by
provider, zone, signal, the factor type asked for and period start; and the spans of time
each series was fetched for, which tell a complete answer from a partial one (a provider
may have no value for some hours, and the cache must still know it asked).

Where it lives: the `path` argument, else `CARBONBOOK_INTENSITY_CACHE`, else
`$XDG_DATA_HOME/carbonbook/intensity-cache.sqlite` when `XDG_DATA_HOME` is absolute,
else `~/.local/share/carbonbook/intensity-cache.sqlite` (beside the default ledger).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from carbonbook.intensity.providers import IntensityCacheError, IntensityPoint, SeriesKey

__all__ = ["CACHE_FILE_NAME", "IntensityCache", "default_cache_path"]

logger = logging.getLogger(__name__)

CACHE_FILE_NAME = "intensity-cache.sqlite"
BUSY_TIMEOUT_MS = 5000

SCHEMA = """
CREATE TABLE IF NOT EXISTS intensity_point (
    provider TEXT NOT NULL,
    zone TEXT NOT NULL,
    signal TEXT NOT NULL,
    asked_factor_type TEXT NOT NULL,
    start_s INTEGER NOT NULL,
    end_s INTEGER NOT NULL,
    g_per_kwh REAL NOT NULL,
    factor_type TEXT NOT NULL,
    estimated INTEGER NOT NULL,
    fetched_s REAL NOT NULL,
    unit TEXT NOT NULL,
    raw_value REAL,
    source TEXT NOT NULL,
    note TEXT NOT NULL,
    PRIMARY KEY (provider, zone, signal, asked_factor_type, start_s)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS intensity_span (
    provider TEXT NOT NULL,
    zone TEXT NOT NULL,
    signal TEXT NOT NULL,
    asked_factor_type TEXT NOT NULL,
    start_s INTEGER NOT NULL,
    end_s INTEGER NOT NULL,
    fetched_s REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS intensity_span_key
    ON intensity_span (provider, zone, signal, asked_factor_type, start_s);
"""


def default_cache_path(environ: Mapping[str, str] | None = None) -> Path:
    """Where the cache lives when no path is given.

    Args:
        environ: the environment to read; `os.environ` when None.

    Returns:
        `CARBONBOOK_INTENSITY_CACHE` when set, else `intensity-cache.sqlite` in
        `$XDG_DATA_HOME/carbonbook/` (when absolute) or `~/.local/share/carbonbook/`.
    """
    env = os.environ if environ is None else environ
    if env.get("CARBONBOOK_INTENSITY_CACHE"):
        return Path(env["CARBONBOOK_INTENSITY_CACHE"]).expanduser()
    xdg = env.get("XDG_DATA_HOME", "")
    if xdg and Path(xdg).is_absolute():
        return Path(xdg) / "carbonbook" / CACHE_FILE_NAME
    home = Path(env["HOME"]) if env.get("HOME") else Path.home()
    return home / ".local" / "share" / "carbonbook" / CACHE_FILE_NAME


def _seconds(at: datetime) -> int:
    return int(at.timestamp())


def _time(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


class IntensityCache:
    """Intensity points on disk, opened on first use.

    Args:
        path: the cache file; see the module for the default.
        environ: the environment that chooses the default path; `os.environ` when None.

    Every method raises `IntensityCacheError` when the file cannot be used; the chain
    then goes on without the cache.
    """

    def __init__(
        self, path: str | Path | None = None, *, environ: Mapping[str, str] | None = None
    ) -> None:
        self.path = Path(path).expanduser() if path is not None else default_cache_path(environ)
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"IntensityCache({str(self.path)!r})"

    def close(self) -> None:
        """Close the file (it is opened again on the next use)."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def covered(self, key: SeriesKey, start: datetime, end: datetime) -> bool:
        """Whether the series `key` was fetched for all of [start, end)."""
        rows = self._query(
            "SELECT start_s, end_s FROM intensity_span WHERE provider = ? AND zone = ?"
            " AND signal = ? AND asked_factor_type = ? AND end_s > ? AND start_s < ?"
            " ORDER BY start_s",
            (*key, _seconds(start), _seconds(end)),
        )
        reached_s = _seconds(start)
        for span_start_s, span_end_s in rows:
            if span_start_s > reached_s:
                return False
            reached_s = max(reached_s, span_end_s)
        return reached_s >= _seconds(end)

    def points(self, key: SeriesKey, start: datetime, end: datetime) -> list[IntensityPoint]:
        """The cached points of the series `key` that overlap [start, end), oldest first."""
        rows = self._query(
            "SELECT start_s, end_s, g_per_kwh, factor_type, estimated, fetched_s, unit,"
            " raw_value, source, note FROM intensity_point WHERE provider = ? AND zone = ?"
            " AND signal = ? AND asked_factor_type = ? AND end_s > ? AND start_s < ?"
            " ORDER BY start_s",
            (*key, _seconds(start), _seconds(end)),
        )
        return [
            IntensityPoint(
                zone=key.zone,
                start=_time(row[0]),
                end=_time(row[1]),
                g_per_kwh=row[2],
                provider=key.provider,
                factor_type="direct" if row[3] == "direct" else "lifecycle",
                signal=key.signal,
                estimated=bool(row[4]),
                fetched_at=_time(row[5]),
                unit=row[6],
                raw_value=row[7],
                source=row[8],
                note=row[9],
            )
            for row in rows
        ]

    def store(
        self,
        key: SeriesKey,
        points: Sequence[IntensityPoint],
        *,
        covered: tuple[datetime, datetime] | None = None,
    ) -> None:
        """File `points` under `key`, replacing older values for the same periods.

        Args:
            key: the series the points belong to.
            points: the points as the provider gave them (no fallback notes).
            covered: the span the provider was asked for and that is settled, so that
                later requests inside it are served from here; None to record none.
        """
        rows = [
            (
                *key,
                _seconds(p.start),
                _seconds(p.end),
                p.g_per_kwh,
                p.factor_type,
                int(p.estimated),
                p.fetched_at.timestamp(),
                p.unit,
                p.raw_value,
                p.source,
                p.note,
            )
            for p in points
        ]
        with self._lock:
            conn = self._connection()
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    conn.executemany(
                        "INSERT OR REPLACE INTO intensity_point VALUES"
                        " (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        rows,
                    )
                    if covered is not None:
                        fetched_s = max((p.fetched_at.timestamp() for p in points), default=0.0)
                        conn.execute(
                            "INSERT INTO intensity_span VALUES (?, ?, ?, ?, ?, ?, ?)",
                            (*key, _seconds(covered[0]), _seconds(covered[1]), fetched_s),
                        )
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                raise self._error(exc, "write") from exc

    def _query(self, sql: str, args: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        with self._lock:
            conn = self._connection()
            try:
                return conn.execute(sql, args).fetchall()
            except sqlite3.Error as exc:
                raise self._error(exc, "read") from exc

    def _connection(self) -> sqlite3.Connection:
        if self._conn is not None:
            return self._conn
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o600))
            os.chmod(self.path, 0o600)
        except OSError as exc:
            raise IntensityCacheError(
                f"cannot create the intensity cache {self.path}: {exc.strerror}; set "
                "CARBONBOOK_INTENSITY_CACHE to a file in a writable directory"
            ) from exc
        try:
            conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                conn.execute("PRAGMA journal_mode = WAL")
            conn.executescript(SCHEMA)
        except sqlite3.Error as exc:
            raise self._error(exc, "open") from exc
        logger.debug("intensity cache open at %s", self.path)
        self._conn = conn
        return conn

    def _error(self, exc: sqlite3.Error, doing: str) -> IntensityCacheError:
        return IntensityCacheError(
            f"cannot {doing} the intensity cache {self.path} ({exc}); delete the file to "
            "start a new cache, or set CARBONBOOK_INTENSITY_CACHE to another path"
        )
