"""Settings of the notebook extension, and where each one comes from.

In order of precedence: what a magic sets in this session (`%carbon zone FR`), the
IPython or ipykernel configuration (`c.CarbonBook.sample_period = 0.2` in
`ipython_kernel_config.py`), the `CARBONBOOK_*` environment variables, then defaults.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast

from traitlets import Bool, CaselessStrEnum, Float, Unicode
from traitlets.config import Configurable

__all__ = ["CarbonBook", "Settings", "ShowPolicy", "resolve_settings"]

logger = logging.getLogger(__name__)

ShowPolicy = Literal["all", "auto", "none"]

DEFAULT_MIN_DURATION_S = 1.0
DEFAULT_MIN_ENERGY_J = 100.0


class CarbonBook(Configurable):
    """Configuration of carbonbook in IPython and Jupyter kernels.

    Every trait left unset (None) falls back to its `CARBONBOOK_*` environment variable,
    then to the default.
    """

    auto = Bool(
        None, allow_none=True, help="Meter every cell (default True; CARBONBOOK_AUTO)."
    ).tag(config=True)
    show = CaselessStrEnum(
        ["all", "auto", "none"],
        default_value=None,
        allow_none=True,
        help=(
            "Which cells show a summary: all, auto (cells over show_min_duration or "
            "show_min_energy, and failed ones), or none (default auto; CARBONBOOK_SHOW)."
        ),
    ).tag(config=True)
    show_min_duration = Float(
        None, allow_none=True, help="Seconds from which auto shows a cell (default 1.0)."
    ).tag(config=True)
    show_min_energy = Float(
        None, allow_none=True, help="Joules from which auto shows a cell (default 100)."
    ).tag(config=True)
    sample_period = Float(
        None, allow_none=True, help="Sampler period in seconds (default 0.5)."
    ).tag(config=True)
    zone = Unicode(None, allow_none=True, help="Grid zone (CARBONBOOK_ZONE).").tag(config=True)
    ledger = Unicode(None, allow_none=True, help="Ledger file (CARBONBOOK_LEDGER).").tag(
        config=True
    )
    pue = Float(None, allow_none=True, help="PUE to apply (default: 1.0, or the cloud's).").tag(
        config=True
    )


@dataclass(slots=True)
class Settings:
    """The settings in force. Magics change these for the session.

    Attributes:
        auto: meter every cell.
        show: which cells show a summary.
        show_min_duration_s: with `auto`, the duration from which a cell shows one.
        show_min_energy_j: with `auto`, the energy from which a cell shows one.
        sample_period_s: the sampler period.
        zone: the grid zone asked for, or None to detect it.
        ledger: the ledger path, or None for the default.
        pue: the PUE to apply, or None for the zone's.
    """

    auto: bool = True
    show: ShowPolicy = "auto"
    show_min_duration_s: float = DEFAULT_MIN_DURATION_S
    show_min_energy_j: float = DEFAULT_MIN_ENERGY_J
    sample_period_s: float = 0.5
    zone: str | None = None
    ledger: str | None = None
    pue: float | None = None


def _env_bool(env: Mapping[str, str], name: str) -> bool | None:
    text = env.get(name, "").strip().lower()
    if not text:
        return None
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    logger.warning("%s=%r is not on/off; ignoring it", name, text)
    return None


def _env_float(env: Mapping[str, str], name: str, low: float, high: float) -> float | None:
    text = env.get(name, "").strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not low <= value <= high:
        logger.warning("%s=%r is not a number in [%s, %s]; ignoring it", name, text, low, high)
        return None
    return value


def _first(*values: Any) -> Any:
    return next((value for value in values if value is not None), None)


def resolve_settings(
    config: CarbonBook | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Combine configuration, environment and defaults into the settings in force."""
    env = os.environ if environ is None else environ
    defaults = Settings()
    show_env = env.get("CARBONBOOK_SHOW", "").strip().lower() or None
    if show_env not in (None, "all", "auto", "none"):
        logger.warning("CARBONBOOK_SHOW=%r is not all, auto or none; ignoring it", show_env)
        show_env = None
    cfg = config
    show = _first(cfg.show.lower() if cfg and cfg.show else None, show_env, defaults.show)
    return Settings(
        auto=_first(cfg.auto if cfg else None, _env_bool(env, "CARBONBOOK_AUTO"), True),
        show=cast(ShowPolicy, show),
        show_min_duration_s=_first(
            cfg.show_min_duration if cfg else None,
            _env_float(env, "CARBONBOOK_SHOW_MIN_DURATION", 0.0, 1e9),
            defaults.show_min_duration_s,
        ),
        show_min_energy_j=_first(
            cfg.show_min_energy if cfg else None,
            _env_float(env, "CARBONBOOK_SHOW_MIN_ENERGY", 0.0, 1e12),
            defaults.show_min_energy_j,
        ),
        sample_period_s=_first(
            cfg.sample_period if cfg else None,
            _env_float(env, "CARBONBOOK_SAMPLE_PERIOD", 0.001, 60.0),
            defaults.sample_period_s,
        ),
        zone=_first(cfg.zone if cfg else None, env.get("CARBONBOOK_ZONE") or None),
        ledger=_first(cfg.ledger if cfg else None, env.get("CARBONBOOK_LEDGER") or None),
        pue=_first(cfg.pue if cfg else None, _env_float(env, "CARBONBOOK_PUE", 1.0, 3.0)),
    )
