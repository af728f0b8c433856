"""The SQLite ledger: round trips, file modes, concurrency, migrations, reading, failures."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import multiprocessing
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from carbonbook import ledger as ledger_module
from carbonbook.ledger import (
    APPLICATION_ID,
    SCHEMA_VERSION,
    Ledger,
    LedgerCorruptError,
    LedgerError,
    LedgerForeignError,
    LedgerLockedError,
    LedgerNotFoundError,
    LedgerVersionError,
    default_ledger_path,
    read_ledger,
    read_records,
)
from carbonbook.records import CellRecord, DomainRecord

START = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
NOBODY = 65534


def domain(name: str, attributed_j: float, *, additive: bool = True) -> DomainRecord:
    """A measured domain whose host figure is twice the attributed one."""
    return DomainRecord(
        name=name,
        host_j=2 * attributed_j,
        attributed_j=attributed_j,
        host_lower_j=2 * attributed_j,
        host_upper_j=2 * attributed_j,
        attributed_lower_j=0.9 * attributed_j,
        attributed_upper_j=1.1 * attributed_j,
        method="measured",
        meter="rapl" if not name.startswith("gpu") else "nvml",
        additive=additive,
    )


def make_record(index: int = 0, **changes: Any) -> CellRecord:
    """A record of a 10 s cell that used 3600 J at 100 g/kWh; `changes` override fields."""
    started = START + timedelta(seconds=20 * index)
    record = CellRecord(
        record_id=f"rec-{index:06d}",
        session_id="session-a",
        kind="cell",
        execution_count=index + 1,
        cell_id=f"cell-{index}",
        notebook_path="/home/ana/analysis.ipynb",
        label=None,
        source_preview=f"df = load({index})",
        started_at=started,
        ended_at=started + timedelta(seconds=10),
        duration_s=10.0,
        energy_j=3600.0,
        energy_lower_j=3240.0,
        energy_upper_j=3960.0,
        host_energy_j=7200.0,
        host_energy_lower_j=7200.0,
        host_energy_upper_j=7200.0,
        method="measured",
        domains=(domain("cpu", 3600.0),),
        cpu_time_s=9.5,
        zone="FR",
        intensity_g_per_kwh=100.0,
        intensity_source="Ember",
        intensity_year=2024,
        intensity_factor_type="lifecycle",
        intensity_signal="average",
        intensity_basis="country FR",
        pue=1.0,
        co2e_g=0.1,
        co2e_lower_g=0.09,
        co2e_upper_g=0.11,
        status="ok",
        error=None,
        hostname="workstation",
        kernel_pid=4242,
        carbonbook_version="0.1.0.dev0",
    )
    return replace(record, **changes)


def varied_records() -> list[CellRecord]:
    """Records that exercise every kind of value the ledger keeps."""
    return [
        make_record(0),
        make_record(
            1,
            status="error",
            error="KeyboardInterrupt",
            execution_count=None,
            cell_id=None,
            notebook_path=None,
            label="träin — ünïcode ✓ 数据",
            source_preview="print('héllo wörld') # 🌍",
            intensity_year=None,
            method="mixed",
            domains=(
                domain("psys", 3000.0),
                domain("cpu", 2000.0, additive=False),
                domain("dram", 400.0, additive=False),
                domain("gpu:0", 500.0),
                domain("gpu:1", 100.0),
            ),
        ),
        make_record(2, kind="track", domains=(), energy_j=0.0, co2e_g=0.0, duration_s=1e-6),
        make_record(3, session_id="session-b", kind="magic", energy_j=1 / 3, pue=1.135),
    ]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "ledger.sqlite"


@pytest.fixture
def filled(path: Path) -> Path:
    """A closed ledger holding `varied_records()`."""
    with Ledger(path) as ledger:
        for record in varied_records():
            assert ledger.append(record)
    return path


# -- round trips -----------------------------------------------------------------------


def test_records_round_trip_exactly(path: Path) -> None:
    records = varied_records()
    with Ledger(path) as ledger:
        for record in records:
            assert ledger.append(record) is True
        assert ledger.records() == records
    assert read_records(path) == records


def test_times_come_back_utc_aware_with_microseconds(path: Path) -> None:
    paris = timezone(timedelta(hours=2))
    record = make_record(started_at=datetime(2024, 5, 1, 14, 0, 0, 7, tzinfo=paris))
    with Ledger(path) as ledger:
        ledger.append(record)
    [back] = read_records(path)
    assert back.started_at == datetime(2024, 5, 1, 12, 0, 0, 7, tzinfo=UTC)
    assert back.started_at.utcoffset() == timedelta(0)
    assert back.ended_at.tzinfo is not None


def test_naive_time_is_refused(path: Path) -> None:
    with Ledger(path) as ledger, pytest.raises(ValueError, match="timezone-aware"):
        ledger.append(make_record(started_at=datetime(2024, 5, 1, 12, 0)))


def test_nan_energy_round_trips(path: Path) -> None:
    with Ledger(path) as ledger:
        ledger.append(make_record(energy_upper_j=math.nan))
        [back] = ledger.records()
    assert math.isnan(back.energy_upper_j)


def test_duplicate_id_is_ignored(path: Path) -> None:
    with Ledger(path) as ledger:
        assert ledger.append(make_record(0)) is True
        assert ledger.append(make_record(0, energy_j=1.0)) is False
        assert [r.energy_j for r in ledger.records()] == [3600.0]


def test_records_by_session(filled: Path) -> None:
    with Ledger(filled) as ledger:
        assert [r.record_id for r in ledger.records("session-b")] == ["rec-000003"]
    assert len(read_records(filled, session_id="session-a")) == 3
    assert read_records(filled, session_id="nobody") == []


def test_appends_are_fast(path: Path) -> None:
    with Ledger(path) as ledger:
        for index in range(20):
            ledger.append(make_record(index))
        timings_s = []
        for index in range(20, 320):
            record = make_record(index)
            started = time.perf_counter()
            ledger.append(record)
            timings_s.append(time.perf_counter() - started)
    assert statistics.median(timings_s) < 1e-3


def test_path_with_uri_characters(tmp_path: Path) -> None:
    path = tmp_path / "my ledger #1?%20" / "ledger.sqlite"
    with Ledger(path) as ledger:
        ledger.append(make_record())
    assert [r.record_id for r in read_records(path)] == ["rec-000000"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["my ledger #1?%20"]


def test_closed_ledger_says_so(path: Path) -> None:
    ledger = Ledger(path)
    ledger.close()
    ledger.close()
    with pytest.raises(LedgerError, match="closed"):
        ledger.append(make_record())


# -- the file on disk ------------------------------------------------------------------


def test_new_ledger_modes_and_wal(tmp_path: Path) -> None:
    path = tmp_path / "new" / "dir" / "ledger.sqlite"
    with Ledger(path) as ledger:
        ledger.append(make_record())
        assert (path.parent.stat().st_mode & 0o777) == 0o700
        assert (path.stat().st_mode & 0o777) == 0o600
        wal = path.with_name("ledger.sqlite-wal")
        assert (wal.stat().st_mode & 0o777) == 0o600
        # Bytes 18 and 19 of the header are 2 for a WAL database.
        assert path.read_bytes()[18:20] == b"\x02\x02"
    probe = sqlite3.connect(path.as_uri() + "?mode=ro", uri=True)
    try:
        assert probe.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert probe.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
        assert probe.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    finally:
        probe.close()


def test_schema_has_a_column_for_every_field(filled: Path) -> None:
    conn = sqlite3.connect(filled.as_uri() + "?mode=ro", uri=True)
    try:
        columns = {row[1] for row in conn.execute("PRAGMA table_info(cells)")}
        indexes = {row[1]: row[2] for row in conn.execute("PRAGMA index_list(cells)")}
        indexed = {conn.execute(f"PRAGMA index_info({name})").fetchone()[2] for name in indexes}
        meta = dict(conn.execute("SELECT key, value FROM meta"))
        stored = conn.execute("SELECT domains_json FROM cells WHERE record_id = 'rec-000001'")
        domains = json.loads(stored.fetchone()[0])
    finally:
        conn.close()
    fields = set(CellRecord.__dataclass_fields__) - {"domains"}
    assert fields | {"domains_json", "started_at_epoch_s"} <= columns
    assert {"record_id", "started_at_epoch_s", "session_id"} <= indexed
    assert meta["created_by"] == "carbonbook 0.1.0.dev0"
    assert datetime.fromisoformat(meta["created_at"]).tzinfo is not None
    assert [d["name"] for d in domains] == ["psys", "cpu", "dram", "gpu:0", "gpu:1"]


def test_default_path() -> None:
    assert default_ledger_path({"CARBONBOOK_LEDGER": "/x/l.db", "HOME": "/h"}) == Path(
        "/x/l.db"
    )
    xdg = {"XDG_DATA_HOME": "/data", "HOME": "/h"}
    assert default_ledger_path(xdg) == Path("/data/carbonbook/ledger.sqlite")
    relative = {"XDG_DATA_HOME": "rel", "HOME": "/h"}
    assert default_ledger_path(relative) == Path("/h/.local/share/carbonbook/ledger.sqlite")
    assert default_ledger_path({"HOME": "/h", "CARBONBOOK_LEDGER": ""}) == Path(
        "/h/.local/share/carbonbook/ledger.sqlite"
    )


def test_default_path_is_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "env" / "ledger.sqlite"
    monkeypatch.setenv("CARBONBOOK_LEDGER", str(target))
    with Ledger() as ledger:
        ledger.append(make_record())
        assert ledger.path == target
    assert read_ledger().height == 1


# -- several writers -------------------------------------------------------------------


def test_two_threads_share_one_ledger(path: Path) -> None:
    with Ledger(path) as ledger:

        def write(offset: int) -> None:
            for index in range(offset, offset + 200):
                ledger.append(make_record(index))

        threads = [threading.Thread(target=write, args=(n * 1000,)) for n in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        ids = [r.record_id for r in ledger.records()]
    assert len(ids) == 400
    assert len(set(ids)) == 400


def _append_many(path: str, offset: int, count: int, barrier: Any) -> None:
    barrier.wait()
    with Ledger(path) as ledger:
        for index in range(offset, offset + count):
            ledger.append(make_record(index, session_id=f"process-{offset}"))


def test_two_processes_write_one_new_ledger(path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    workers = [
        context.Process(target=_append_many, args=(str(path), n * 1000, 200, barrier))
        for n in range(2)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    assert [w.exitcode for w in workers] == [0, 0]
    records = read_records(path)
    assert len(records) == 400
    assert len({r.record_id for r in records}) == 400
    assert {r.session_id for r in records} == {"process-0", "process-1000"}


def _append_then_die(path: str) -> None:
    ledger = Ledger(path)
    for index in range(5):
        ledger.append(make_record(index))
    os.kill(os.getpid(), signal.SIGKILL)


def test_records_survive_a_killed_writer(path: Path) -> None:
    worker = multiprocessing.get_context("spawn").Process(target=_append_then_die, args=(path,))
    worker.start()
    worker.join(60)
    assert worker.exitcode == -signal.SIGKILL
    assert path.with_name(path.name + "-wal").stat().st_size > 0
    assert [r.record_id for r in read_records(path)] == [f"rec-{i:06d}" for i in range(5)]


def test_locked_ledger_fails_clearly_then_recovers(
    path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="carbonbook.ledger")
    ledger = Ledger(path, busy_timeout_s=0.05)
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(LedgerLockedError, match=r"stayed locked.*retry") as caught:
            ledger.append(make_record(0))
        assert str(path) in str(caught.value)
        assert [r.getMessage() for r in caplog.records].count(
            f"ledger {path} is busy; retrying once"
        ) == 1
        other.execute("COMMIT")
        assert ledger.append(make_record(0)) is True
    finally:
        other.close()
        ledger.close()


# -- schema versions -------------------------------------------------------------------


def test_empty_file_becomes_a_ledger(path: Path) -> None:
    path.touch()
    with Ledger(path) as ledger:
        ledger.append(make_record())
    assert len(read_records(path)) == 1


def test_migrations_run_in_order(filled: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def v2(conn: sqlite3.Connection) -> None:
        conn.execute("ALTER TABLE cells ADD COLUMN note TEXT")

    monkeypatch.setattr(ledger_module, "MIGRATIONS", (*ledger_module.MIGRATIONS, v2))
    monkeypatch.setattr(ledger_module, "SCHEMA_VERSION", 2)
    with Ledger(filled) as ledger:
        assert ledger.records() == varied_records()
    conn = sqlite3.connect(filled)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 2
        assert "note" in {row[1] for row in conn.execute("PRAGMA table_info(cells)")}
    finally:
        conn.close()


def test_failed_migration_leaves_the_file_as_it_was(
    filled: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE half_done (x)")
        raise sqlite3.OperationalError("simulated failure")

    monkeypatch.setattr(ledger_module, "MIGRATIONS", (*ledger_module.MIGRATIONS, broken))
    monkeypatch.setattr(ledger_module, "SCHEMA_VERSION", 2)
    with pytest.raises(LedgerError, match="simulated failure"):
        Ledger(filled)
    monkeypatch.undo()
    conn = sqlite3.connect(filled)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    finally:
        conn.close()
    assert "half_done" not in tables
    assert read_records(filled) == varied_records()


def test_newer_schema_is_refused_and_untouched(filled: Path) -> None:
    conn = sqlite3.connect(filled)
    conn.execute("PRAGMA journal_mode = DELETE")
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    before = digest(filled)
    with pytest.raises(LedgerVersionError) as caught:
        Ledger(filled)
    message = str(caught.value)
    assert "newer carbonbook (schema 99" in message
    assert "upgrade carbonbook" in message
    assert str(filled) in message
    with pytest.raises(LedgerVersionError, match="schema 99"):
        read_ledger(filled)
    assert digest(filled) == before


# -- reading never writes --------------------------------------------------------------


def test_reading_a_closed_ledger_changes_nothing(filled: Path) -> None:
    before = (digest(filled), filled.stat().st_mtime_ns)
    assert len(read_records(filled)) == 4
    assert read_ledger(filled).height == 4
    assert (digest(filled), filled.stat().st_mtime_ns) == before


def test_reading_beside_a_writer_sees_commits_and_changes_nothing(path: Path) -> None:
    with Ledger(path) as ledger:
        for index in range(3):
            ledger.append(make_record(index))
        wal = path.with_name(path.name + "-wal")
        before = (digest(path), digest(wal), path.stat().st_mtime_ns)
        assert len(read_records(path)) == 3
        assert (digest(path), digest(wal), path.stat().st_mtime_ns) == before
        ledger.append(make_record(3))
        assert len(read_ledger(path)) == 4


def test_reading_a_missing_ledger_creates_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "nothing" / "ledger.sqlite"
    with pytest.raises(LedgerNotFoundError) as caught:
        read_records(missing)
    assert str(caught.value) == (
        f"no ledger at {missing}; set CARBONBOOK_LEDGER or run a metered notebook first"
    )
    assert not missing.parent.exists()


def test_read_ledger_default_path_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CARBONBOOK_LEDGER", str(tmp_path / "absent.sqlite"))
    with pytest.raises(LedgerNotFoundError, match=r"absent\.sqlite"):
        read_ledger()


# -- bad files -------------------------------------------------------------------------


def test_garbage_file_is_corrupt_and_untouched(path: Path) -> None:
    path.write_bytes(bytes(range(256)) * 32)
    before = digest(path)
    for open_it in (Ledger, read_records, read_ledger):
        with pytest.raises(LedgerCorruptError, match=r"is damaged.*Move it away") as caught:
            open_it(path)
        assert str(path) in str(caught.value)
        assert not isinstance(caught.value.__cause__, LedgerError)
    assert digest(path) == before


def test_truncated_ledger_is_corrupt(path: Path) -> None:
    with Ledger(path) as ledger:
        for index in range(400):
            ledger.append(make_record(index, source_preview="x" * 120))
    size = path.stat().st_size
    with path.open("r+b") as handle:
        handle.truncate(size // 2)
    with pytest.raises(LedgerCorruptError, match="damaged"):
        read_records(path)


def test_foreign_database_is_refused_and_untouched(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE users (name TEXT)")
    conn.commit()
    conn.close()
    before = digest(path)
    for open_it in (Ledger, read_records):
        with pytest.raises(LedgerForeignError, match=r"another application.*users") as caught:
            open_it(path)
        assert "not a carbonbook ledger" in str(caught.value)
    assert digest(path) == before


def test_other_application_id_is_foreign(filled: Path) -> None:
    conn = sqlite3.connect(filled)
    conn.execute("PRAGMA application_id = 1234")
    conn.close()
    with pytest.raises(LedgerForeignError, match="application_id 1234"):
        read_records(filled)
    with pytest.raises(LedgerForeignError):
        Ledger(filled)


def test_empty_file_is_not_read_as_an_empty_ledger(path: Path) -> None:
    path.touch()
    with pytest.raises(LedgerForeignError, match="empty database"):
        read_records(path)


def test_directory_path_is_refused(tmp_path: Path) -> None:
    for open_it in (Ledger, read_records):
        with pytest.raises(LedgerError, match="not a regular file"):
            open_it(tmp_path)


def test_path_under_a_file_is_refused(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(
        LedgerError, match=r"cannot create the ledger .*file/ledger.sqlite: .* not a directory"
    ):
        Ledger(blocker / "ledger.sqlite")


# -- permissions, checked as another user when the tests run as root --------------------


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory that another user can enter (pytest's tmp_path is private to root)."""
    directory = Path(tempfile.mkdtemp(prefix="carbonbook-ledger-"))
    directory.chmod(0o755)
    yield directory
    directory.chmod(0o755)
    shutil.rmtree(directory)


def as_other_user(action: Callable[[], list[CellRecord]]) -> tuple[str, str]:
    """Run `action` as an unprivileged user: a forked child as `nobody` when root.

    Returns the name of the exception it raised (or `ok:<number of records>`) and its text.
    """
    if os.geteuid() != 0:
        try:
            return f"ok:{len(action())}", ""
        except LedgerError as exc:
            return type(exc).__name__, str(exc)
    reader, writer = multiprocessing.get_context("fork").Pipe(duplex=False)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        try:
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            try:
                writer.send((f"ok:{len(action())}", ""))
            except LedgerError as exc:
                writer.send((type(exc).__name__, str(exc)))
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    result: tuple[str, str] = reader.recv()
    return result


def test_unreadable_ledger_is_a_permission_error(shared_dir: Path) -> None:
    path = shared_dir / "ledger.sqlite"
    with Ledger(path) as ledger:
        ledger.append(make_record())
    if os.geteuid() != 0:
        path.chmod(0o000)
    kind, message = as_other_user(lambda: read_records(path))
    assert kind == "LedgerPermissionError"
    assert f"cannot read the ledger {path}: permission denied" in message
    kind, message = as_other_user(lambda: Ledger(path).records())
    assert kind == "LedgerPermissionError"
    assert "CARBONBOOK_LEDGER" in message


def test_read_only_directory_is_read_as_immutable(shared_dir: Path) -> None:
    path = shared_dir / "ledger.sqlite"
    with Ledger(path) as ledger:
        ledger.append(make_record())
    path.chmod(0o644)
    shared_dir.chmod(0o555)
    before = sorted(p.name for p in shared_dir.iterdir())
    assert as_other_user(lambda: read_records(path)) == ("ok:1", "")
    assert sorted(p.name for p in shared_dir.iterdir()) == before == ["ledger.sqlite"]


def test_read_only_directory_with_a_log_says_what_to_do(shared_dir: Path) -> None:
    path = shared_dir / "ledger.sqlite"
    source = shared_dir / "writer"
    source.mkdir()
    worker = multiprocessing.get_context("spawn").Process(
        target=_append_then_die, args=(source / "ledger.sqlite",)
    )
    worker.start()
    worker.join(60)
    for name in ("ledger.sqlite", "ledger.sqlite-wal"):
        shutil.copy(source / name, shared_dir / name)
        (shared_dir / name).chmod(0o644)
    shared_dir.chmod(0o555)
    kind, message = as_other_user(lambda: read_records(path))
    assert kind == "LedgerPermissionError"
    assert "ledger.sqlite-wal" in message
    assert "read-only" in message


# -- the frame -------------------------------------------------------------------------


def test_read_ledger_frame(filled: Path) -> None:
    frame = read_ledger(filled)
    assert frame.height == 4
    assert frame.schema["started_at"] == pl.Datetime("us", "UTC")
    assert frame.schema["ended_at"] == pl.Datetime("us", "UTC")
    assert frame.schema["energy_j"] == pl.Float64
    assert frame.schema["execution_count"] == pl.Int64
    assert frame.schema["intensity_year"] == pl.Int64
    assert frame.schema["error"] == pl.String
    domain_columns = [c for c in frame.columns if c.startswith("energy_") and c != "energy_j"]
    assert domain_columns == [
        "energy_lower_j",
        "energy_upper_j",
        "energy_cpu_j",
        "energy_gpu_0_j",
        "energy_gpu_1_j",
        "energy_psys_j",
    ]
    assert frame["energy_cpu_j"].to_list() == [3600.0, 0.0, 0.0, 3600.0]
    assert frame["energy_gpu_0_j"].to_list() == [0.0, 500.0, 0.0, 0.0]
    assert "energy_dram_j" not in frame.columns
    assert frame.columns[-1] == "domains_json"
    second = frame.row(1, named=True)
    assert second["status"] == "error"
    assert second["execution_count"] is None
    assert second["started_at"] == START + timedelta(seconds=20)
    assert json.loads(second["domains_json"])[3]["name"] == "gpu:0"


def test_empty_ledger_frame_has_the_full_schema(path: Path) -> None:
    Ledger(path).close()
    frame = read_ledger(path)
    assert frame.height == 0
    assert frame.columns == [*(c for c in read_ledger_columns()), "domains_json"]
    assert frame.schema["started_at"] == pl.Datetime("us", "UTC")
    assert frame.schema["co2e_g"] == pl.Float64


def read_ledger_columns() -> list[str]:
    return [name for name in CellRecord.__dataclass_fields__ if name != "domains"]


def test_importing_the_ledger_loads_no_polars() -> None:
    code = "import sys, carbonbook.ledger, carbonbook.export; print('polars' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
