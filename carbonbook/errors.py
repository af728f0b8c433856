"""Exception types raised by carbonbook.

Hardware and operating-system failures are translated into these types where they
happen, so callers never need to know which library or file a reading came from.
Every message says what went wrong and what the user can do about it.
"""

from __future__ import annotations

__all__ = [
    "CarbonbookError",
    "CarbonbookWarning",
    "MeterError",
    "MeterUnavailableError",
    "NvmlError",
    "RaplPermissionError",
]


class CarbonbookError(Exception):
    """Base class of every error carbonbook raises on purpose."""


class MeterError(CarbonbookError):
    """A meter failed while reading; the sampler switches it off and carries on."""


class MeterUnavailableError(MeterError):
    """A meter cannot work on this machine (no hardware, no driver, nothing to read)."""


class RaplPermissionError(MeterUnavailableError):
    """The powercap energy counters exist but this user may not read them."""


class NvmlError(MeterError):
    """An NVML call failed.

    Attributes:
        code: the NVML return code (`NVML_ERROR_*`), or None when unknown.
        call: the NVML function that failed.
    """

    def __init__(self, message: str, *, code: int | None = None, call: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.call = call


class CarbonbookWarning(UserWarning):
    """Something the user should know once, such as a provider falling back to defaults."""
