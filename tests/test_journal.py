"""Journals and the batched ledger writer: durability, merging, recovery."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from carbonbook.ledger import Ledger, LedgerError, read_records
from carbonbook.ledger_journal import Journal, journal_dir, journal_files
from carbonbook.ledger_writer import LedgerWriter
from carbonbook.records import CellRecord, DomainRecord

START = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


def record(index: int, session: str = "s1") -> CellRecord:
    domain = DomainRecord("cpu", 10.0, 5.0, 9.0, 11.0, 4.0, 6.0, "estimated", "estimate", True)
    return CellRecord(
        record_id=uuid.uuid4().hex,
        session_id=session,
        kind="cell",
        execution_count=index,
        cell_id=None,
        notebook_path=None,
        label=None,
        source_preview=f"cell {index}",
        started_at=START + timedelta(seconds=index),
        ended_at=START + timedelta(seconds=index, milliseconds=500),
        duration_s=0.5,
        energy_j=5.0,
        energy_lower_j=4.0,
        energy_upper_j=6.0,
        host_energy_j=10.0,
        host_energy_lower_j=9.0,
        host_energy_upper_j=11.0,
        method="estimated",
        domains=(domain,),
        cpu_time_s=0.4,
        zone="FR",
        intensity_g_per_kwh=41.0,
        intensity_source="test",
        intensity_year=2025,
        intensity_factor_type="lifecycle",
        intensity_signal="average",
        intensity_basis="country FR",
        pue=1.0,
        co2e_g=5.0 / 3.6e6 * 41.0,
        co2e_lower_g=4.0 / 3.6e6 * 41.0,
        co2e_upper_g=6.0 / 3.6e6 * 41.0,
        status="ok",
        error=None,
        hostname="test",
        kernel_pid=os.getpid(),
        carbonbook_version="test",
    )


def test_a_journaled_record_is_readable_before_the_flush(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    writer = LedgerWriter(path, "s1", flush_period_s=3600)
    first, second = record(1), record(2)
    writer.write(first)
    writer.write(second)

    assert [r.record_id for r in read_records(path)] == [first.record_id, second.record_id]
    assert read_records(path)[0] == first

    assert writer.flush()
    assert writer.journal is not None
    assert writer.journal.path.stat().st_size == 0
    assert [r.record_id for r in read_records(path)] == [first.record_id, second.record_id]
    with Ledger(path) as ledger:
        assert len(ledger.records()) == 2
    writer.close()
    assert journal_files(path) == []


def test_journal_files_are_private(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "ledger.sqlite", "s9")
    journal.append(record(1))

    assert stat.S_IMODE(journal.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(journal_dir(tmp_path / "ledger.sqlite").stat().st_mode) == 0o700
    journal.close(remove=True)


def test_a_journal_is_emptied_only_when_everything_in_it_is_committed(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "ledger.sqlite", "s1")
    journal.append(record(1))
    journal.append(record(2))

    # One record was committed, but a second arrived meanwhile: keep the file.
    assert not journal.empty_if(1)
    assert journal.path.stat().st_size > 0
    assert journal.empty_if(2)
    assert journal.path.stat().st_size == 0
    journal.close(remove=True)


def test_journal_of_a_killed_process_is_imported_by_the_next_writer(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    code = (
        "import os, signal, sys\n"
        "sys.path.insert(0, sys.argv[2])\n"
        "from tests.test_journal import record\n"
        "from carbonbook.ledger_writer import LedgerWriter\n"
        "from pathlib import Path\n"
        "writer = LedgerWriter(Path(sys.argv[1]), 'killed', flush_period_s=3600)\n"
        "for index in range(5):\n"
        "    writer.write(record(index, 'killed'))\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    root = str(Path(__file__).resolve().parents[1])
    result = subprocess.run([sys.executable, "-c", code, str(path), root], check=False)
    assert result.returncode == -9

    assert len(read_records(path)) == 5
    assert len(journal_files(path)) == 1

    writer = LedgerWriter(path, "next", flush_period_s=3600)
    assert journal_files(path) != []
    assert all("next" in p.name for p in journal_files(path))
    with Ledger(path) as ledger:
        assert len(ledger.records(session_id="killed")) == 5
    writer.close()
    assert len(read_records(path)) == 5


def test_a_torn_last_line_loses_only_itself(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "ledger.sqlite"
    Ledger(path).close()
    journal = Journal(path, "s1")
    journal.append(record(1))
    journal.append(record(2))
    with open(journal.path, "ab") as handle:
        handle.write(b'["half a rec')
    journal.close(remove=False)

    records = read_records(path)

    assert len(records) == 2
    assert "not a whole record" in caplog.text


def test_an_unusable_ledger_path_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(LedgerError):
        LedgerWriter(tmp_path, "s1")


def test_records_survive_a_ledger_that_fails_later(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    writer = LedgerWriter(path, "s1", flush_period_s=3600)
    writer.ledger.close()  # every commit now fails
    writer.write(record(1))

    assert not writer.flush()
    assert writer.error is not None
    assert len(writer.unsaved) == 1
    assert len(read_records(path)) == 1  # still journaled
    left = writer.close()
    assert [r.source_preview for r in left] == ["cell 1"]


def test_duplicates_are_not_doubled_by_the_merge(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    one = record(1)
    with Ledger(path) as ledger:
        ledger.append(one)
    journal = Journal(path, "s1")
    journal.append(one)
    journal.append(replace(one, record_id=uuid.uuid4().hex))
    journal.close(remove=False)

    assert len(read_records(path)) == 2
