"""Energy of NVIDIA GPUs, read through NVML (the `pynvml` module of nvidia-ml-py).

Each visible GPU is one domain, `gpu:<NVML index>`. Boards from Volta on keep a total-
energy counter (mJ) that the meter differences; older boards report only power (mW),
which the meter integrates by the trapezoid rule. The energy is split between the
measured subject and the other processes on the board by who holds compute contexts
and, when the board is shared, by streaming-multiprocessor utilisation.

Every NVML failure becomes `carbonbook.errors.NvmlError` here; no `pynvml` exception
leaves this module. A board that fails while being read (say, a GPU fallen off the bus)
is dropped with one warning and the others are read on; only when every board is gone
does `read` raise, which switches the meter off.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from carbonbook.errors import MeterError, NvmlError
from carbonbook.meters.base import DomainInfo, EnergyDelta, Interval
from carbonbook.meters.cuda_visible import visible_positions

__all__ = [
    "EnergySource",
    "NvidiaGpu",
    "NvidiaMeter",
    "NvidiaOpenResult",
    "open_nvidia_meter",
    "visible_positions",
]

logger = logging.getLogger(__name__)

EnergySource = Literal["counter", "power"]

# NVML return codes; they are part of NVML's C ABI and never change.
_NOT_SUPPORTED = 3
_NO_PERMISSION = 4
_NOT_FOUND = 6
_MIG_ENABLE = 1

_CHECK = "Run `nvidia-smi` to see the state of the GPUs and the driver."
# What to do, by NVML_ERROR_* code: 1 UNINITIALIZED, 3 NOT_SUPPORTED, 4 NO_PERMISSION,
# 9 DRIVER_NOT_LOADED, 12 LIBRARY_NOT_FOUND, 15 GPU_IS_LOST, 16 RESET_REQUIRED,
# 18 LIB_RM_VERSION_MISMATCH.
_ADVICE: dict[int, str] = {
    1: "NVML is not initialised; carbonbook opens it itself, so this is a bug to report.",
    3: "This GPU does not offer the reading; nothing can be done on this board.",
    4: "This user may not query the GPU; ask an administrator for access to /dev/nvidia*.",
    9: "The NVIDIA kernel driver is not loaded: install it or load it (`modprobe nvidia`).",
    12: "libnvidia-ml.so.1 was not found, so there is no NVIDIA driver here. If the machine "
    "has an NVIDIA GPU, install the driver; in a container, start it with GPU access "
    "(the NVIDIA Container Toolkit, `--gpus all`).",
    15: "The GPU stopped answering (fallen off the bus); check `dmesg`, then reset the GPU "
    "or reboot.",
    16: "The GPU needs a reset: `nvidia-smi --gpu-reset`, or reboot.",
    18: "NVML and the kernel driver have different versions, often after a driver upgrade: "
    "reboot or reload the nvidia kernel module.",
}

_UNLISTED = (
    "NVML cannot list the processes on the GPU (%s); its energy is counted as the "
    "subject's, with a lower bound of 0 J."
)
_MIG_NOTE = (
    "MIG is enabled: this is the energy of the whole board, all MIG instances together, "
    "not of one instance."
)


def _translate(exc: Exception, call: str) -> NvmlError:
    """Turn any exception from an NVML call into an NvmlError that says what to do."""
    value = getattr(exc, "value", None)
    code = value if isinstance(value, int) else None
    advice = _ADVICE.get(code, _CHECK) if code is not None else _CHECK
    what = str(exc) or type(exc).__name__
    coded = f" (NVML code {code})" if code is not None else ""
    message = f"NVML call {call} failed: {what}{coded}. {advice}"
    return NvmlError(message, code=code, call=call)


class _Library:
    """The NVML module behind one boundary: every call goes through `call`."""

    def __init__(self, module: Any) -> None:
        self.module = module

    def call(self, name: str, *args: Any) -> Any:
        """Call `module.<name>(*args)`, translating every failure into NvmlError."""
        try:
            return getattr(self.module, name)(*args)
        except Exception as exc:  # pynvml raises NVMLError and, rarely, ctypes errors
            raise _translate(exc, name) from exc

    def shutdown(self) -> None:
        """Call nvmlShutdown; a failure here is logged, since nothing can be done."""
        try:
            self.call("nvmlShutdown")
        except NvmlError as err:
            logger.debug("ignored while closing NVML: %s", err)


@dataclass(frozen=True, slots=True)
class NvidiaGpu:
    """One GPU the meter reads.

    Attributes:
        index: the NVML index (the `N` of the domain `gpu:N`).
        name: the product name, such as `NVIDIA A100-SXM4-40GB`.
        uuid: the board UUID (`GPU-...`).
        energy_source: `counter` for the total-energy counter, `power` for integrated
            power readings.
        mig: True when MIG mode is on; the energy is then that of the whole board.
    """

    index: int
    name: str
    uuid: str
    energy_source: EnergySource
    mig: bool

    @property
    def domain(self) -> str:
        """The domain name, `gpu:<index>`."""
        return f"gpu:{self.index}"


@dataclass(slots=True)
class _Device:
    """A GPU and the readings the next interval is differenced against."""

    gpu: NvidiaGpu
    handle: Any
    last_energy_mj: int | None = None
    last_power_w: float | None = None
    last_time_s: float | None = None
    last_sample_us: int = 0
    warned_backwards: bool = False


class NvidiaMeter:
    """A meter for the NVIDIA GPUs visible to this process; build it with `open_nvidia_meter`.

    Attribution uses the pids NVML reports. Inside a container NVML reports host pids,
    which do not match the container's own, so the subject's share there comes out as
    zero unless the container shares the host's pid namespace.
    """

    name: str = "nvml"

    def __init__(self, library: _Library, devices: Sequence[_Device]) -> None:
        self._library = library
        self._devices = list(devices)
        self._dropped: dict[str, str] = {}
        self._last_error: NvmlError | None = None
        self._warned_attribution = False
        self._closed = False

    @property
    def gpus(self) -> tuple[NvidiaGpu, ...]:
        """Every GPU the meter was built with, dropped ones included."""
        return tuple(device.gpu for device in self._devices)

    @property
    def dropped(self) -> Mapping[str, str]:
        """Domains of GPUs that failed while being read, with the reason."""
        return dict(self._dropped)

    def domains(self) -> Sequence[DomainInfo]:
        """One measured domain per GPU, with how it is read in `notes`."""
        return [_domain_info(device.gpu) for device in self._devices]

    def prime(self, now_s: float) -> None:
        """Take the first counter or power reading of every GPU.

        Args:
            now_s: monotonic time of this reading, in seconds.
        """
        for device in self._live():
            try:
                self._read_energy_j(device, now_s)
                self._sm_by_pid(device)
            except NvmlError as err:
                self._drop(device, err)

    def read(self, interval: Interval) -> Mapping[str, EnergyDelta]:
        """Energy of each GPU since the previous read, and the subject's share of it.

        Returns one exact `EnergyDelta` per GPU still read (bounds widen only when NVML
        cannot list a board's processes). A GPU whose reading fails is dropped, with one
        warning, and left out of the result from then on.

        Raises:
            NvmlError: every GPU has failed; the meter has nothing left to read.
            MeterError: the meter was closed.
        """
        if self._closed:
            raise MeterError("The NVIDIA meter was closed; open a new one to read again.")
        deltas: dict[str, EnergyDelta] = {}
        for device in self._live():
            try:
                host_j = self._read_energy_j(device, interval.end_s)
                deltas[device.gpu.domain] = self._attribute(device, host_j, interval)
            except NvmlError as err:
                self._drop(device, err)
        if not self._live():
            reasons = "; ".join(f"{name}: {why}" for name, why in self._dropped.items())
            last = self._last_error
            raise NvmlError(
                f"Every GPU failed, so the NVIDIA meter stops. {reasons}",
                code=last.code if last else None,
                call=last.call if last else "",
            )
        return deltas

    def max_interval_s(self) -> float | None:
        """The longest gap between reads that keeps the readings correct.

        None when every GPU has an energy counter: the 64-bit millijoule counter would
        take millions of years to wrap. 1 s when some GPU is read by power: the trapezoid
        rule assumes power changes linearly between two readings, while a GPU's draw
        changes within milliseconds as kernels start and stop; reading at least once a
        second keeps the error to what happens inside one second.
        """
        if any(device.gpu.energy_source == "power" for device in self._live()):
            return 1.0
        return None

    def close(self) -> None:
        """Shut NVML down once; calling it again does nothing."""
        if not self._closed:
            self._closed = True
            self._library.shutdown()

    def describe(self) -> list[str]:
        """Lines for `carbonbook doctor`: each GPU, how its energy is read, MIG."""
        lines = []
        for device in self._devices:
            gpu = device.gpu
            how = "energy counter (mJ)" if gpu.energy_source == "counter" else "power (mW)"
            line = f"{gpu.domain}: {gpu.name} ({gpu.uuid}), read from its {how}"
            if gpu.mig:
                line += "; MIG enabled, board-level energy"
            if gpu.domain in self._dropped:
                line += f"; dropped: {self._dropped[gpu.domain]}"
            lines.append(line)
        return lines

    def _live(self) -> list[_Device]:
        """The devices not dropped."""
        return [d for d in self._devices if d.gpu.domain not in self._dropped]

    def _drop(self, device: _Device, err: NvmlError) -> None:
        """Stop reading one device, with one warning."""
        self._dropped[device.gpu.domain] = str(err)
        self._last_error = err
        logger.warning("GPU %s is no longer measured: %s", device.gpu.domain, err)

    def _read_energy_j(self, device: _Device, now_s: float) -> float:
        """Energy since the previous reading of `device` (0 for its first reading)."""
        if device.gpu.energy_source == "counter":
            return self._counter_energy_j(device)
        power_mw = self._library.call("nvmlDeviceGetPowerUsage", device.handle)
        power_w = float(power_mw) / 1000.0
        energy_j = 0.0
        if device.last_power_w is not None and device.last_time_s is not None:
            elapsed_s = max(0.0, now_s - device.last_time_s)
            energy_j = (device.last_power_w + power_w) / 2.0 * elapsed_s
        device.last_power_w, device.last_time_s = power_w, now_s
        return energy_j

    def _counter_energy_j(self, device: _Device) -> float:
        """Difference the total-energy counter; a counter that went back counts as 0."""
        energy_mj = int(
            self._library.call("nvmlDeviceGetTotalEnergyConsumption", device.handle)
        )
        previous_mj, device.last_energy_mj = device.last_energy_mj, energy_mj
        if previous_mj is None:
            return 0.0
        if energy_mj < previous_mj:
            if not device.warned_backwards:
                device.warned_backwards = True
                logger.warning(
                    "The energy counter of %s went back (was the driver reloaded?); "
                    "that interval counts as 0 J and reading goes on from the new value.",
                    device.gpu.domain,
                )
            return 0.0
        return (energy_mj - previous_mj) / 1000.0

    def _attribute(self, device: _Device, host_j: float, interval: Interval) -> EnergyDelta:
        """Split a device's energy between the subject and the other processes on it."""
        try:
            processes = self._library.call(
                "nvmlDeviceGetComputeRunningProcesses", device.handle
            )
        except NvmlError as err:
            if err.code not in (_NOT_SUPPORTED, _NO_PERMISSION):
                raise
            if not self._warned_attribution:
                self._warned_attribution = True
                logger.warning(_UNLISTED, err)
            return EnergyDelta(host_j, host_j, host_j, host_j, 0.0, host_j)

        context_pids = {int(p.pid) for p in processes}
        subject_pids = context_pids & interval.subject_pids
        sm_by_pid = self._sm_by_pid(device) if context_pids else {}
        if not subject_pids:
            return EnergyDelta.exact(host_j, 0.0)
        if subject_pids == context_pids:
            return EnergyDelta.exact(host_j, host_j)

        total_sm = sum(sm_by_pid.values())
        if total_sm > 0:
            share = sum(sm_by_pid.get(pid, 0) for pid in subject_pids) / total_sm
        else:
            # No utilisation samples (or all idle): split by the number of processes.
            share = len(subject_pids) / len(context_pids)
        return EnergyDelta.exact(host_j, host_j * min(1.0, share))

    def _sm_by_pid(self, device: _Device) -> dict[int, int]:
        """SM utilisation summed per pid over the samples since the previous call."""
        try:
            samples = self._library.call(
                "nvmlDeviceGetProcessUtilization", device.handle, device.last_sample_us
            )
        except NvmlError as err:
            # NOT_FOUND means no sample since the last one; code 0 is pynvml's way of
            # saying the same when the driver answers with an empty list.
            if err.code in (0, _NOT_FOUND, _NOT_SUPPORTED, _NO_PERMISSION):
                return {}
            raise
        sm_by_pid: dict[int, int] = {}
        for sample in samples:
            pid = int(sample.pid)
            sm_by_pid[pid] = sm_by_pid.get(pid, 0) + int(sample.smUtil)
            device.last_sample_us = max(device.last_sample_us, int(sample.timeStamp))
        return sm_by_pid


def _domain_info(gpu: NvidiaGpu) -> DomainInfo:
    """The DomainInfo of one GPU."""
    if gpu.energy_source == "counter":
        how = "Measured by the board's total-energy counter (nvmlDeviceGetTotalEnergy"
        how += "Consumption, mJ)."
    else:
        how = "Integrated from power readings (nvmlDeviceGetPowerUsage, mW) by the "
        how += "trapezoid rule between reads; this board has no energy counter."
    notes = (how, _MIG_NOTE) if gpu.mig else (how,)
    source = f"{gpu.name} ({gpu.uuid}), {gpu.energy_source}"
    return DomainInfo(gpu.domain, "measured", "nvml", source=source, notes=notes)


@dataclass(frozen=True, slots=True)
class NvidiaOpenResult:
    """What `open_nvidia_meter` found: a meter, or the reason there is none.

    Attributes:
        meter: the meter, or None when there is nothing to measure.
        reason: why there is no meter (empty when there is one).
        driver_version: the driver version NVML reports, if it could be read.
        skipped: GPUs visible but left out, each with the reason.
    """

    meter: NvidiaMeter | None
    reason: str = ""
    driver_version: str = ""
    skipped: tuple[str, ...] = ()

    def describe(self) -> list[str]:
        """Lines for `carbonbook doctor`."""
        if self.meter is None:
            return [f"NVIDIA GPUs: not measured. {self.reason}", *self.skipped]
        head = f"NVIDIA GPUs: measured through NVML, driver {self.driver_version or '?'}"
        return [head, *self.meter.describe(), *self.skipped]


def open_nvidia_meter(
    nvml: Any | None = None, *, environ: Mapping[str, str] | None = None
) -> NvidiaOpenResult:
    """Open NVML and build a meter for the GPUs this process may use.

    Never raises for a missing or broken GPU stack: the result carries the reason.

    Args:
        nvml: the NVML module; None imports `pynvml`. Tests and demos pass a `FakeNvml`.
        environ: the environment to read `CUDA_VISIBLE_DEVICES` from (default
            `os.environ`); `visible_positions` says how it is read.

    Returns:
        The result; its `meter` is None, with a `reason`, when pynvml, NVML or the
        driver is missing, or when no GPU is visible.
    """
    if nvml is None:
        try:
            nvml = importlib.import_module("pynvml")
        except ImportError as exc:
            reason = f"pynvml cannot be imported ({exc}); install nvidia-ml-py."
            return NvidiaOpenResult(None, reason)
    library = _Library(nvml)
    try:
        library.call("nvmlInit")
    except NvmlError as err:
        return NvidiaOpenResult(None, f"NVML is not available. {err}")

    try:
        result = _detect(library, os.environ if environ is None else environ)
    except NvmlError as err:
        result = NvidiaOpenResult(None, f"NVML could not list the GPUs. {err}")
    if result.meter is None:
        library.shutdown()
        logger.info("No NVIDIA meter: %s", result.reason)
    return result


def _detect(library: _Library, environ: Mapping[str, str]) -> NvidiaOpenResult:
    """Enumerate the boards, apply CUDA_VISIBLE_DEVICES, probe each chosen board."""
    try:
        driver_version = str(library.call("nvmlSystemGetDriverVersion"))
    except NvmlError:
        driver_version = ""
    count = int(library.call("nvmlDeviceGetCount"))
    handles = [library.call("nvmlDeviceGetHandleByIndex", i) for i in range(count)]
    uuids = [str(library.call("nvmlDeviceGetUUID", h)) for h in handles]

    mig_cache: dict[int, list[str]] = {}

    def mig_uuids(position: int) -> list[str]:
        if position not in mig_cache:
            mig_cache[position] = _mig_instance_uuids(library, handles[position])
        return mig_cache[position]

    chosen = visible_positions(environ.get("CUDA_VISIBLE_DEVICES"), uuids, mig_uuids)
    devices: list[_Device] = []
    skipped: list[str] = []
    for position, via_mig in chosen:
        try:
            devices.append(_probe(library, handles[position], uuids[position], via_mig))
        except NvmlError as err:
            skipped.append(f"GPU {uuids[position]} left out: {err}")
    if not devices:
        if count == 0:
            reason = "NVML sees no GPU on this machine."
        elif not chosen:
            shown = environ.get("CUDA_VISIBLE_DEVICES")
            reason = f"CUDA_VISIBLE_DEVICES={shown!r} hides all {count} GPU(s)."
        else:
            reason = "No visible GPU could be read: " + "; ".join(skipped)
        return NvidiaOpenResult(None, reason, driver_version, tuple(skipped))
    for device in devices:
        logger.info("Measuring %s: %s", device.gpu.domain, _domain_info(device.gpu).notes[0])
    return NvidiaOpenResult(NvidiaMeter(library, devices), "", driver_version, tuple(skipped))


def _probe(library: _Library, handle: Any, uuid: str, via_mig: bool) -> _Device:
    """Learn a board's index, name, MIG mode and which energy reading it offers."""
    index = int(library.call("nvmlDeviceGetIndex", handle))
    name = str(library.call("nvmlDeviceGetName", handle))
    try:
        current_mode = library.call("nvmlDeviceGetMigMode", handle)[0]
        mig = via_mig or int(current_mode) == _MIG_ENABLE
    except NvmlError as err:
        if err.code != _NOT_SUPPORTED:
            raise
        mig = via_mig

    source: EnergySource = "counter"
    try:
        library.call("nvmlDeviceGetTotalEnergyConsumption", handle)
    except NvmlError as err:
        if err.code != _NOT_SUPPORTED:
            raise
        source = "power"
        library.call("nvmlDeviceGetPowerUsage", handle)
    return _Device(NvidiaGpu(index, name, uuid, source, mig), handle)


def _mig_instance_uuids(library: _Library, handle: Any) -> list[str]:
    """The UUIDs of the MIG instances on a board (empty when MIG is off or absent)."""
    try:
        slots = int(library.call("nvmlDeviceGetMaxMigDeviceCount", handle))
    except NvmlError:
        return []
    found = []
    for slot in range(slots):
        try:
            instance = library.call("nvmlDeviceGetMigDeviceHandleByIndex", handle, slot)
            found.append(str(library.call("nvmlDeviceGetUUID", instance)))
        except NvmlError:
            continue  # an empty slot
    return found
