"""Which meters this machine has, and the sampler that reads them for this process.

`detect()` finds what can be measured: RAPL counters, NVIDIA GPUs, and the estimate model
for whatever the counters do not cover. `build_sampler()` turns a detection into a
sampler for a process tree. `shared_sampler()` is the one sampler of this process, started
on first use and stopped at exit; `carbonbook.track` and the notebook extension use it.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from carbonbook.meters.base import Meter
from carbonbook.meters.cpumodel import CpuPowerModel, detect_power_model
from carbonbook.meters.estimate import EstimateDomain, EstimateMeter
from carbonbook.meters.nvidia import NvidiaOpenResult, open_nvidia_meter
from carbonbook.meters.process import ProcessTree
from carbonbook.meters.rapl import RaplOpenResult, open_rapl_meter, powercap_root
from carbonbook.sampler import DEFAULT_PERIOD_S, Sampler

__all__ = ["Detection", "build_sampler", "detect", "sample_period_s", "shared_sampler"]

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class Detection:
    """What this machine can measure.

    Attributes:
        powercap_root: the powercap tree that was searched.
        rapl: the RAPL result: a meter, or why there is none.
        nvidia: the NVIDIA result: a meter, or why there is none.
        power_model: the CPU power coefficients used for estimates.
        estimated: the domains that will be estimated (`cpu`, `dram`).
        messages: things the user should read once (permission fixes and such).
    """

    powercap_root: Path
    rapl: RaplOpenResult
    nvidia: NvidiaOpenResult
    power_model: CpuPowerModel
    estimated: tuple[EstimateDomain, ...]
    messages: list[str] = field(default_factory=list)

    def meters(self) -> list[Meter]:
        """The meters to read: the counters found plus an estimate for the rest."""
        meters: list[Meter] = []
        if self.rapl.meter is not None:
            meters.append(self.rapl.meter)
        if self.nvidia.meter is not None:
            meters.append(self.nvidia.meter)
        if self.estimated:
            meters.append(EstimateMeter(self.power_model, cover=self.estimated))
        return meters


def _estimated_domains(rapl: RaplOpenResult) -> tuple[EstimateDomain, ...]:
    if rapl.meter is None:
        return ("cpu", "dram")
    measured = {info.name for info in rapl.meter.domains()}
    if "psys" in measured:
        return ()
    return tuple(d for d in ("cpu", "dram") if d not in measured)


def detect(
    environ: Mapping[str, str] | None = None,
    *,
    nvml: Any | None = None,
    cpuinfo_path: str = "/proc/cpuinfo",
) -> Detection:
    """Find the meters of this machine. Never raises: absences carry their reasons.

    Args:
        environ: the environment (`CARBONBOOK_POWERCAP_ROOT`, `CUDA_VISIBLE_DEVICES`,
            `CARBONBOOK_NVML=off`); `os.environ` when None.
        nvml: an NVML module to use instead of `pynvml` (a `FakeNvml`, for example).
        cpuinfo_path: the cpuinfo file naming the CPU model.
    """
    env = os.environ if environ is None else environ
    root = powercap_root(env)
    rapl = open_rapl_meter(root)
    if env.get("CARBONBOOK_NVML", "").lower() in ("0", "off", "no", "false"):
        nvidia = NvidiaOpenResult(None, "switched off by CARBONBOOK_NVML")
    else:
        nvidia = open_nvidia_meter(nvml, environ=env)
    messages = []
    if rapl.permission_denied:
        messages.append(rapl.reason)
    return Detection(
        powercap_root=root,
        rapl=rapl,
        nvidia=nvidia,
        power_model=detect_power_model(cpuinfo_path),
        estimated=_estimated_domains(rapl),
        messages=messages,
    )


def sample_period_s(environ: Mapping[str, str] | None = None) -> float:
    """The sampling period: `CARBONBOOK_SAMPLE_PERIOD` (seconds) or the default 0.5 s."""
    env = os.environ if environ is None else environ
    text = env.get("CARBONBOOK_SAMPLE_PERIOD", "")
    if not text:
        return DEFAULT_PERIOD_S
    try:
        period = float(text)
    except ValueError:
        period = 0.0
    if period <= 0 or period > 60:
        logger.warning(
            "CARBONBOOK_SAMPLE_PERIOD=%r is not a number of seconds in (0, 60]; using %s s",
            text,
            DEFAULT_PERIOD_S,
        )
        return DEFAULT_PERIOD_S
    return period


def build_sampler(
    detection: Detection,
    *,
    root_pid: int | None = None,
    period_s: float | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Sampler:
    """A sampler that reads the detected meters for the process tree of `root_pid`.

    Args:
        detection: what `detect` found.
        root_pid: the root of the measured process tree; this process when None.
        period_s: the sampling period; `CARBONBOOK_SAMPLE_PERIOD` or 0.5 s when None.
        clock: monotonic seconds, for the sampler and the probe.
    """
    model = detection.power_model

    def fallback(domains: Collection[str]) -> Meter | None:
        cover = [d for d in ("cpu", "dram") if d in domains]
        return EstimateMeter(model, cover=cover) if cover else None  # type: ignore[arg-type]

    return Sampler(
        detection.meters(),
        ProcessTree(root_pid, clock=clock),
        period_s=sample_period_s() if period_s is None else period_s,
        fallback=fallback,
        clock=clock,
    )


_shared_lock = threading.Lock()
_shared: Sampler | None = None
_shared_detection: Detection | None = None
_atexit_registered = False


def shared_sampler(period_s: float | None = None) -> Sampler:
    """This process's sampler, detected, built and started on first use.

    Args:
        period_s: the sampling period to use from now on; unchanged when None.
    """
    global _shared, _shared_detection, _atexit_registered
    with _shared_lock:
        if _shared is None:
            _shared_detection = detect()
            for message in _shared_detection.messages:
                logger.warning("%s", message)
            _shared = build_sampler(_shared_detection, period_s=period_s)
            _shared.start()
            if not _atexit_registered:
                atexit.register(close_shared_sampler)
                _atexit_registered = True
        else:
            if period_s is not None:
                _shared.set_period(period_s)
            if not _shared.running:
                _shared.start()
        return _shared


def shared_detection() -> Detection | None:
    """The detection behind the shared sampler, once it exists."""
    return _shared_detection


def close_shared_sampler() -> None:
    """Stop the shared sampler and release its meters (a later use builds a new one)."""
    global _shared, _shared_detection
    with _shared_lock:
        if _shared is not None:
            _shared.close()
        _shared = None
        _shared_detection = None
