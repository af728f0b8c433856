"""Writing records from a kernel: journaled at once, committed to the ledger in batches.

`LedgerWriter.write` costs one `write` system call on the caller's thread, after which
the record survives a killed process (see `carbonbook.ledger_journal`). A daemon thread
commits the journaled records to the SQLite ledger every `flush_period_s` and empties
the journal. Failures never reach the caller's code: they are kept in `error` for the
caller to show, and the records stay journaled (or, when even the journal cannot be
written, in memory) until a later flush succeeds.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from pathlib import Path

from carbonbook.ledger import Ledger
from carbonbook.ledger_journal import Journal, stale_journals
from carbonbook.ledger_schema import row_from_record
from carbonbook.records import CellRecord

__all__ = ["LedgerWriter"]

logger = logging.getLogger(__name__)

DEFAULT_FLUSH_PERIOD_S = 1.0


class LedgerWriter:
    """Journals records and commits them to one ledger from a background thread.

    Args:
        path: the ledger file.
        session_id: this kernel session's id (names its journal).
        flush_period_s: how often journaled records are committed to the ledger.

    Raises:
        LedgerError: the ledger cannot be opened or created. The journal is optional:
            when it cannot be created, records wait in memory instead.
    """

    def __init__(
        self, path: Path, session_id: str, *, flush_period_s: float = DEFAULT_FLUSH_PERIOD_S
    ) -> None:
        self.path = path
        self.ledger = Ledger(path)
        self.error: Exception | None = None
        self._pending: deque[tuple[CellRecord, tuple[object, ...]]] = deque()
        self._committed_since_empty = 0
        self._flush_lock = threading.Lock()
        self._import_stale()
        self.journal: Journal | None
        try:
            self.journal = Journal(path, session_id)
        except Exception as exc:
            logger.info("no journal, records wait in memory: %s", exc)
            self.journal = None
        self._period_s = flush_period_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="carbonbook-ledger", daemon=True)
        self._thread.start()

    def _import_stale(self) -> None:
        for journal_path, records in stale_journals(self.path):
            try:
                self.ledger.append_many(records)
                journal_path.unlink()
                logger.info("imported %d records from %s", len(records), journal_path)
            except Exception:
                logger.info("could not import %s yet", journal_path, exc_info=True)

    def write(self, record: CellRecord) -> None:
        """Journal one record (durable once this returns) and queue it for the ledger."""
        row = row_from_record(record)
        self._pending.append((record, row))
        if self.journal is not None:
            try:
                self.journal.append(row)
            except Exception as exc:
                self.error = exc
                self.journal = None

    @property
    def unsaved(self) -> list[CellRecord]:
        """Records not yet committed to the ledger."""
        return [record for record, _ in self._pending]

    def flush(self) -> bool:
        """Commit every queued record now; True when nothing is left to commit."""
        with self._flush_lock:
            batch = list(self._pending)
            if not batch:
                return True
            try:
                self.ledger.append_rows([row for _, row in batch])
            except Exception as exc:
                self.error = exc
                return False
            for _ in batch:
                self._pending.popleft()
            self._committed_since_empty += len(batch)
            journal = self.journal
            if journal is not None and journal.empty_if(self._committed_since_empty):
                self._committed_since_empty = 0
            self.error = None
            return not self._pending

    def _run(self) -> None:
        while not self._stop.wait(self._period_s):
            try:
                self.flush()
            except Exception:  # The thread must outlive any failure; flush records it.
                logger.debug("ledger flush failed", exc_info=True)

    def close(self) -> list[CellRecord]:
        """Stop the thread, commit what can be, close; returns the records not committed."""
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join()
        done = self.flush()
        if self.journal is not None:
            self.journal.close(remove=done)
        self.ledger.close()
        return self.unsaved
