"""Per-kernel journals: records written durably at once, moved into the ledger in batches.

A notebook cell must not wait for an SQLite commit: on a busy machine the commit of one
small row costs about a millisecond, mostly by contending with IPython's own history
database. So each kernel appends every record, as one JSON line written by one `write`
call, to its own journal file next to the ledger, `<ledger>.pending/<session>-<pid>.jsonl`.
Once `write` returns, the record survives the process being killed (it is in the
operating system's page cache). A background thread then moves the records into the
SQLite ledger in batches and empties the journal.

Readers merge the ledger with every journal, so a record is visible as soon as it is
journaled. A journal left by a kernel that died is imported, then removed, by the next
writer that opens the ledger. Records carry unique ids and the ledger ignores a
duplicate, so importing a record twice is harmless.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path

from carbonbook.ledger_schema import COLUMNS, LedgerError, record_from_row, row_from_record
from carbonbook.records import CellRecord

__all__ = [
    "Journal",
    "decode_line",
    "encode_line",
    "journal_dir",
    "journal_files",
    "read_journals",
    "stale_journals",
]

logger = logging.getLogger(__name__)

# Only the first fields of a row are what `record_from_row` reads back.
_READ_FIELDS = len(COLUMNS) - 2


def journal_dir(ledger_path: Path) -> Path:
    """The directory holding the journals of a ledger."""
    return ledger_path.with_name(ledger_path.name + ".pending")


def encode_line(record: CellRecord | tuple[object, ...]) -> bytes:
    """One record (or its row from `row_from_record`) as a JSON line, column by column."""
    row = record if isinstance(record, tuple) else row_from_record(record)
    return (json.dumps(row, ensure_ascii=False) + "\n").encode()


def decode_line(line: bytes, path: Path) -> CellRecord:
    """The record of one journal line.

    Raises:
        LedgerError: the line is not a record (a torn write after a power cut, or a file
            changed by hand).
    """
    try:
        row = json.loads(line)
    except ValueError as exc:
        raise LedgerError(f"a line of the journal {path} is not a record ({exc})") from exc
    if not isinstance(row, list) or len(row) != len(COLUMNS):
        raise LedgerError(f"a line of the journal {path} is not a record")
    return record_from_row(row[: _READ_FIELDS + 1], path)


def journal_files(ledger_path: Path) -> list[Path]:
    """Every journal of a ledger, oldest name first."""
    directory = journal_dir(ledger_path)
    try:
        return sorted(directory.glob("*.jsonl"))
    except OSError:
        return []


def _records_in(path: Path) -> Iterator[CellRecord]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return
    except OSError as exc:
        raise LedgerError(f"cannot read the journal {path} ({exc.strerror or exc})") from exc
    for number, line in enumerate(data.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield decode_line(line, path)
        except LedgerError:
            logger.warning("skipping line %d of %s: not a whole record", number, path)


def read_journals(ledger_path: Path) -> list[CellRecord]:
    """The records of every journal of a ledger, without changing any file."""
    records: list[CellRecord] = []
    for path in journal_files(ledger_path):
        records.extend(_records_in(path))
    return records


def _owner_pid(path: Path) -> int | None:
    try:
        return int(path.stem.rsplit("-", 1)[1])
    except (IndexError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stale_journals(ledger_path: Path) -> list[tuple[Path, list[CellRecord]]]:
    """Journals whose kernel has exited, with their records (for import by a writer)."""
    found = []
    for path in journal_files(ledger_path):
        pid = _owner_pid(path)
        if pid is not None and pid != os.getpid() and _alive(pid):
            continue
        found.append((path, list(_records_in(path))))
    return found


class Journal:
    """This kernel's journal: append a record in one `write`, empty it once imported.

    Args:
        ledger_path: the ledger the journal belongs to.
        session_id: the kernel session, part of the file name.

    Raises:
        LedgerError: the journal cannot be created.
    """

    def __init__(self, ledger_path: Path, session_id: str) -> None:
        directory = journal_dir(ledger_path)
        self.path = directory / f"{session_id}-{os.getpid()}.jsonl"
        self._lock = threading.Lock()
        try:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._fd: int | None = os.open(
                self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600
            )
        except OSError as exc:
            raise LedgerError(
                f"cannot create the journal {self.path} ({exc.strerror or exc}); "
                "set CARBONBOOK_LEDGER to a file in a directory you can write"
            ) from exc
        self._written = 0

    def append(self, record: CellRecord | tuple[object, ...]) -> None:
        """Append one record (or its row); once this returns it survives a killed process.

        Raises:
            LedgerError: the write failed (disk full, file closed).
        """
        line = encode_line(record)
        with self._lock:
            if self._fd is None:
                raise LedgerError(f"the journal {self.path} is closed")
            try:
                os.write(self._fd, line)
            except OSError as exc:
                raise LedgerError(
                    f"cannot write the journal {self.path} ({exc.strerror or exc})"
                ) from exc
            self._written += 1

    def empty_if(self, imported: int) -> bool:
        """Empty the journal if it holds exactly the `imported` records, no newer ones."""
        with self._lock:
            if self._fd is None or self._written != imported:
                return False
            os.ftruncate(self._fd, 0)
            self._written = 0
            return True

    def close(self, *, remove: bool) -> None:
        """Close the file, and remove it when everything in it is in the ledger."""
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            if remove:
                with contextlib.suppress(FileNotFoundError):
                    self.path.unlink()
