"""The sampler and `track`: totals, nesting, failures, fallbacks, thread lifecycle."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from carbonbook import track
from carbonbook.errors import MeterError
from carbonbook.meters.base import DomainInfo, EnergyDelta, Interval, Meter
from carbonbook.meters.cpumodel import resolve_power_model
from carbonbook.meters.estimate import EstimateMeter
from carbonbook.meters.fake_powercap import FakePowercapTree
from carbonbook.meters.rapl import open_rapl_meter, require_rapl
from carbonbook.sampler import Sampler
from tests.helpers import ManualClock, ScriptedProbe


class ConstantMeter:
    """A meter drawing a constant power in one domain, that can be made to fail."""

    def __init__(
        self, domain: str = "cpu", power_w: float = 10.0, *, limit_s: float | None = None
    ):
        self.name = f"constant-{domain}"
        self.domain = domain
        self.power_w = power_w
        self.fail_after: int | None = None
        self.reads = 0
        self.closed = False
        self.limit_s = limit_s

    def domains(self) -> Sequence[DomainInfo]:
        return [DomainInfo(self.domain, "measured", self.name)]

    def prime(self, now_s: float) -> None:
        self.reads = 0

    def read(self, interval: Interval) -> Mapping[str, EnergyDelta]:
        self.reads += 1
        if self.fail_after is not None and self.reads > self.fail_after:
            raise MeterError("the fake counter broke")
        energy_j = self.power_w * interval.duration_s
        return {self.domain: EnergyDelta.exact(energy_j, energy_j * interval.cpu_share)}

    def max_interval_s(self) -> float | None:
        return self.limit_s

    def close(self) -> None:
        self.closed = True


def step(sampler: Sampler, clock: ManualClock, probe: ScriptedProbe, seconds: float) -> None:
    clock.advance(seconds)
    probe.busy(machine_s=seconds, subject_s=seconds / 2)
    sampler.sample()


def test_constant_meter_satisfies_the_protocol() -> None:
    assert isinstance(ConstantMeter(), Meter)


def test_nested_and_overlapping_blocks(clock: ManualClock, probe: ScriptedProbe) -> None:
    sampler = Sampler([ConstantMeter(power_w=10.0)], probe, clock=clock)
    outer_block = track("outer", sampler=sampler)
    inner_block = track("inner", sampler=sampler)
    overlap_block = track("overlap", sampler=sampler)

    empty = outer_block.__enter__()
    outer_block.__exit__(None, None, None)
    assert empty.done
    assert empty.host_energy_j == 0.0

    outer = outer_block.__enter__()
    step(sampler, clock, probe, 1.0)
    inner = inner_block.__enter__()
    step(sampler, clock, probe, 2.0)
    overlap = overlap_block.__enter__()
    step(sampler, clock, probe, 3.0)
    inner_block.__exit__(None, None, None)
    step(sampler, clock, probe, 4.0)
    outer_block.__exit__(None, None, None)
    step(sampler, clock, probe, 5.0)
    overlap_block.__exit__(None, None, None)

    assert outer.host_energy_j == pytest.approx(100.0)
    assert inner.host_energy_j == pytest.approx(50.0)
    assert overlap.host_energy_j == pytest.approx(120.0)
    assert outer.energy_j == pytest.approx(50.0)
    assert inner.duration_s == pytest.approx(5.0)
    assert outer.method == "measured"


def test_a_block_between_periodic_reads_is_exact(
    clock: ManualClock, probe: ScriptedProbe
) -> None:
    sampler = Sampler([ConstantMeter(power_w=250.0)], probe, clock=clock)
    sampler.sample()

    with track(sampler=sampler) as run:
        clock.advance(0.010)

    assert run.host_energy_j == pytest.approx(2.5)
    assert run.duration_s == pytest.approx(0.010)


def test_failing_meter_is_switched_off_once_and_estimate_takes_over(
    clock: ManualClock, probe: ScriptedProbe, caplog: pytest.LogCaptureFixture
) -> None:
    broken = ConstantMeter(power_w=10.0)
    broken.fail_after = 2
    model = resolve_power_model("Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz")
    sampler = Sampler(
        [broken],
        probe,
        clock=clock,
        fallback=lambda cover: EstimateMeter(model, cover=list(cover)),  # type: ignore[arg-type]
    )
    sampler.sample()

    with track(sampler=sampler) as run:
        for _ in range(6):
            step(sampler, clock, probe, 1.0)

    assert broken.closed
    assert len(sampler.problems) == 1
    assert "switched off" in sampler.problems[0]
    assert sum("switched off" in r.getMessage() for r in caplog.records) == 1
    assert [m.name for m in sampler.meters] == ["estimate"]
    assert run.methods["cpu"] == "mixed"
    assert run.problems == list(sampler.problems)
    # Two measured seconds at 10 W plus four estimated ones.
    assert run.host_energy_j > 20.0


def test_track_never_raises_into_the_block(clock: ManualClock, probe: ScriptedProbe) -> None:
    class ExplodingSampler(Sampler):
        def snapshot(self):  # type: ignore[no-untyped-def]
            raise RuntimeError("boom")

    sampler = ExplodingSampler([ConstantMeter()], probe, clock=clock)

    with track("safe", sampler=sampler) as run:
        value = 41 + 1

    assert value == 42
    assert run.done
    assert "boom" in run.problems[0]


def test_exceptions_of_the_block_propagate(clock: ManualClock, probe: ScriptedProbe) -> None:
    sampler = Sampler([ConstantMeter()], probe, clock=clock)

    block = track(sampler=sampler)

    def failing_block() -> None:
        with block:
            clock.advance(1.0)
            raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        failing_block()

    run = block.last

    assert run.done
    assert run.host_energy_j == pytest.approx(10.0)


def test_decorator_meters_each_call(clock: ManualClock, probe: ScriptedProbe) -> None:
    sampler = Sampler([ConstantMeter(power_w=4.0)], probe, clock=clock)

    @track(sampler=sampler)
    def work(seconds: float) -> str:
        clock.advance(seconds)
        return "done"

    assert work(1.0) == "done"
    first = work.last  # type: ignore[attr-defined]
    assert work(2.0) == "done"
    second = work.last  # type: ignore[attr-defined]

    assert first.host_energy_j == pytest.approx(4.0)
    assert second.host_energy_j == pytest.approx(8.0)
    assert second.label.endswith("work")


def test_period_is_shortened_for_counters_that_wrap_fast(probe: ScriptedProbe) -> None:
    sampler = Sampler([ConstantMeter(limit_s=0.2)], probe, period_s=0.5)

    assert sampler.period_s == 0.2
    with pytest.raises(ValueError, match="period_s"):
        Sampler([], probe, period_s=0)


def test_history_is_bounded(clock: ManualClock, probe: ScriptedProbe) -> None:
    sampler = Sampler([ConstantMeter(power_w=3.0)], probe, clock=clock, history=100)
    for _ in range(1000):
        step(sampler, clock, probe, 0.5)

    assert len(sampler.history) == 100
    assert sampler.history[-1].host_power_w["cpu"] == pytest.approx(3.0)


def wait_until(condition: object, timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.005)
    return False


def test_thread_start_stop_are_idempotent_and_restartable(probe: ScriptedProbe) -> None:
    meter = ConstantMeter()
    sampler = Sampler([meter], probe, period_s=0.01)

    sampler.start()
    sampler.start()
    threads = [t for t in threading.enumerate() if t.name == "carbonbook-sampler"]
    assert len(threads) == 1
    assert threads[0].daemon
    assert wait_until(lambda: meter.reads >= 3)
    sampler.stop()
    sampler.stop()
    assert not sampler.running
    assert not threads[0].is_alive()

    reads = meter.reads
    sampler.start()
    assert wait_until(lambda: meter.reads > reads)
    sampler.close()
    assert meter.closed


def test_thread_survives_a_meter_failure(probe: ScriptedProbe) -> None:
    broken, healthy = ConstantMeter("cpu"), ConstantMeter("gpu:0")
    broken.fail_after = 1
    sampler = Sampler([broken, healthy], probe, period_s=0.01)

    sampler.start()
    try:
        assert wait_until(lambda: healthy.reads >= 5)
    finally:
        sampler.stop()

    assert sampler.problems
    assert [m.name for m in sampler.meters] == ["constant-gpu:0"]


def test_losing_psys_makes_cpu_and_dram_the_host_figure(
    tmp_path: Path, clock: ManualClock, probe: ScriptedProbe
) -> None:
    tree = FakePowercapTree(tmp_path)
    tree.add_zone("intel-rapl:0", "package-0", power_w=15.0, start_uj=10)
    tree.add_zone("intel-rapl:1", "psys", power_w=22.0, start_uj=40)
    model = resolve_power_model(None)
    sampler = Sampler(
        [require_rapl(open_rapl_meter(tmp_path))],
        probe,
        clock=clock,
        fallback=lambda cover: EstimateMeter(model, cover=list(cover)),  # type: ignore[arg-type]
    )
    sampler.sample()
    tree.write_raw("intel-rapl:0", "")
    tree.write_raw("intel-rapl:1", "")
    for _ in range(25):
        step(sampler, clock, probe, 0.5)

    domains = sampler.domains()
    assert not domains["psys"].additive
    assert domains["cpu"].additive
    assert domains["cpu"].method == "estimated"
