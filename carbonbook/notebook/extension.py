"""Metering every cell of an IPython kernel: the hooks, the records, the ledger writes.

`CellMeter` takes a sampler reading before each cell (`pre_run_cell`) and after it
(`post_run_cell`), turns the difference into a `CellRecord`, writes it durably to this
kernel's journal before the next cell can start (the ledger takes it over within a
second, see `carbonbook.ledger_writer`), and shows a summary under the cell. Nothing it
does can raise into the notebook: a failure is logged, shown once as a notice, and the
cell's record is kept in memory until the ledger can take it.
"""

from __future__ import annotations

import atexit
import logging
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from carbonbook.intensity.embedded import (
    Intensity,
    embedded_intensity,
    embedded_pue,
    resolve_zone,
)
from carbonbook.notebook.config import CarbonBook, Settings, resolve_settings
from carbonbook.notebook.display import CellSummary, Notice
from carbonbook.records import CellRecord, RecordKind, Status, record_from_usage
from carbonbook.sampler import Sampler, Snapshot
from carbonbook.usage import usage_between

if TYPE_CHECKING:
    from carbonbook.ledger_writer import LedgerWriter

__all__ = ["CellMeter", "Pending"]

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class Pending:
    """A block being metered: its first reading and what is known about it."""

    start: Snapshot
    started_at_s: float
    source: str
    cell_id: str | None = None


def _display(obj: object) -> None:
    from IPython.display import display

    display(obj)


class CellMeter:
    """Meters the cells of one IPython shell.

    Args:
        shell: the InteractiveShell.
        sampler_factory: returns the started sampler for this kernel's process tree,
            given the sampling period.
        settings: the settings; resolved from the shell's configuration and the
            environment when None.
    """

    def __init__(
        self,
        shell: Any,
        *,
        sampler_factory: Callable[[float], Sampler],
        settings: Settings | None = None,
        session_id: str | None = None,
    ) -> None:
        self.shell = shell
        self.settings = settings or resolve_settings(CarbonBook(parent=shell))
        self.session_id = session_id or uuid.uuid4().hex
        self.records: list[CellRecord] = []
        self._sampler_factory = sampler_factory
        self._sampler: Sampler | None = None
        self._writer: LedgerWriter | None = None
        self._unsaved: list[CellRecord] = []
        self._pending: Pending | None = None
        self._handled_by_magic = False
        self._shown: set[str] = set()
        self.current_execution_count: int | None = None
        self._intensities: dict[
            tuple[str | None, float | None, str | None], tuple[Intensity, float]
        ] = {}
        self.started = False

    # -- lifecycle ------------------------------------------------------------------

    @property
    def sampler(self) -> Sampler:
        """The sampler, started on first use."""
        if self._sampler is None:
            self._sampler = self._sampler_factory(self.settings.sample_period_s)
        return self._sampler

    def start(self) -> None:
        """Start the sampler and register the cell hooks (idempotent)."""
        if self.started:
            return
        self.sampler.snapshot()
        self.shell.events.register("pre_run_cell", self.pre_run_cell)
        self.shell.events.register("post_run_cell", self.post_run_cell)
        atexit.register(self._close_writer)
        self.started = True

    def stop(self) -> None:
        """Remove the hooks, write what is unsaved, close the ledger (idempotent)."""
        if not self.started:
            return
        for name, callback in (
            ("pre_run_cell", self.pre_run_cell),
            ("post_run_cell", self.post_run_cell),
        ):
            try:
                self.shell.events.unregister(name, callback)
            except ValueError:
                logger.debug("hook %s was already removed", name)
        self.started = False
        atexit.unregister(self._close_writer)
        self._close_writer()

    # -- the hooks ------------------------------------------------------------------

    def pre_run_cell(self, info: Any) -> None:
        """Take the reading that starts a cell (never raises)."""
        self._pending = None
        self._handled_by_magic = False
        try:
            # IPython counts a stored cell before running it.
            counted = info.store_history and not info.silent
            self.current_execution_count = self.shell.execution_count - 1 if counted else None
            if not self.settings.auto or info.silent or not info.store_history:
                return
            self._pending = Pending(
                self.sampler.snapshot(),
                time.time(),
                info.raw_cell or "",
                getattr(info, "cell_id", None),
            )
        except Exception as exc:
            self._internal_error(exc)

    def post_run_cell(self, result: Any) -> None:
        """Record and show the cell that just ran (never raises)."""
        pending, self._pending = self._pending, None
        if pending is None or self._handled_by_magic:
            return
        try:
            error = result.error_in_exec or result.error_before_exec
            self.finish(
                pending,
                kind="cell",
                execution_count=result.execution_count,
                status="error" if error is not None else "ok",
                error=type(error).__name__ if error is not None else None,
            )
        except Exception as exc:
            self._internal_error(exc)

    # -- recording ------------------------------------------------------------------

    def begin(self, source: str) -> Pending:
        """Start metering a block now (used by `%%carbon`); marks the cell as handled."""
        self._handled_by_magic = True
        return Pending(self.sampler.snapshot(), time.time(), source)

    def intensity(self, zone: str | None = None) -> tuple[Intensity, float]:
        """The intensity and PUE that apply to a zone (the session's zone when None)."""
        key = (zone or self.settings.zone, self.settings.pue, os.environ.get("CARBONBOOK_ZONE"))
        cached = self._intensities.get(key)
        if cached is None:
            chosen = resolve_zone(zone or self.settings.zone).zone
            pue = self.settings.pue if self.settings.pue is not None else embedded_pue(chosen)
            cached = self._intensities[key] = (embedded_intensity(chosen), pue)
        return cached

    def finish(
        self,
        pending: Pending,
        *,
        kind: RecordKind,
        execution_count: int | None = None,
        label: str | None = None,
        zone: str | None = None,
        status: Status = "ok",
        error: str | None = None,
        show: bool | None = None,
    ) -> CellRecord:
        """Close a block: build its record, save it, show its summary."""
        usage = usage_between(pending.start, self.sampler.snapshot())
        intensity, pue = self.intensity(zone)
        record = record_from_usage(
            usage,
            intensity,
            pue,
            session_id=self.session_id,
            kind=kind,
            started_at_s=pending.started_at_s,
            source=pending.source,
            execution_count=execution_count,
            cell_id=pending.cell_id,
            notebook_path=self.notebook_path(),
            label=label,
            status=status,
            error=error,
        )
        self.records.append(record)
        self._save(record)
        self._show_notices(record)
        if show if show is not None else self._wants_summary(record):
            _display(CellSummary(record))
        return record

    def notebook_path(self) -> str | None:
        """The notebook's path, when the frontend or the environment tells it."""
        namespace = getattr(self.shell, "user_ns", {})
        for key in ("__session__", "__vsc_ipynb_file__"):
            value = namespace.get(key)
            if isinstance(value, str) and value:
                return value
        return os.environ.get("JPY_SESSION_NAME") or None

    def _wants_summary(self, record: CellRecord) -> bool:
        policy = self.settings.show
        if policy == "none":
            return False
        if policy == "all" or record.status == "error":
            return True
        return (
            record.duration_s >= self.settings.show_min_duration_s
            or record.energy_j >= self.settings.show_min_energy_j
        )

    # -- the ledger -----------------------------------------------------------------

    def ledger_target(self) -> Path:
        """The ledger file records go to."""
        if self.settings.ledger:
            return Path(self.settings.ledger).expanduser()
        from carbonbook.ledger import default_ledger_path

        return default_ledger_path()

    def ledger_path(self) -> str:
        """Where records are written, as text."""
        return str(self.ledger_target())

    def writer(self) -> LedgerWriter:
        """The ledger writer, opened on first use and again when the path changes."""
        target = self.ledger_target()
        if self._writer is not None and self._writer.path != target:
            self._unsaved.extend(self._writer.close())
            self._writer = None
        if self._writer is None:
            from carbonbook.ledger_writer import LedgerWriter

            self._writer = LedgerWriter(target, self.session_id)
        return self._writer

    def flush(self) -> None:
        """Commit every record of this session to the ledger now (for reading it back)."""
        if self._writer is not None:
            self._writer.flush()

    def _save(self, record: CellRecord) -> None:
        self._unsaved.append(record)
        try:
            writer = self.writer()
            while self._unsaved:
                writer.write(self._unsaved[0])
                self._unsaved.pop(0)
            if writer.error is not None:
                raise writer.error
        except Exception as exc:
            waiting = len(self._unsaved) + len(self._writer.unsaved if self._writer else [])
            self.notice(
                "ledger",
                f"could not write the ledger ({exc}). {waiting} record(s) wait in memory "
                "and are written when the ledger can be opened again; "
                "`%carbon export PATH` saves them now.",
            )

    def _close_writer(self) -> None:
        if self._writer is not None:
            try:
                self._unsaved.extend(self._writer.close())
            except Exception:
                logger.debug("closing the ledger writer failed", exc_info=True)
            self._writer = None

    # -- messages -------------------------------------------------------------------

    def notice(self, key: str, text: str) -> None:
        """Show a message once per session (per key)."""
        if key in self._shown:
            return
        self._shown.add(key)
        logger.info("%s", text)
        try:
            _display(Notice(text))
        except Exception:
            logger.debug("could not display a notice", exc_info=True)

    def _show_notices(self, record: CellRecord) -> None:
        for problem in self.sampler.problems:
            self.notice(f"problem:{problem}", problem)
        if record.intensity_basis == "world average":
            self.notice(
                "zone",
                f"grid zone unknown: CO₂e uses the world average "
                f"({record.intensity_g_per_kwh:.0f} g/kWh). Set it with `%carbon zone FR` "
                "or CARBONBOOK_ZONE.",
            )

    def _internal_error(self, exc: BaseException) -> None:
        logger.debug("carbonbook internal error", exc_info=exc)
        self.notice(
            f"internal:{type(exc).__name__}",
            f"metering skipped a cell after an internal error ({type(exc).__name__}: {exc}); "
            "your code ran normally.",
        )
