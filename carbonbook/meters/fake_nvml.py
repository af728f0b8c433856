"""A stand-in for the `pynvml` module, for tests and for machines without an NVIDIA GPU.

`FakeNvml` answers the NVML calls that carbonbook's NVIDIA meter makes, with the names,
argument order, return shapes and error codes of nvidia-ml-py 13.x. It simulates boards
(`FakeGpu`) whose energy counter is the integral of their power draw over the time of an
injectable clock, so a demo notebook or a test can say "draw 250 W for 3 s" and read back
exactly 750 J. Calls can be made to fail on demand (a GPU lost mid-run, a driver that is
not loaded) to show how the meter copes.

Example:
    >>> clock = FakeClock()
    >>> nvml = FakeNvml([FakeGpu(power_w=250.0)], clock=clock)
    >>> nvml.nvmlInit()
    >>> handle = nvml.nvmlDeviceGetHandleByIndex(0)
    >>> clock.advance(3.0)
    >>> nvml.nvmlDeviceGetTotalEnergyConsumption(handle)
    750000

Units: watts (`_w`), millijoules and milliwatts as NVML returns them, seconds on the clock,
microseconds for NVML sample timestamps.
"""

# The method and attribute names mirror pynvml's mixedCase API on purpose.
# ruff: noqa: N802, N803, N815

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

__all__ = [
    "FakeClock",
    "FakeGpu",
    "FakeHandle",
    "FakeNvml",
    "FakeProcess",
    "FakeProcessInfo",
    "FakeUtilizationSample",
    "NVMLError",
]

NVML_SUCCESS = 0
NVML_ERROR_UNINITIALIZED = 1
NVML_ERROR_INVALID_ARGUMENT = 2
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_NO_PERMISSION = 4
NVML_ERROR_ALREADY_INITIALIZED = 5
NVML_ERROR_NOT_FOUND = 6
NVML_ERROR_INSUFFICIENT_SIZE = 7
NVML_ERROR_INSUFFICIENT_POWER = 8
NVML_ERROR_DRIVER_NOT_LOADED = 9
NVML_ERROR_TIMEOUT = 10
NVML_ERROR_IRQ_ISSUE = 11
NVML_ERROR_LIBRARY_NOT_FOUND = 12
NVML_ERROR_FUNCTION_NOT_FOUND = 13
NVML_ERROR_CORRUPTED_INFOROM = 14
NVML_ERROR_GPU_IS_LOST = 15
NVML_ERROR_RESET_REQUIRED = 16
NVML_ERROR_OPERATING_SYSTEM = 17
NVML_ERROR_LIB_RM_VERSION_MISMATCH = 18
NVML_ERROR_IN_USE = 19
NVML_ERROR_MEMORY = 20
NVML_ERROR_NO_DATA = 21
NVML_ERROR_GPU_NOT_FOUND = 28
NVML_ERROR_UNKNOWN = 999
NVML_DEVICE_MIG_DISABLE = 0
NVML_DEVICE_MIG_ENABLE = 1

_ERROR_TEXT = {
    NVML_ERROR_UNINITIALIZED: "Uninitialized",
    NVML_ERROR_INVALID_ARGUMENT: "Invalid Argument",
    NVML_ERROR_NOT_SUPPORTED: "Not Supported",
    NVML_ERROR_NO_PERMISSION: "Insufficient Permissions",
    NVML_ERROR_NOT_FOUND: "Not Found",
    NVML_ERROR_DRIVER_NOT_LOADED: "Driver Not Loaded",
    NVML_ERROR_LIBRARY_NOT_FOUND: "NVML Shared Library Not Found",
    NVML_ERROR_GPU_IS_LOST: "GPU is lost",
    NVML_ERROR_RESET_REQUIRED: "GPU requires restart",
    NVML_ERROR_UNKNOWN: "Unknown Error",
}


class NVMLError(Exception):
    """The error every fake NVML call raises, shaped like `pynvml.NVMLError`.

    Attributes:
        value: the NVML return code (one of the `NVML_ERROR_*` constants).
    """

    def __init__(self, value: int) -> None:
        super().__init__(value)
        self.value = value

    def __str__(self) -> str:
        return _ERROR_TEXT.get(self.value, f"NVML Error with code {self.value}")


class FakeClock:
    """A clock that moves only when told to; pass it as `FakeNvml(clock=...)`.

    Args:
        start_s: the time the clock shows at first, in seconds.
    """

    def __init__(self, start_s: float = 0.0) -> None:
        self.now_s = start_s

    def __call__(self) -> float:
        """Return the current time in seconds."""
        return self.now_s

    def advance(self, seconds: float) -> float:
        """Move the clock forward by `seconds` and return the new time."""
        self.now_s += seconds
        return self.now_s


@dataclass
class FakeProcess:
    """A process holding a compute context on a fake GPU.

    Attributes:
        pid: its process id, as NVML reports it (a host pid).
        sm_util: the share of the streaming multiprocessors it keeps busy, in percent.
        used_gpu_memory_bytes: the device memory it holds.
    """

    pid: int
    sm_util: int = 0
    used_gpu_memory_bytes: int = 0


@dataclass
class FakeGpu:
    """One simulated board.

    Attributes:
        name: the product name NVML reports.
        uuid: the board UUID (`GPU-...`).
        power_w: its present draw in watts. Change it through `FakeNvml.set_power` so
            that the energy counter integrates the old value up to that moment.
        supports_energy_counter: False for boards older than Volta, whose
            `nvmlDeviceGetTotalEnergyConsumption` answers NOT_SUPPORTED.
        supports_power: False for boards that report no power at all.
        mig_capable: whether the board can be split into MIG instances (A100, H100...).
        mig_enabled: whether MIG mode is on; implies `mig_capable`.
        mig_uuids: the UUIDs (`MIG-...`) of its MIG instances.
        processes: the processes that hold a compute context on it now.
    """

    name: str = "NVIDIA A100-SXM4-40GB"
    uuid: str = "GPU-00000000-0000-0000-0000-000000000000"
    power_w: float = 60.0
    supports_energy_counter: bool = True
    supports_power: bool = True
    mig_capable: bool = False
    mig_enabled: bool = False
    mig_uuids: tuple[str, ...] = ()
    processes: list[FakeProcess] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class FakeHandle:
    """An opaque device handle; `mig_slot` is set for a MIG instance's handle."""

    index: int
    mig_slot: int | None = None


@dataclass(frozen=True, slots=True)
class FakeProcessInfo:
    """What `nvmlDeviceGetComputeRunningProcesses` returns for one process."""

    pid: int
    usedGpuMemory: int | None
    gpuInstanceId: int = 0xFFFFFFFF
    computeInstanceId: int = 0xFFFFFFFF


@dataclass(frozen=True, slots=True)
class FakeUtilizationSample:
    """What `nvmlDeviceGetProcessUtilization` returns for one sample (percentages)."""

    pid: int
    timeStamp: int
    smUtil: int
    memUtil: int = 0
    encUtil: int = 0
    decUtil: int = 0


class FakeNvml:
    """An object that stands in for the `pynvml` module.

    Pass an instance wherever carbonbook accepts an `nvml` module, for example
    `open_nvidia_meter(nvml=FakeNvml([FakeGpu()]))`. Device calls made before
    `nvmlInit` or after the matching `nvmlShutdown` raise UNINITIALIZED, as NVML does.

    Args:
        gpus: the boards, in NVML index order.
        clock: the time source in seconds that drives the energy counters; a
            `FakeClock` for tests, `time.monotonic` (the default) for a live demo.
        driver_version: what `nvmlSystemGetDriverVersion` returns.
        init_error: an `NVML_ERROR_*` code that `nvmlInit` raises, to play a machine
            without a driver (see `without_driver`).

    Attributes:
        gpus: the simulated boards (mutable: add processes, switch MIG on...).
        calls: how many times each NVML function was called, by name.
    """

    NVMLError = NVMLError
    NVML_SUCCESS = NVML_SUCCESS
    NVML_ERROR_UNINITIALIZED = NVML_ERROR_UNINITIALIZED
    NVML_ERROR_INVALID_ARGUMENT = NVML_ERROR_INVALID_ARGUMENT
    NVML_ERROR_NOT_SUPPORTED = NVML_ERROR_NOT_SUPPORTED
    NVML_ERROR_NO_PERMISSION = NVML_ERROR_NO_PERMISSION
    NVML_ERROR_ALREADY_INITIALIZED = NVML_ERROR_ALREADY_INITIALIZED
    NVML_ERROR_NOT_FOUND = NVML_ERROR_NOT_FOUND
    NVML_ERROR_INSUFFICIENT_SIZE = NVML_ERROR_INSUFFICIENT_SIZE
    NVML_ERROR_INSUFFICIENT_POWER = NVML_ERROR_INSUFFICIENT_POWER
    NVML_ERROR_DRIVER_NOT_LOADED = NVML_ERROR_DRIVER_NOT_LOADED
    NVML_ERROR_TIMEOUT = NVML_ERROR_TIMEOUT
    NVML_ERROR_IRQ_ISSUE = NVML_ERROR_IRQ_ISSUE
    NVML_ERROR_LIBRARY_NOT_FOUND = NVML_ERROR_LIBRARY_NOT_FOUND
    NVML_ERROR_FUNCTION_NOT_FOUND = NVML_ERROR_FUNCTION_NOT_FOUND
    NVML_ERROR_CORRUPTED_INFOROM = NVML_ERROR_CORRUPTED_INFOROM
    NVML_ERROR_GPU_IS_LOST = NVML_ERROR_GPU_IS_LOST
    NVML_ERROR_RESET_REQUIRED = NVML_ERROR_RESET_REQUIRED
    NVML_ERROR_OPERATING_SYSTEM = NVML_ERROR_OPERATING_SYSTEM
    NVML_ERROR_LIB_RM_VERSION_MISMATCH = NVML_ERROR_LIB_RM_VERSION_MISMATCH
    NVML_ERROR_IN_USE = NVML_ERROR_IN_USE
    NVML_ERROR_MEMORY = NVML_ERROR_MEMORY
    NVML_ERROR_NO_DATA = NVML_ERROR_NO_DATA
    NVML_ERROR_GPU_NOT_FOUND = NVML_ERROR_GPU_NOT_FOUND
    NVML_ERROR_UNKNOWN = NVML_ERROR_UNKNOWN
    NVML_DEVICE_MIG_DISABLE = NVML_DEVICE_MIG_DISABLE
    NVML_DEVICE_MIG_ENABLE = NVML_DEVICE_MIG_ENABLE

    def __init__(
        self,
        gpus: Sequence[FakeGpu] = (),
        *,
        clock: Callable[[], float] = time.monotonic,
        driver_version: str = "550.54.15",
        init_error: int | None = None,
    ) -> None:
        self.gpus = list(gpus)
        self.calls: Counter[str] = Counter()
        self._clock = clock
        self._driver_version = driver_version
        self._init_error = init_error
        self._refcount = 0
        self._failures: dict[tuple[str, int | None], int] = {}
        now_s = clock()
        self._energy_mj = dict.fromkeys(range(len(self.gpus)), 0.0)
        self._integrated_to_s = dict.fromkeys(range(len(self.gpus)), now_s)

    @classmethod
    def without_driver(cls, code: int = NVML_ERROR_LIBRARY_NOT_FOUND) -> FakeNvml:
        """A machine with no usable driver: `nvmlInit` raises `code`.

        Args:
            code: LIBRARY_NOT_FOUND (no libnvidia-ml.so) or DRIVER_NOT_LOADED (the
                library is there, the kernel module is not).
        """
        return cls([], init_error=code)

    # -- controls for tests and demos --------------------------------------------------

    def set_power(self, index: int, power_w: float) -> None:
        """Change a board's draw from now on; the counter keeps the energy so far."""
        self._integrate(index)
        self.gpus[index].power_w = power_w

    def reset_energy_counter(self, index: int) -> None:
        """Set a board's energy counter back to zero, as a driver reload does."""
        self._integrate(index)
        self._energy_mj[index] = 0.0

    def fail(self, call: str, code: int, *, index: int | None = None) -> None:
        """Make a call raise `NVMLError(code)` from now on.

        Args:
            call: the NVML function name, or `*` for every device call.
            code: the `NVML_ERROR_*` code to raise.
            index: only for this board (NVML index); None for every board.
        """
        self._failures[(call, index)] = code

    def lose_gpu(self, index: int) -> None:
        """Make every call about board `index` raise GPU_IS_LOST, as a board off the bus."""
        self.fail("*", NVML_ERROR_GPU_IS_LOST, index=index)

    def recover(self) -> None:
        """Clear every failure set by `fail` or `lose_gpu`."""
        self._failures.clear()

    @property
    def initialised(self) -> bool:
        """Whether `nvmlInit` was called more often than `nvmlShutdown`."""
        return self._refcount > 0

    # -- the NVML API --------------------------------------------------------------------

    def nvmlInit(self) -> None:
        """Initialise the library; raises the configured `init_error`, if any."""
        self._check("nvmlInit", None, needs_init=False)
        if self._init_error is not None:
            raise NVMLError(self._init_error)
        self._refcount += 1

    def nvmlShutdown(self) -> None:
        """Undo one `nvmlInit`; raises UNINITIALIZED when there is none to undo."""
        self._check("nvmlShutdown", None)
        self._refcount -= 1

    def nvmlSystemGetDriverVersion(self) -> str:
        """The driver version string, such as `550.54.15`."""
        self._check("nvmlSystemGetDriverVersion", None)
        return self._driver_version

    def nvmlDeviceGetCount(self) -> int:
        """The number of boards."""
        self._check("nvmlDeviceGetCount", None)
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> FakeHandle:
        """The handle of board `index`; INVALID_ARGUMENT when there is no such board."""
        self._check("nvmlDeviceGetHandleByIndex", index)
        if not 0 <= index < len(self.gpus):
            raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
        return FakeHandle(index)

    def nvmlDeviceGetHandleByUUID(self, uuid: str) -> FakeHandle:
        """The handle of the board or MIG instance with this exact UUID, else NOT_FOUND."""
        self._check("nvmlDeviceGetHandleByUUID", None)
        for index, gpu in enumerate(self.gpus):
            if gpu.uuid == uuid:
                return FakeHandle(index)
            if uuid in gpu.mig_uuids:
                return FakeHandle(index, gpu.mig_uuids.index(uuid))
        raise NVMLError(NVML_ERROR_NOT_FOUND)

    def nvmlDeviceGetIndex(self, handle: FakeHandle) -> int:
        """The NVML index of a board."""
        self._gpu("nvmlDeviceGetIndex", handle)
        return handle.index

    def nvmlDeviceGetName(self, handle: FakeHandle) -> str:
        """The product name."""
        return self._gpu("nvmlDeviceGetName", handle, allow_mig=True).name

    def nvmlDeviceGetUUID(self, handle: FakeHandle) -> str:
        """The UUID of a board (`GPU-...`) or of a MIG instance (`MIG-...`)."""
        gpu = self._gpu("nvmlDeviceGetUUID", handle, allow_mig=True)
        return gpu.uuid if handle.mig_slot is None else gpu.mig_uuids[handle.mig_slot]

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: FakeHandle) -> int:
        """Energy since the counter's origin, in millijoules (Volta and newer)."""
        gpu = self._gpu("nvmlDeviceGetTotalEnergyConsumption", handle)
        if not gpu.supports_energy_counter:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        self._integrate(handle.index)
        # Whole millijoules, as the real counter; the nudge keeps 299.99999 from reading 299.
        return math.floor(self._energy_mj[handle.index] + 1e-6)

    def nvmlDeviceGetPowerUsage(self, handle: FakeHandle) -> int:
        """The present draw, in milliwatts."""
        gpu = self._gpu("nvmlDeviceGetPowerUsage", handle)
        if not gpu.supports_power:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        return round(gpu.power_w * 1000.0)

    def nvmlDeviceGetComputeRunningProcesses(self, handle: FakeHandle) -> list[FakeProcessInfo]:
        """The processes holding a compute context on a board now."""
        gpu = self._gpu("nvmlDeviceGetComputeRunningProcesses", handle)
        return [FakeProcessInfo(p.pid, p.used_gpu_memory_bytes) for p in gpu.processes]

    def nvmlDeviceGetProcessUtilization(
        self, handle: FakeHandle, timeStamp: int
    ) -> list[FakeUtilizationSample]:
        """Per-process utilisation samples newer than `timeStamp` (microseconds).

        The fake takes one sample per process at the moment of the call. Like NVML, it
        raises NOT_FOUND when there is no sample newer than `timeStamp`, and it raises
        NOT_SUPPORTED while MIG mode is on.
        """
        gpu = self._gpu("nvmlDeviceGetProcessUtilization", handle)
        if gpu.mig_enabled:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        now_us = int(self._clock() * 1_000_000)
        if not gpu.processes or now_us <= timeStamp:
            raise NVMLError(NVML_ERROR_NOT_FOUND)
        return [FakeUtilizationSample(p.pid, now_us, p.sm_util) for p in gpu.processes]

    def nvmlDeviceGetMigMode(self, handle: FakeHandle) -> list[int]:
        """`[current, pending]` MIG mode; NOT_SUPPORTED on a board without MIG."""
        gpu = self._gpu("nvmlDeviceGetMigMode", handle)
        if not (gpu.mig_capable or gpu.mig_enabled):
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        mode = NVML_DEVICE_MIG_ENABLE if gpu.mig_enabled else NVML_DEVICE_MIG_DISABLE
        return [mode, mode]

    def nvmlDeviceGetMaxMigDeviceCount(self, handle: FakeHandle) -> int:
        """How many MIG instances a board can hold (here: how many it has)."""
        gpu = self._gpu("nvmlDeviceGetMaxMigDeviceCount", handle)
        return len(gpu.mig_uuids) if gpu.mig_enabled else 0

    def nvmlDeviceGetMigDeviceHandleByIndex(self, handle: FakeHandle, index: int) -> FakeHandle:
        """The handle of MIG instance `index` on a board; NOT_FOUND for an empty slot."""
        gpu = self._gpu("nvmlDeviceGetMigDeviceHandleByIndex", handle)
        if not gpu.mig_enabled or not 0 <= index < len(gpu.mig_uuids):
            raise NVMLError(NVML_ERROR_NOT_FOUND)
        return FakeHandle(handle.index, index)

    # -- internals -----------------------------------------------------------------------

    def _check(self, call: str, index: int | None, *, needs_init: bool = True) -> None:
        """Count a call; raise an injected failure, or UNINITIALIZED before `nvmlInit`."""
        self.calls[call] += 1
        keys = [(call, index), (call, None)] + ([("*", index)] if index is not None else [])
        for key in keys:
            if key in self._failures:
                raise NVMLError(self._failures[key])
        if needs_init and self._refcount <= 0:
            raise NVMLError(NVML_ERROR_UNINITIALIZED)

    def _gpu(self, call: str, handle: FakeHandle, *, allow_mig: bool = False) -> FakeGpu:
        """Check a device call and return its board.

        A MIG instance's handle answers only the calls marked `allow_mig`; the others
        raise NOT_SUPPORTED, since the fake models energy and processes per board.
        """
        self._check(call, handle.index)
        if not 0 <= handle.index < len(self.gpus):
            raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
        if handle.mig_slot is not None and not allow_mig:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        return self.gpus[handle.index]

    def _integrate(self, index: int) -> None:
        """Add the energy drawn since the last integration to a board's counter."""
        now_s = self._clock()
        elapsed_s = max(0.0, now_s - self._integrated_to_s.get(index, now_s))
        energy_mj = self._energy_mj.get(index, 0.0)
        self._energy_mj[index] = energy_mj + self.gpus[index].power_w * elapsed_s * 1000.0
        self._integrated_to_s[index] = now_s
