"""`%load_ext carbonbook` and `%unload_ext carbonbook`.

Loading starts the process's sampler for the kernel's process tree, registers the cell
hooks and the magics, and shows one line saying how this kernel is measured. Loading
twice is harmless; unloading removes every hook and magic and stops the sampler.
"""

from __future__ import annotations

import logging
import os
import uuid
from typing import Any

from carbonbook.notebook.config import CarbonBook, resolve_settings
from carbonbook.notebook.display import Notice
from carbonbook.notebook.extension import CellMeter, _display
from carbonbook.session import close_shared_sampler, shared_detection, shared_sampler

__all__ = ["active_meter", "load", "unload"]

logger = logging.getLogger(__name__)

_meters: dict[int, CellMeter] = {}
_session_ids: dict[int, str] = {}


def active_meter(shell: Any | None = None) -> CellMeter | None:
    """The cell meter of a shell (the current one when None), if the extension is loaded."""
    if shell is None:
        from IPython import get_ipython

        shell = get_ipython()
    return _meters.get(id(shell)) if shell is not None else None


def _banner(meter: CellMeter) -> str:
    sampler = meter.sampler
    by_method: dict[str, list[str]] = {}
    for info in sampler.domains().values():
        if info.additive:
            by_method.setdefault(info.method, []).append(info.name)
    how = "; ".join(f"{', '.join(names)} {method}" for method, names in by_method.items())
    intensity, _ = meter.intensity()
    detection = shared_detection()
    estimate = ""
    if detection is not None and detection.estimated:
        model = detection.power_model
        estimate = f" (estimates: {model.explanation})"
    return (
        f"metering every cell of this kernel (pid {os.getpid()}): {how or 'nothing'}"
        f"{estimate}. Zone {intensity.zone}, {intensity.g_per_kwh:.0f} g CO₂e/kWh "
        f"({intensity.basis}). Ledger: {meter.ledger_path()}. `%carbon` for help."
    )


def load(shell: Any) -> None:
    """Load the extension into a shell. Never raises: a failure is shown, cells run on."""
    key = id(shell)
    existing = _meters.get(key)
    if existing is not None and existing.started:
        return
    try:
        from carbonbook.notebook.magics import CarbonMagics

        settings = resolve_settings(CarbonBook(parent=shell))
        meter = CellMeter(
            shell,
            sampler_factory=shared_sampler,
            settings=settings,
            session_id=_session_ids.setdefault(key, uuid.uuid4().hex),
        )
        meter.start()
        shell.register_magics(CarbonMagics(shell, meter))
        _meters[key] = meter
        detection = shared_detection()
        for message in detection.messages if detection is not None else []:
            meter.notice(f"detect:{message[:40]}", message)
        if not settings.auto:
            meter.notice("auto-off", "auto mode is off: only %%carbon cells are metered.")
        _display(Notice(_banner(meter)))
    except Exception as exc:
        logger.warning("carbonbook could not start", exc_info=True)
        _display(Notice(f"could not start ({type(exc).__name__}: {exc}); cells run unmetered."))


def unload(shell: Any) -> None:
    """Remove the hooks and magics and stop the sampler (harmless when not loaded)."""
    meter = _meters.pop(id(shell), None)
    if meter is not None:
        meter.stop()
    magics = getattr(getattr(shell, "magics_manager", None), "magics", {})
    for kind in ("line", "cell"):
        magics.get(kind, {}).pop("carbon", None)
    close_shared_sampler()
