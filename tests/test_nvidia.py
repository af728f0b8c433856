"""Tests of the NVIDIA meter, with `FakeNvml` at the NVML seam (no GPU needed)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

import pytest

from carbonbook.errors import MeterError, NvmlError
from carbonbook.meters import fake_nvml
from carbonbook.meters.base import EnergyDelta, Interval, Meter
from carbonbook.meters.fake_nvml import FakeClock, FakeGpu, FakeNvml, FakeProcess, NVMLError
from carbonbook.meters.nvidia import NvidiaMeter, open_nvidia_meter, visible_positions

SUBJECT = 4242
OTHER = 777
UUIDS = (
    "GPU-aaaa1111-0000-0000-0000-000000000000",
    "GPU-bbbb2222-0000-0000-0000-000000000000",
    "GPU-cccc3333-0000-0000-0000-000000000000",
)
MIG_UUID = "MIG-dddd4444-0000-0000-0000-000000000000"


def _gpu(uuid: str = UUIDS[0], **kwargs: object) -> FakeGpu:
    return FakeGpu(uuid=uuid, **kwargs)  # type: ignore[arg-type]


def _open(
    fake: FakeNvml, environ: dict[str, str] | None = None
) -> tuple[NvidiaMeter, FakeNvml]:
    result = open_nvidia_meter(fake, environ={} if environ is None else environ)
    assert result.meter is not None, result.reason
    return result.meter, fake


def _interval(start_s: float, end_s: float, pids: Sequence[int] = (SUBJECT,)) -> Interval:
    return Interval(start_s=start_s, end_s=end_s, subject_pids=frozenset(pids))


def _step(meter: NvidiaMeter, clock: FakeClock, seconds: float) -> dict[str, EnergyDelta]:
    start_s = clock()
    end_s = clock.advance(seconds)
    return dict(meter.read(_interval(start_s, end_s)))


# -- energy ------------------------------------------------------------------------------


def test_energy_counter_gives_exact_energy_over_windows() -> None:
    clock = FakeClock()
    gpu = _gpu(power_w=100.0, processes=[FakeProcess(SUBJECT)])
    meter, fake = _open(FakeNvml([gpu], clock=clock))
    meter.prime(clock())

    assert _step(meter, clock, 2.0)["gpu:0"] == EnergyDelta.exact(200.0, 200.0)
    fake.set_power(0, 300.0)
    assert _step(meter, clock, 0.5)["gpu:0"] == EnergyDelta.exact(150.0, 150.0)
    assert _step(meter, clock, 0.001)["gpu:0"].host_j == pytest.approx(0.3)
    assert meter.max_interval_s() is None


def test_domains_describe_the_gpu_and_how_it_is_read() -> None:
    gpu = _gpu(name="NVIDIA H100 80GB HBM3")
    meter, _ = _open(FakeNvml([gpu], clock=FakeClock()))

    (info,) = meter.domains()
    assert (info.name, info.method, info.meter, info.additive) == (
        "gpu:0",
        "measured",
        "nvml",
        True,
    )
    assert "NVIDIA H100 80GB HBM3" in info.source
    assert UUIDS[0] in info.source
    assert any("total-energy counter" in note for note in info.notes)
    assert isinstance(meter, Meter)
    assert meter.gpus[0].energy_source == "counter"
    assert not meter.gpus[0].mig


def test_counter_going_back_counts_as_zero_and_warns_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    meter, fake = _open(FakeNvml([_gpu(power_w=50.0)], clock=clock))
    meter.prime(clock())
    _step(meter, clock, 10.0)

    with caplog.at_level(logging.WARNING, logger="carbonbook.meters.nvidia"):
        fake.reset_energy_counter(0)
        clock.advance(1.0)
        assert _step(meter, clock, 0.0)["gpu:0"].host_j == 0.0
        assert _step(meter, clock, 2.0)["gpu:0"].host_j == pytest.approx(100.0)
        fake.reset_energy_counter(0)
        clock.advance(1.0)
        assert _step(meter, clock, 0.0)["gpu:0"].host_j == 0.0

    assert sum("went back" in r.getMessage() for r in caplog.records) == 1


def test_pre_volta_constant_power_integrates_exactly() -> None:
    clock = FakeClock()
    gpu = _gpu(name="Tesla P100", power_w=150.0, supports_energy_counter=False)
    meter, _ = _open(FakeNvml([gpu], clock=clock))
    meter.prime(clock())

    assert _step(meter, clock, 0.5)["gpu:0"].host_j == pytest.approx(75.0)
    assert _step(meter, clock, 1.2)["gpu:0"].host_j == pytest.approx(180.0)
    assert meter.gpus[0].energy_source == "power"
    assert meter.max_interval_s() == 1.0
    assert any("trapezoid" in note for note in meter.domains()[0].notes)


def test_pre_volta_ramp_uses_the_trapezoid_rule() -> None:
    clock = FakeClock()
    gpu = _gpu(power_w=100.0, supports_energy_counter=False)
    meter, fake = _open(FakeNvml([gpu], clock=clock))
    meter.prime(clock())

    # Readings of 100 W at 0 s, 200 W at 1 s, 150 W at 3 s.
    clock.advance(1.0)
    fake.set_power(0, 200.0)
    first = meter.read(_interval(0.0, 1.0))["gpu:0"].host_j
    clock.advance(2.0)
    fake.set_power(0, 150.0)
    second = meter.read(_interval(1.0, 3.0))["gpu:0"].host_j

    assert first == pytest.approx(150.0)
    assert second == pytest.approx(350.0)


# -- MIG -------------------------------------------------------------------------------


def test_mig_is_flagged_as_board_level_energy() -> None:
    gpu = _gpu(mig_capable=True, mig_enabled=True, mig_uuids=(MIG_UUID,))
    meter, _ = _open(FakeNvml([gpu, _gpu(UUIDS[1], mig_capable=True)], clock=FakeClock()))

    assert [g.mig for g in meter.gpus] == [True, False]
    notes = meter.domains()[0].notes
    assert any("whole board" in note and "MIG" in note for note in notes)
    assert not any("MIG" in note for note in meter.domains()[1].notes)
    assert "MIG enabled" in meter.describe()[0]


def test_mig_shared_board_splits_by_process_count() -> None:
    clock = FakeClock()
    procs = [FakeProcess(SUBJECT, sm_util=90), FakeProcess(OTHER, sm_util=10)]
    gpu = _gpu(power_w=100.0, mig_enabled=True, processes=procs)
    meter, _ = _open(FakeNvml([gpu], clock=clock))
    meter.prime(clock())

    # No per-process utilisation under MIG, so the documented fallback applies.
    assert _step(meter, clock, 1.0)["gpu:0"] == EnergyDelta.exact(100.0, 50.0)


# -- CUDA_VISIBLE_DEVICES -------------------------------------------------------------


def _three_gpus() -> FakeNvml:
    gpus = [_gpu(uuid) for uuid in UUIDS]
    gpus[2].mig_enabled = True
    gpus[2].mig_uuids = (MIG_UUID,)
    return FakeNvml(gpus, clock=FakeClock())


@pytest.mark.parametrize(
    ("value", "domains"),
    [
        ("0,1,2", ["gpu:0", "gpu:1", "gpu:2"]),
        ("2,0", ["gpu:2", "gpu:0"]),
        (" 1 , 0", ["gpu:1", "gpu:0"]),
        ("1,7,0", ["gpu:1"]),
        ("0,-1,2", ["gpu:0"]),
        ("0,0,1", ["gpu:0"]),
        ("GPU-bbbb", ["gpu:1"]),
        (f"{UUIDS[2]},GPU-aaaa", ["gpu:2", "gpu:0"]),
        ("MIG-dddd", ["gpu:2"]),
        (f"MIG-{UUIDS[1]}/1/0", ["gpu:1"]),
        ("1,GPU-ffff,0", ["gpu:1"]),
    ],
)
def test_cuda_visible_devices_selects_gpus(value: str, domains: list[str]) -> None:
    meter, _ = _open(_three_gpus(), {"CUDA_VISIBLE_DEVICES": value})

    assert [d.name for d in meter.domains()] == domains


def test_cuda_visible_devices_unset_means_every_gpu() -> None:
    meter, _ = _open(_three_gpus(), {})

    assert [g.index for g in meter.gpus] == [0, 1, 2]


def test_mig_entry_flags_the_parent_gpu() -> None:
    meter, _ = _open(_three_gpus(), {"CUDA_VISIBLE_DEVICES": "MIG-GPU-bbbb2222/0/0"})

    assert meter.gpus[0].index == 1
    assert meter.gpus[0].mig


@pytest.mark.parametrize("value", ["", "-1", "-1,0", "7", "GPU-ffff", "nonsense"])
def test_cuda_visible_devices_hiding_everything_means_no_meter(value: str) -> None:
    fake = _three_gpus()
    result = open_nvidia_meter(fake, environ={"CUDA_VISIBLE_DEVICES": value})

    assert result.meter is None
    assert "CUDA_VISIBLE_DEVICES" in result.reason
    assert "hides all 3" in result.reason
    assert not fake.initialised


def test_visible_positions_rejects_ambiguous_uuid_prefix() -> None:
    uuids = ["GPU-ab01", "GPU-ab02"]

    assert visible_positions("GPU-ab", uuids, lambda _: []) == []
    assert visible_positions("GPU-ab02,GPU-ab", uuids, lambda _: []) == [(1, False)]
    assert visible_positions(None, uuids, lambda _: []) == [(0, False), (1, False)]


# -- attribution -----------------------------------------------------------------------


def _attributed(processes: list[FakeProcess], pids: Sequence[int] = (SUBJECT,)) -> float:
    clock = FakeClock()
    meter, _ = _open(FakeNvml([_gpu(power_w=100.0, processes=processes)], clock=clock))
    meter.prime(clock())
    delta = meter.read(_interval(0.0, clock.advance(1.0), pids))["gpu:0"]
    assert delta.host_j == pytest.approx(100.0)
    assert delta.attributed_lower_j == delta.attributed_j == delta.attributed_upper_j
    return delta.attributed_j


def test_only_subject_contexts_get_all_the_energy() -> None:
    processes = [FakeProcess(SUBJECT, sm_util=5), FakeProcess(SUBJECT + 1, sm_util=1)]

    assert _attributed(processes, (SUBJECT, SUBJECT + 1, 1)) == pytest.approx(100.0)


def test_no_subject_context_gets_nothing() -> None:
    assert _attributed([FakeProcess(OTHER, sm_util=80)]) == 0.0
    assert _attributed([]) == 0.0
    assert _attributed([FakeProcess(SUBJECT, sm_util=80)], pids=()) == 0.0


def test_shared_gpu_splits_by_sm_utilisation() -> None:
    processes = [FakeProcess(SUBJECT, sm_util=60), FakeProcess(OTHER, sm_util=20)]

    assert _attributed(processes) == pytest.approx(75.0)


def test_shared_gpu_without_utilisation_splits_by_process_count() -> None:
    processes = [FakeProcess(SUBJECT), FakeProcess(OTHER), FakeProcess(OTHER + 1)]

    assert _attributed(processes) == pytest.approx(100.0 / 3)


def test_sm_split_uses_only_samples_since_the_last_read() -> None:
    clock = FakeClock()
    subject, other = FakeProcess(SUBJECT, sm_util=90), FakeProcess(OTHER, sm_util=10)
    gpu = _gpu(power_w=100.0, processes=[subject, other])
    meter, _ = _open(FakeNvml([gpu], clock=clock))
    meter.prime(clock())

    assert _step(meter, clock, 1.0)["gpu:0"].attributed_j == pytest.approx(90.0)
    subject.sm_util, other.sm_util = 25, 75
    assert _step(meter, clock, 1.0)["gpu:0"].attributed_j == pytest.approx(25.0)


def test_unlistable_processes_widen_the_bounds_and_warn_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    meter, fake = _open(FakeNvml([_gpu(power_w=100.0)], clock=clock))
    fake.fail("nvmlDeviceGetComputeRunningProcesses", fake.NVML_ERROR_NO_PERMISSION)
    meter.prime(clock())

    with caplog.at_level(logging.WARNING, logger="carbonbook.meters.nvidia"):
        first = _step(meter, clock, 1.0)["gpu:0"]
        _step(meter, clock, 1.0)

    assert first == EnergyDelta(100.0, 100.0, 100.0, 100.0, 0.0, 100.0)
    assert sum("cannot list the processes" in r.getMessage() for r in caplog.records) == 1


# -- failures ----------------------------------------------------------------------------


def test_gpu_lost_mid_run_drops_that_gpu_only(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    gpus = [_gpu(UUIDS[0], power_w=100.0), _gpu(UUIDS[1], power_w=200.0)]
    meter, fake = _open(FakeNvml(gpus, clock=clock))
    meter.prime(clock())
    assert set(_step(meter, clock, 1.0)) == {"gpu:0", "gpu:1"}

    with caplog.at_level(logging.WARNING, logger="carbonbook.meters.nvidia"):
        fake.lose_gpu(1)
        after = _step(meter, clock, 1.0)
        again = _step(meter, clock, 1.0)

    assert after == {"gpu:0": EnergyDelta.exact(100.0, 0.0)}
    assert again == {"gpu:0": EnergyDelta.exact(100.0, 0.0)}
    assert "GPU is lost" in meter.dropped["gpu:1"]
    assert "reset" in meter.dropped["gpu:1"]
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1
    assert "dropped" in meter.describe()[1]
    assert [d.name for d in meter.domains()] == ["gpu:0", "gpu:1"]


def test_every_gpu_lost_raises_nvml_error() -> None:
    clock = FakeClock()
    meter, fake = _open(FakeNvml([_gpu()], clock=clock))
    meter.prime(clock())
    fake.lose_gpu(0)

    with pytest.raises(NvmlError) as caught:
        _step(meter, clock, 1.0)

    assert isinstance(caught.value, MeterError)
    assert caught.value.code == fake.NVML_ERROR_GPU_IS_LOST
    assert caught.value.call == "nvmlDeviceGetTotalEnergyConsumption"
    assert "gpu:0" in str(caught.value)


def test_nothing_but_nvml_error_leaves_the_meter() -> None:
    class Broken(FakeNvml):
        broken = False

        # The name overrides pynvml's mixedCase API.
        def nvmlDeviceGetTotalEnergyConsumption(  # noqa: N802
            self, handle: fake_nvml.FakeHandle
        ) -> int:
            if self.broken:
                raise OSError("ctypes call failed")
            return super().nvmlDeviceGetTotalEnergyConsumption(handle)

    clock = FakeClock()
    fake = Broken([_gpu()], clock=clock)
    meter, _ = _open(fake)
    meter.prime(clock())
    fake.broken = True

    with pytest.raises(NvmlError, match="ctypes call failed") as caught:
        _step(meter, clock, 1.0)
    assert caught.value.code is None
    assert "nvidia-smi" in str(caught.value)


def test_one_unreadable_gpu_at_start_is_skipped() -> None:
    fake = FakeNvml([_gpu(UUIDS[0]), _gpu(UUIDS[1])], clock=FakeClock())
    fake.fail("nvmlDeviceGetName", fake.NVML_ERROR_UNKNOWN, index=0)

    result = open_nvidia_meter(fake, environ={})

    assert result.meter is not None
    assert [g.uuid for g in result.meter.gpus] == [UUIDS[1]]
    assert UUIDS[0] in result.skipped[0]
    assert any(UUIDS[0] in line for line in result.describe())


def test_gpu_reporting_neither_energy_nor_power_means_no_meter() -> None:
    gpu = _gpu(supports_energy_counter=False, supports_power=False)
    fake = FakeNvml([gpu], clock=FakeClock())

    result = open_nvidia_meter(fake, environ={})

    assert result.meter is None
    assert "nvmlDeviceGetPowerUsage" in result.reason
    assert fake.calls["nvmlShutdown"] == 1


# -- absence -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "hint"),
    [
        (fake_nvml.NVML_ERROR_DRIVER_NOT_LOADED, "modprobe nvidia"),
        (fake_nvml.NVML_ERROR_LIBRARY_NOT_FOUND, "libnvidia-ml.so.1"),
        (fake_nvml.NVML_ERROR_NO_PERMISSION, "administrator"),
    ],
)
def test_no_driver_means_no_meter_with_a_reason(code: int, hint: str) -> None:
    result = open_nvidia_meter(FakeNvml.without_driver(code), environ={})

    assert result.meter is None
    assert result.reason.startswith("NVML is not available")
    assert hint in result.reason
    assert result.describe()[0].startswith("NVIDIA GPUs: not measured.")


def test_no_gpu_means_no_meter_and_nvml_is_shut_down() -> None:
    fake = FakeNvml([], clock=FakeClock())

    result = open_nvidia_meter(fake, environ={})

    assert result.meter is None
    assert "no GPU" in result.reason
    assert not fake.initialised


def test_missing_pynvml_means_no_meter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)

    result = open_nvidia_meter(environ={})

    assert result.meter is None
    assert "pynvml cannot be imported" in result.reason
    assert "nvidia-ml-py" in result.reason


# -- lifecycle ---------------------------------------------------------------------------


def test_close_shuts_nvml_down_once() -> None:
    meter, fake = _open(FakeNvml([_gpu()], clock=FakeClock()))
    meter.prime(0.0)

    meter.close()
    meter.close()

    assert fake.calls["nvmlShutdown"] == 1
    assert not fake.initialised
    with pytest.raises(MeterError, match="closed"):
        meter.read(_interval(0.0, 1.0))


def test_describe_lists_each_gpu_and_driver() -> None:
    gpus = [_gpu(UUIDS[0]), _gpu(UUIDS[1], supports_energy_counter=False)]
    result = open_nvidia_meter(FakeNvml(gpus, driver_version="535.1"), environ={})

    lines = result.describe()
    assert "driver 535.1" in lines[0]
    assert lines[1].startswith("gpu:0")
    assert "energy counter" in lines[1]
    assert lines[2].startswith("gpu:1")
    assert "power" in lines[2]


# -- the fake itself -------------------------------------------------------------------


def test_fake_constants_match_pynvml() -> None:
    pynvml = pytest.importorskip("pynvml")
    names = [n for n in dir(fake_nvml) if n.startswith(("NVML_ERROR_", "NVML_DEVICE_MIG"))]

    assert len(names) > 20
    for name in names:
        assert getattr(fake_nvml, name) == getattr(pynvml, name), name
        assert getattr(FakeNvml, name) == getattr(pynvml, name), name


def test_fake_refuses_calls_before_init_and_integrates_power() -> None:
    clock = FakeClock(5.0)
    fake = FakeNvml([_gpu(power_w=40.0)], clock=clock)
    with pytest.raises(NVMLError) as caught:
        fake.nvmlDeviceGetCount()
    assert caught.value.value == fake.NVML_ERROR_UNINITIALIZED

    fake.nvmlInit()
    handle = fake.nvmlDeviceGetHandleByUUID(UUIDS[0])
    clock.advance(2.5)
    assert fake.nvmlDeviceGetTotalEnergyConsumption(handle) == 100_000
    assert fake.nvmlDeviceGetPowerUsage(handle) == 40_000
    assert fake.nvmlDeviceGetIndex(handle) == 0


def test_fake_utilisation_returns_only_new_samples() -> None:
    clock = FakeClock(1.0)
    fake = FakeNvml([_gpu(processes=[FakeProcess(9, sm_util=30)])], clock=clock)
    fake.nvmlInit()
    handle = fake.nvmlDeviceGetHandleByIndex(0)

    (sample,) = fake.nvmlDeviceGetProcessUtilization(handle, 0)
    assert (sample.pid, sample.smUtil, sample.timeStamp) == (9, 30, 1_000_000)
    with pytest.raises(NVMLError) as caught:
        fake.nvmlDeviceGetProcessUtilization(handle, sample.timeStamp)
    assert caught.value.value == fake.NVML_ERROR_NOT_FOUND
    assert str(caught.value) == "Not Found"
