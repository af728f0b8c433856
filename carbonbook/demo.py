"""`carbonbook demo`: run the quickstart notebook in a real kernel and report what it cost.

The notebook runs through papermill, offline, in a kernel started with this Python. The
executed copy is written next to it, and the cells it metered are read back from the
ledger and printed as a table with totals.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

from carbonbook.errors import CarbonbookError
from carbonbook.notebook.display import SessionTable, format_co2e, format_energy
from carbonbook.notebook.kernelspec import this_python_kernelspec
from carbonbook.records import CellRecord

__all__ = ["DemoResult", "find_notebook", "run_demo"]

logger = logging.getLogger(__name__)

REPO_NOTEBOOK = Path("notebooks") / "quickstart.ipynb"
COPY_DIR = Path("carbonbook-demo")


class DemoResult:
    """What a demo run produced: the executed notebook and the records it made."""

    def __init__(self, executed: Path, ledger: Path, records: Sequence[CellRecord]) -> None:
        self.executed = executed
        self.ledger = ledger
        self.records = list(records)

    def report(self) -> str:
        """The per-cell table and the totals, as text for the terminal."""
        table = SessionTable(self.records, title="quickstart.ipynb, cell by cell")
        methods = {r.method for r in self.records}
        lines = [repr(table), ""]
        total_j = sum(r.energy_j for r in self.records)
        total_g = sum(r.co2e_g for r in self.records)
        lines.append(
            f"Total: {format_energy(total_j)}, {format_co2e(total_g)} over "
            f"{len(self.records)} cells."
        )
        if methods - {"measured"}:
            lines.append(
                "These figures are estimated (no readable RAPL counters or GPUs here); each "
                "carries bounds. `carbonbook doctor` says what would let carbonbook measure."
            )
        zones = {(r.zone, r.intensity_basis) for r in self.records}
        for zone, basis in sorted(zones):
            lines.append(f"Zone {zone}: {basis}.")
        lines.append(f"Executed notebook: {self.executed}")
        lines.append(f"Ledger: {self.ledger}")
        return "\n".join(lines)


def find_notebook(cwd: Path | None = None) -> Path:
    """The quickstart to run: `notebooks/quickstart.ipynb` here, or a copy of the packaged
    one in `carbonbook-demo/`."""
    base = Path.cwd() if cwd is None else cwd
    local = base / REPO_NOTEBOOK
    if local.exists():
        return local
    target = base / COPY_DIR / "quickstart.ipynb"
    target.parent.mkdir(parents=True, exist_ok=True)
    packaged = resources.files("carbonbook.examples").joinpath("quickstart.ipynb")
    with resources.as_file(packaged) as source:
        shutil.copyfile(source, target)
    return target


def run_demo(notebook: Path | None = None, *, ledger: Path | None = None) -> DemoResult:
    """Execute the quickstart and collect its records.

    Args:
        notebook: the notebook to run; `find_notebook()` when None.
        ledger: the ledger to write; `CARBONBOOK_LEDGER` or the default when None.

    Raises:
        CarbonbookError: the notebook failed to run (the message says which cell).
    """
    import papermill

    from carbonbook.ledger import default_ledger_path, read_records

    source = (notebook or find_notebook()).absolute()
    executed = source.with_name(source.stem + ".executed.ipynb")
    ledger_path = ledger or Path(os.environ.get("CARBONBOOK_LEDGER") or default_ledger_path())
    started = datetime.now(tz=UTC)

    saved = {key: os.environ.get(key) for key in ("CARBONBOOK_LEDGER", "JPY_SESSION_NAME")}
    os.environ["CARBONBOOK_LEDGER"] = str(ledger_path)
    os.environ["JPY_SESSION_NAME"] = str(source)
    try:
        with this_python_kernelspec(quiet=True) as kernel_name:
            began = time.monotonic()
            papermill.execute_notebook(
                str(source),
                str(executed),
                kernel_name=kernel_name,
                cwd=str(source.parent),
                progress_bar=False,
                log_output=False,
            )
            logger.info("demo ran in %.1f s", time.monotonic() - began)
    except papermill.PapermillExecutionError as exc:
        raise CarbonbookError(
            f"the demo notebook failed in cell {exc.exec_count}: {exc.ename}: {exc.evalue}. "
            f"The executed copy, with the error, is at {executed}."
        ) from None
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

    records = [
        r
        for r in read_records(ledger_path)
        if r.notebook_path == str(source) and r.started_at >= started
    ]
    records.sort(key=lambda r: r.started_at)
    return DemoResult(executed, ledger_path, records)
