"""carbonbook: energy and carbon accounting for notebooks, measured where the work runs.

`carbonbook.track()` meters a block of code anywhere; `%load_ext carbonbook` meters every
notebook cell. Importing the package loads only the standard library and psutil.
"""

from __future__ import annotations

from carbonbook.errors import (
    CarbonbookError,
    MeterError,
    MeterUnavailableError,
    NvmlError,
    RaplPermissionError,
)
from carbonbook.track import Measurement, track

__all__ = [
    "CarbonbookError",
    "Measurement",
    "MeterError",
    "MeterUnavailableError",
    "NvmlError",
    "RaplPermissionError",
    "__version__",
    "track",
]

__version__ = "0.1.0.dev0"
