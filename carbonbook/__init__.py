"""carbonbook: energy and carbon accounting for notebooks, measured where the work runs.

`carbonbook.track()` meters a block of code anywhere; `%load_ext carbonbook` meters every
notebook cell. Importing the package loads only the standard library and psutil.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from carbonbook.errors import (
    CarbonbookError,
    CarbonbookWarning,
    MeterError,
    MeterUnavailableError,
    NvmlError,
    RaplPermissionError,
)
from carbonbook.track import Measurement, track

if TYPE_CHECKING:
    import polars

    from carbonbook.records import CellRecord

__all__ = [
    "CarbonbookError",
    "CarbonbookWarning",
    "Measurement",
    "MeterError",
    "MeterUnavailableError",
    "NvmlError",
    "RaplPermissionError",
    "__version__",
    "emissions",
    "intensity",
    "last_record",
    "load_ipython_extension",
    "read_ledger",
    "shifting",
    "track",
    "unload_ipython_extension",
]

__version__ = "0.1.0.dev0"

# A library never prints through logging's last-resort handler (least of all from the
# sampler's thread); applications and notebooks choose where carbonbook's logs go.
logging.getLogger("carbonbook").addHandler(logging.NullHandler())


def load_ipython_extension(ipython: Any) -> None:
    """`%load_ext carbonbook`: meter every cell of this kernel."""
    from carbonbook.notebook.loader import load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """`%unload_ext carbonbook`: stop metering and remove the hooks and magics."""
    from carbonbook.notebook.loader import unload

    unload(ipython)


def read_ledger(path: str | Path | None = None) -> polars.DataFrame:
    """The ledger as a polars DataFrame, one row per metered cell.

    Args:
        path: the ledger file; `CARBONBOOK_LEDGER` or the default location when None.

    Raises:
        LedgerError: the file is missing, corrupt, not a carbonbook ledger, or newer
            than this carbonbook.
    """
    from carbonbook.ledger import read_ledger as _read_ledger

    return _read_ledger(path)


def last_record(label: str | None = None) -> CellRecord | None:
    """The record of the last metered cell in this kernel (with `label`, if given).

    Returns None when the extension is not loaded or no such cell has run.
    """
    from carbonbook.notebook.loader import active_meter

    meter = active_meter()
    if meter is None:
        return None
    for record in reversed(meter.records):
        if label is None or record.label == label:
            return record
    return None


def emissions(
    path: str | Path | None = None,
    *,
    provider: str | None = None,
    instruments: Any = None,
) -> polars.DataFrame:
    """The ledger's emissions, period by period, with the best intensity available.

    Location-based and market-based Scope 2 for every record; see
    `carbonbook.model.schema` for the columns.

    Args:
        path: the ledger; `CARBONBOOK_LEDGER` or the default location when None.
        provider: an intensity provider to ask (`electricitymaps`, `watttime`,
            `ukgrid`); by default those listed in `CARBONBOOK_PROVIDERS` or whose
            credentials are set, else the embedded annual data (no network).
        instruments: contractual instruments (`carbonbook.model.market.Instruments`)
            or the path of a TOML file declaring them.
    """
    from carbonbook.model.ledger import ledger_emissions

    return ledger_emissions(path, provider=provider, instruments=instruments)


def intensity(
    zone: str,
    start: Any = None,
    end: Any = None,
    *,
    provider: str | None = None,
) -> polars.DataFrame:
    """Grid intensity of a zone, with provenance, as a frame (one row per period).

    Args:
        zone: `FR`, `US-CAL-CISO`, `GB`, `aws:eu-west-3` ...
        start: a datetime or ISO 8601 text (UTC when naive); now when None.
        end: the end of the range; None for the single value at `start`.
        provider: the provider to ask before the embedded data.
    """
    from carbonbook.intensity.service import intensity_frame, parse_when

    def when(value: Any) -> Any:
        return parse_when(value) if isinstance(value, str) else value

    return intensity_frame(zone, when(start), when(end), provider=provider)


def shifting(
    label: str | None = None,
    *,
    notebook: str | None = None,
    start: Any = None,
    end: Any = None,
    zones: Any = None,
    provider: str | None = None,
) -> Any:
    """What the work of a label, a notebook or a period would emit elsewhere or later.

    Returns a report with a `place` table (other zones) and, when a provider gives a
    forecast, a `time` table ("run at 03:00 UTC: -38%").
    """
    from carbonbook.intensity.service import parse_when
    from carbonbook.model.ledger import DEFAULT_ALTERNATIVES, ledger_shifting

    return ledger_shifting(
        label,
        notebook=notebook,
        start=parse_when(start) if isinstance(start, str) else start,
        end=parse_when(end) if isinstance(end, str) else end,
        zones=zones or DEFAULT_ALTERNATIVES,
        provider=provider,
    )
