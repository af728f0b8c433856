"""RAPL through a fake powercap tree: discovery, domains, wraps, accuracy, failures."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from carbonbook import track
from carbonbook.errors import MeterError, RaplPermissionError
from carbonbook.meters.base import Interval
from carbonbook.meters.fake_powercap import FakePowercapTree, PowercapDriver
from carbonbook.meters.rapl import (
    ASSUMED_RANGE_UJ,
    SysfsReader,
    discover_zones,
    open_rapl_meter,
    powercap_root,
    require_rapl,
)
from carbonbook.sampler import Sampler
from tests.helpers import ManualClock, ScriptedProbe


def server_tree(root: Path, **kwargs: object) -> FakePowercapTree:
    """Two sockets with dram subzones, the layout of a typical Xeon server."""
    tree = FakePowercapTree(root, **kwargs)  # type: ignore[arg-type]
    tree.add_zone("intel-rapl:0", "package-0", power_w=100.0, start_uj=5_000_000)
    tree.add_zone("intel-rapl:0:0", "dram", power_w=10.0, start_uj=7_000_000)
    tree.add_zone("intel-rapl:1", "package-1", power_w=80.0, start_uj=9_000_000)
    tree.add_zone("intel-rapl:1:0", "dram", power_w=8.0, start_uj=11_000_000)
    return tree


def interval(seconds: float, share: float = 1.0) -> Interval:
    return Interval(start_s=0.0, end_s=seconds, cpu_share=share)


def test_discovers_hex_ids_and_reads_names(tmp_path: Path) -> None:
    tree = FakePowercapTree(tmp_path, nested=True)
    for index in range(11):
        tree.add_zone(f"intel-rapl:{index:x}", f"package-{index}", start_uj=index + 1)
    tree.add_zone("intel-rapl:a:0", "dram", start_uj=99)
    tree.add_zone("intel-rapl:0:1", "core", start_uj=98)

    zones = {zone.zone_id: zone for zone in discover_zones(tmp_path)}

    assert "intel-rapl:a" in zones
    assert zones["intel-rapl:a"].name == "package-10"
    assert zones["intel-rapl:a:0"].kind == "dram"
    assert zones["intel-rapl:0:1"].kind == "core"
    assert list(zones)[:3] == ["intel-rapl:0", "intel-rapl:0:1", "intel-rapl:1"]


def test_subzone_numbering_does_not_decide_the_kind(tmp_path: Path) -> None:
    tree = FakePowercapTree(tmp_path)
    tree.add_zone("intel-rapl:0", "package-0", power_w=50.0, start_uj=1)
    tree.add_zone("intel-rapl:0:0", "core", power_w=30.0, start_uj=2)
    tree.add_zone("intel-rapl:0:1", "uncore", power_w=5.0, start_uj=3)
    tree.add_zone("intel-rapl:0:2", "dram", power_w=4.0, start_uj=4)
    meter = require_rapl(open_rapl_meter(tmp_path))

    tree.advance(2.0)
    deltas = meter.read(interval(2.0))

    assert deltas["cpu"].host_j == pytest.approx(100.0)
    assert deltas["core"].host_j == pytest.approx(60.0)
    assert deltas["dram"].host_j == pytest.approx(8.0)
    additive = {d.name for d in meter.domains() if d.additive}
    assert additive == {"cpu", "dram"}


def test_packages_and_dram_add_up_without_psys(tmp_path: Path) -> None:
    tree = server_tree(tmp_path)
    meter = require_rapl(open_rapl_meter(tmp_path))

    tree.advance(1.5)
    deltas = meter.read(interval(1.5, share=0.25))

    assert deltas["cpu"].host_j == pytest.approx(1.5 * 180.0)
    assert deltas["dram"].host_j == pytest.approx(1.5 * 18.0)
    assert deltas["cpu"].attributed_j == pytest.approx(0.25 * 1.5 * 180.0)
    assert deltas["cpu"].attributed_lower_j == deltas["cpu"].attributed_j


def test_psys_is_the_host_figure_when_present(tmp_path: Path) -> None:
    tree = FakePowercapTree(tmp_path)
    tree.add_zone("intel-rapl:0", "package-0", power_w=15.0, start_uj=10)
    tree.add_zone("intel-rapl:0:0", "core", power_w=9.0, start_uj=20)
    tree.add_zone("intel-rapl:0:1", "uncore", power_w=1.0, start_uj=30)
    tree.add_zone("intel-rapl:1", "psys", power_w=22.0, start_uj=40)
    meter = require_rapl(open_rapl_meter(tmp_path))

    info = {d.name: d for d in meter.domains()}

    assert info["psys"].additive
    assert not info["cpu"].additive
    assert not info["core"].additive
    assert "inside psys" in " ".join(info["cpu"].notes)


def test_mmio_duplicate_of_a_package_counts_once(tmp_path: Path) -> None:
    tree = FakePowercapTree(tmp_path)
    tree.add_zone("intel-rapl:0", "package-0", power_w=20.0, start_uj=123)
    tree.add_zone("intel-rapl-mmio:0", "package-0", power_w=20.0, start_uj=123)
    result = open_rapl_meter(tmp_path)
    meter = require_rapl(result)

    tree.advance(1.0)

    assert meter.read(interval(1.0))["cpu"].host_j == pytest.approx(20.0)
    assert (
        "intel-rapl-mmio:0",
        "same domain as the MSR zone named package-0",
    ) in result.skipped


def test_mmio_only_tree_is_read(tmp_path: Path) -> None:
    tree = FakePowercapTree(tmp_path)
    tree.add_zone("intel-rapl-mmio:0", "package-0", power_w=12.0, start_uj=5)
    meter = require_rapl(open_rapl_meter(tmp_path))

    tree.advance(1.0)

    assert meter.read(interval(1.0))["cpu"].host_j == pytest.approx(12.0)


def test_identical_per_die_counters_count_once(tmp_path: Path) -> None:
    tree = FakePowercapTree(tmp_path)
    tree.add_zone("intel-rapl:0", "package-0-die-0", power_w=40.0, start_uj=777_777)
    tree.add_zone("intel-rapl:1", "package-0-die-1", power_w=40.0, start_uj=777_777)
    result = open_rapl_meter(tmp_path)
    meter = require_rapl(result)

    tree.advance(1.0)

    assert meter.read(interval(1.0))["cpu"].host_j == pytest.approx(40.0)
    assert result.skipped[0][0] == "intel-rapl:1"


def test_distinct_dies_both_count(tmp_path: Path) -> None:
    tree = FakePowercapTree(tmp_path)
    tree.add_zone("intel-rapl:0", "package-0-die-0", power_w=40.0, start_uj=1_000)
    tree.add_zone("intel-rapl:1", "package-0-die-1", power_w=30.0, start_uj=2_000)
    meter = require_rapl(open_rapl_meter(tmp_path))

    tree.advance(1.0)

    assert meter.read(interval(1.0))["cpu"].host_j == pytest.approx(70.0)


def test_each_counter_wraps_with_its_own_range(tmp_path: Path) -> None:
    tree = FakePowercapTree(tmp_path)
    tree.add_zone(
        "intel-rapl:0", "package-0", power_w=100.0, range_uj=1_000_000_000, start_uj=1
    )
    tree.add_zone("intel-rapl:0:0", "dram", power_w=10.0, range_uj=65_532_610_987, start_uj=2)
    meter = require_rapl(open_rapl_meter(tmp_path))
    total_cpu_j = 0.0
    total_dram_j = 0.0

    # 100 W over a 1000 J range wraps every 10 s; read every 4 s for 60 s.
    for _ in range(15):
        tree.advance(4.0)
        deltas = meter.read(interval(4.0))
        total_cpu_j += deltas["cpu"].host_j
        total_dram_j += deltas["dram"].host_j

    assert total_cpu_j == pytest.approx(6000.0, rel=1e-6)
    assert total_dram_j == pytest.approx(600.0, rel=1e-6)


def test_missing_range_assumes_the_usual_32_bit_range(tmp_path: Path) -> None:
    tree = FakePowercapTree(tmp_path)
    start = ASSUMED_RANGE_UJ - 3_000_000
    tree.add_zone("intel-rapl:0", "package-0", power_w=5.0, range_uj=None, start_uj=start)
    meter = require_rapl(open_rapl_meter(tmp_path))

    tree.advance(1.0)
    deltas = meter.read(interval(1.0))

    assert deltas["cpu"].host_j == pytest.approx(5.0, rel=1e-6)
    assert "assumed" in " ".join(meter.domains()[0].notes)


def test_garbage_range_is_treated_as_missing(tmp_path: Path) -> None:
    tree = FakePowercapTree(tmp_path)
    tree.add_zone("intel-rapl:0", "package-0", power_w=5.0, raw_range="garbage\n", start_uj=7)
    result = open_rapl_meter(tmp_path)

    assert result.meter is not None
    assert not result.zones[0].range_known


def test_zones_with_garbage_or_empty_counters_are_skipped(tmp_path: Path) -> None:
    tree = FakePowercapTree(tmp_path)
    tree.add_zone("intel-rapl:0", "package-0", power_w=5.0, start_uj=11)
    tree.add_zone("intel-rapl:1", "package-1", power_w=5.0, start_uj=12)
    tree.add_zone("intel-rapl:2", "package-2", power_w=5.0, start_uj=13)
    tree.write_raw("intel-rapl:1", "not a number\n")
    tree.write_raw("intel-rapl:2", "")
    (tmp_path / "intel-rapl:3").mkdir()  # no name, no counter

    result = open_rapl_meter(tmp_path)

    assert [zone.zone_id for zone in require_rapl(result).zones()] == ["intel-rapl:0"]
    assert {zone_id for zone_id, _ in result.skipped} == {"intel-rapl:1", "intel-rapl:2"}


def test_a_bad_read_mid_run_loses_no_energy(tmp_path: Path) -> None:
    tree = FakePowercapTree(tmp_path)
    tree.add_zone("intel-rapl:0", "package-0", power_w=10.0, start_uj=100)
    meter = require_rapl(open_rapl_meter(tmp_path))

    tree.advance(1.0)
    tree.write_raw("intel-rapl:0", "garb")
    first = meter.read(interval(1.0))["cpu"].host_j
    tree.advance(1.0)
    second = meter.read(interval(1.0))["cpu"].host_j

    assert first == 0.0
    assert second == pytest.approx(20.0)


def test_a_counter_that_stays_garbage_raises_meter_error(tmp_path: Path) -> None:
    tree = FakePowercapTree(tmp_path)
    tree.add_zone("intel-rapl:0", "package-0", power_w=10.0, start_uj=100)
    meter = require_rapl(open_rapl_meter(tmp_path))
    tree.write_raw("intel-rapl:0", "")

    for _ in range(19):
        assert meter.read(interval(0.5))["cpu"].host_j == 0.0
    with pytest.raises(MeterError, match="gave no number"):
        meter.read(interval(0.5))


class DenyingReader(SysfsReader):
    """A reader that behaves like a kernel with the PLATYPUS fix for a non-root user."""

    def open(self, path: Path) -> int:
        if path.name == "energy_uj":
            raise PermissionError(13, "Permission denied", str(path))
        return super().open(path)


def test_permission_denied_explains_the_fixes(tmp_path: Path) -> None:
    server_tree(tmp_path)

    result = open_rapl_meter(tmp_path, reader=DenyingReader())

    assert result.meter is None
    assert result.permission_denied
    for fix in ("udev", "sysfs.conf", "container", "CARBONBOOK_POWERCAP_ROOT", "PLATYPUS"):
        assert fix in result.reason
    with pytest.raises(RaplPermissionError):
        require_rapl(result)


def test_no_tree_is_a_reason_not_an_error(tmp_path: Path) -> None:
    result = open_rapl_meter(tmp_path / "missing")

    assert result.meter is None
    assert not result.permission_denied
    assert "no RAPL zones" in result.reason


def test_root_comes_from_the_environment() -> None:
    assert powercap_root({"CARBONBOOK_POWERCAP_ROOT": "/x/y"}) == Path("/x/y")
    assert powercap_root({}) == Path("/sys/class/powercap")


def test_files_stay_open_between_reads(tmp_path: Path) -> None:
    tree = server_tree(tmp_path)
    meter = require_rapl(open_rapl_meter(tmp_path))
    before = len(os.listdir("/proc/self/fd"))

    for _ in range(5):
        tree.advance(0.1)
        meter.read(interval(0.1))

    assert len(os.listdir("/proc/self/fd")) == before
    meter.close()
    assert len(os.listdir("/proc/self/fd")) == before - 4


# -- accuracy against a tree driven at a known power ---------------------------------


def metered_window(
    tree: FakePowercapTree, sampler: Sampler, clock: ManualClock, window_s: float
) -> float:
    """Meter `window_s` of virtual time, with the sampler's periodic reads in between."""
    step_s = sampler.period_s
    with track(sampler=sampler) as run:
        elapsed = 0.0
        while elapsed < window_s - 1e-12:
            dt = min(step_s, window_s - elapsed)
            clock.advance(dt)
            tree.advance(dt)
            elapsed += dt
            if elapsed < window_s - 1e-12:
                sampler.sample()
    assert run.duration_s == pytest.approx(window_s)
    return run.host_energy_j


@pytest.mark.parametrize("window_s", [0.01, 0.1, 1.0, 10.0, 180.0])
def test_energy_within_half_a_percent_over_any_window(
    tmp_path: Path, clock: ManualClock, probe: ScriptedProbe, window_s: float
) -> None:
    tree = server_tree(tmp_path)
    meter = require_rapl(open_rapl_meter(tmp_path))
    sampler = Sampler([meter], probe, clock=clock)
    sampler.snapshot()
    clock.advance(0.3)
    tree.advance(0.3)

    measured_j = metered_window(tree, sampler, clock, window_s)

    truth_j = 198.0 * window_s
    assert abs(measured_j - truth_j) / truth_j < 0.005


def test_several_wraps_at_high_power(
    tmp_path: Path, clock: ManualClock, probe: ScriptedProbe
) -> None:
    tree = FakePowercapTree(tmp_path)
    # 2 kW against a 4295 J range: a wrap every 2.1 s.
    tree.add_zone(
        "intel-rapl:0",
        "package-0",
        power_w=2000.0,
        range_uj=4_294_967_295,
        start_uj=4_000_000_000,
        max_power_uw=2_500_000_000,
    )
    meter = require_rapl(open_rapl_meter(tmp_path))
    sampler = Sampler([meter], probe, clock=clock)
    sampler.snapshot()

    assert sampler.period_s < 4294.967295 / 2500.0

    measured_j = metered_window(tree, sampler, clock, 60.0)

    assert measured_j == pytest.approx(2000.0 * 60.0, rel=0.005)


def test_attributed_energy_follows_the_cpu_share(
    tmp_path: Path, clock: ManualClock, probe: ScriptedProbe
) -> None:
    tree = server_tree(tmp_path)
    sampler = Sampler([require_rapl(open_rapl_meter(tmp_path))], probe, clock=clock)
    sampler.snapshot()

    with track(sampler=sampler) as run:
        for _ in range(10):
            clock.advance(0.5)
            tree.advance(0.5)
            probe.busy(machine_s=1.0, subject_s=0.3)
            sampler.sample()

    assert run.host_energy_j == pytest.approx(198.0 * 5.0, rel=1e-6)
    assert run.energy_j == pytest.approx(0.3 * 198.0 * 5.0, rel=1e-6)
    assert run.by_domain == pytest.approx({"cpu": 0.3 * 900.0, "dram": 0.3 * 90.0})
    assert run.method == "measured"


@pytest.mark.slow
def test_real_time_driver_and_sampler_thread(tmp_path: Path) -> None:
    tree = server_tree(tmp_path)
    sampler = Sampler([require_rapl(open_rapl_meter(tmp_path))], ScriptedProbe(), period_s=0.05)
    with PowercapDriver(tree, step_s=0.0005):
        sampler.start()
        try:
            time.sleep(0.2)
            with track(sampler=sampler) as run:
                time.sleep(3.0)
        finally:
            sampler.stop()

    truth_j = 198.0 * run.duration_s
    assert abs(run.host_energy_j - truth_j) / truth_j < 0.005
    assert not sampler.running
