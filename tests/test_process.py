"""Process-tree activity and CPU-share attribution, with real processes."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from carbonbook import track
from carbonbook.meters.fake_powercap import FakePowercapTree, PowercapDriver
from carbonbook.meters.process import ProcessTree, read_cgroup
from carbonbook.meters.rapl import open_rapl_meter, require_rapl
from carbonbook.sampler import Sampler

BUSY = "import time\nend = time.monotonic() + {seconds}\nwhile time.monotonic() < end: pass\n"

# A parent that keeps starting short-lived busy workers and reaps each one.
WORKERS = """
import subprocess, sys, time
end = time.monotonic() + {seconds}
while time.monotonic() < end:
    subprocess.run([sys.executable, "-c", {busy!r}])
"""


def spawn_busy(seconds: float) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", BUSY.format(seconds=seconds)])


def test_reads_this_process_precisely() -> None:
    tree = ProcessTree(cgroup=False)
    before = tree.read()
    end = time.process_time() + 0.05
    while time.process_time() < end:
        pass
    after = tree.read()

    assert after.subject_cpu_s - before.subject_cpu_s == pytest.approx(0.05, abs=0.02)
    assert after.subject_rss_bytes > 0
    assert after.machine_used_bytes > 0


def test_short_lived_workers_are_counted() -> None:
    # Workers of 0.1 s each, for 1.5 s; the parent then idles so it can still be read.
    script = WORKERS.format(seconds=1.5, busy=BUSY.format(seconds=0.1))
    parent = subprocess.Popen([sys.executable, "-c", script + "time.sleep(3)\n"])
    try:
        tree = ProcessTree(parent.pid, cgroup=False)
        start = tree.read()
        time.sleep(2.0)
        end = tree.read()
    finally:
        parent.kill()
        parent.wait()

    # No worker is alive at the end: their time reaches the tree through the parent.
    assert end.subject_pids == {parent.pid}
    assert end.subject_cpu_s - start.subject_cpu_s > 1.0


def test_descendants_are_found_again_at_each_reading() -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", WORKERS.format(seconds=2.0, busy=BUSY.format(seconds=0.3))]
    )
    try:
        tree = ProcessTree(parent.pid, cgroup=False)
        first = tree.read()
        seen_children: set[int] = set()
        deadline = time.monotonic() + 1.8
        while time.monotonic() < deadline:
            seen_children |= tree.read().subject_pids - {parent.pid}
            time.sleep(0.05)
        last = tree.read()
    finally:
        parent.kill()
        parent.wait()

    assert len(seen_children) >= 2
    # Busy workers ran for most of 1.8 s; all of it belongs to the tree.
    assert last.subject_cpu_s - first.subject_cpu_s > 1.0


@pytest.mark.slow
def test_share_tracks_cpu_time_with_a_busy_process_outside(tmp_path: Path) -> None:
    tree = FakePowercapTree(tmp_path)
    tree.add_zone("intel-rapl:0", "package-0", power_w=50.0, start_uj=1_000)
    outsider = spawn_busy(4.0)
    subject = spawn_busy(4.0)
    try:
        probe = ProcessTree(subject.pid, cgroup=False)
        sampler = Sampler([require_rapl(open_rapl_meter(tmp_path))], probe, period_s=0.1)
        with PowercapDriver(tree):
            sampler.start()
            time.sleep(0.3)
            with track(sampler=sampler) as shared:
                time.sleep(1.5)
            outsider.kill()
            outsider.wait()
            time.sleep(0.2)
            with track(sampler=sampler) as alone:
                time.sleep(1.5)
            sampler.stop()
    finally:
        for process in (outsider, subject):
            process.kill()
            process.wait()

    assert shared.usage is not None
    assert alone.usage is not None
    for run in (shared, alone):
        assert run.usage is not None
        share = run.energy_j / run.host_energy_j
        machine_busy_s = run.usage.end.machine_busy_s - run.usage.start.machine_busy_s
        # The attributed share is the tree's share of the machine's busy CPU time.
        assert share == pytest.approx(run.cpu_time_s / machine_busy_s, abs=0.1)
    shared_share = shared.energy_j / shared.host_energy_j
    alone_share = alone.energy_j / alone.host_energy_j
    # With the outsider gone, the subject holds a clearly larger share.
    assert alone_share > shared_share + 0.1
    assert shared_share < 0.75


def test_cgroup_v2_usage_and_quota(tmp_path: Path) -> None:
    group = tmp_path / "mount" / "kubepods" / "pod1"
    group.mkdir(parents=True)
    (group / "cpu.stat").write_text("usage_usec 2500000\nuser_usec 2000000\n")
    (group / "cpu.max").write_text("150000 100000\n")
    cgroup_file = tmp_path / "cgroup"
    cgroup_file.write_text("0::/kubepods/pod1\n")

    info = read_cgroup(cgroup_file, tmp_path / "mount")

    assert info is not None
    assert info.cpu_quota_cpus == pytest.approx(1.5)
    activity = ProcessTree(cgroup=info).read()
    assert activity.container_cpu_s == pytest.approx(2.5)


def test_cgroup_v1_or_unlimited(tmp_path: Path) -> None:
    cgroup_file = tmp_path / "cgroup"
    cgroup_file.write_text("4:memory:/x\n1:cpu:/\n")
    assert read_cgroup(cgroup_file, tmp_path) is None

    group = tmp_path / "g"
    group.mkdir()
    (group / "cpu.stat").write_text("usage_usec 1\n")
    (group / "cpu.max").write_text("max 100000\n")
    cgroup_file.write_text("0::/g\n")
    info = read_cgroup(cgroup_file, tmp_path)
    assert info is not None
    assert info.cpu_quota_cpus is None
