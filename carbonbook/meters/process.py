"""What the measured process tree and the machine are doing, for attribution.

The subject is a process tree: a root process (the Jupyter kernel, or the program calling
`carbonbook.track`) and all of its descendants, found again at every reading so that
short-lived workers count. Its CPU time is

- the root's own user and system time, plus the time of children it has reaped
  (precise to the microsecond from `getrusage` when the root is this process),
- plus, for every live descendant, its own time and that of the children it has reaped.

When a descendant exits and is reaped, its time moves from the second sum into the first,
so the total only grows. The machine's busy CPU time is `user + nice + system + irq +
softirq` from `/proc/stat` (steal time is another guest's, and guest time is already in
user time). The subject's share of the machine is the ratio of the two over an interval.

In a cgroup v2 container, the container's own `cpu.stat` usage and `cpu.max` quota are
read too and reported beside the machine figures.
"""

from __future__ import annotations

import contextlib
import logging
import os
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import psutil

__all__ = ["Activity", "ActivityProbe", "CgroupInfo", "ProcessTree", "read_cgroup"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Activity:
    """Cumulative counters of the subject and the machine at one instant.

    Attributes:
        subject_cpu_s: CPU time of the subject tree since it started, in seconds.
        machine_busy_s: busy CPU time of the machine since boot, all CPUs together.
        subject_rss_bytes: resident memory of the subject now.
        machine_used_bytes: memory in use on the machine now.
        subject_pids: the processes of the subject now.
        container_cpu_s: the cgroup v2 container's CPU usage, when readable.
    """

    subject_cpu_s: float
    machine_busy_s: float
    subject_rss_bytes: int
    machine_used_bytes: int
    subject_pids: frozenset[int]
    container_cpu_s: float | None = None


class ActivityProbe(Protocol):
    """Anything that reports the subject's and the machine's cumulative activity."""

    logical_cpus: int

    def read(self, *, rescan: bool = True) -> Activity:
        """Cumulative counters now; `rescan=False` allows reusing a recent process list."""
        ...


@dataclass(frozen=True, slots=True)
class CgroupInfo:
    """The cgroup v2 group this process runs in.

    Attributes:
        path: the group's directory under the cgroup mount.
        cpu_quota_cpus: `cpu.max` as a number of CPUs, or None when unlimited.
    """

    path: Path
    cpu_quota_cpus: float | None


def read_cgroup(
    proc_self_cgroup: Path = Path("/proc/self/cgroup"),
    mount: Path = Path("/sys/fs/cgroup"),
) -> CgroupInfo | None:
    """Find this process's cgroup v2 group, or None on cgroup v1 or without cgroups.

    Args:
        proc_self_cgroup: the `/proc/<pid>/cgroup` file to read.
        mount: where the unified hierarchy is mounted.
    """
    try:
        lines = proc_self_cgroup.read_text().splitlines()
    except OSError:
        return None
    relative = next((line[3:] for line in lines if line.startswith("0::")), None)
    if relative is None:
        return None
    path = mount / relative.lstrip("/")
    if not (path / "cpu.stat").exists():
        return None
    quota: float | None = None
    try:
        max_text = (path / "cpu.max").read_text().split()
        if len(max_text) == 2 and max_text[0] != "max":
            quota = int(max_text[0]) / int(max_text[1])
    except (OSError, ValueError, ZeroDivisionError):
        quota = None
    return CgroupInfo(path, quota)


def _cgroup_usage_s(info: CgroupInfo) -> float | None:
    try:
        for line in (info.path / "cpu.stat").read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == "usage_usec":
                return int(value) / 1e6
    except (OSError, ValueError):
        return None
    return None


_CLOCK_TICKS_PER_S = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096

# Finding descendants costs a walk of the tree through the kernel's per-task `children`
# files, or, without them, a read of every process's status (milliseconds). Readings
# taken on demand reuse the last list unless it is older than this.
RESCAN_AFTER_S = 2.0

# Memory in use on the machine feeds only the host DRAM estimate and moves slowly.
MEMINFO_MAX_AGE_S = 1.0


class _KeptFile:
    """A /proc file kept open and re-read from its start with `pread`."""

    def __init__(self, path: str) -> None:
        self._fd: int | None = os.open(path, os.O_RDONLY | os.O_CLOEXEC)

    def read(self, size: int = 4096) -> bytes:
        if self._fd is None:
            raise OSError("file closed")
        return os.pread(self._fd, size, 0)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _busy_from_stat(stat: bytes) -> float:
    """Busy seconds from the aggregate `cpu` line of /proc/stat."""
    fields = stat.split(b"\n", 1)[0].split()
    # cpu user nice system idle iowait irq softirq steal guest guest_nice
    ticks = sum(int(fields[index]) for index in (1, 2, 3, 6, 7) if index < len(fields))
    return ticks / _CLOCK_TICKS_PER_S


def machine_busy_s() -> float:
    """Busy CPU time of the whole machine since boot, in seconds (all CPUs summed)."""
    times = psutil.cpu_times()
    busy = times.user + times.system
    for extra in ("nice", "irq", "softirq"):
        busy += getattr(times, extra, 0.0)
    return float(busy)


def _has_children_files(pid: int) -> bool:
    return os.path.exists(f"/proc/{pid}/task/{pid}/children")


class ProcessTree:
    """Reads the activity of one process tree and of the machine.

    Descendants are found through the kernel's per-task `children` files where the
    kernel has them (a walk of the tree only), else by psutil's scan of every process.

    Args:
        root_pid: the root of the tree; this process when None.
        cgroup: the container group to read too; found automatically when None, and
            skipped when False.
        clock: monotonic seconds, for the age of cached scans.
    """

    def __init__(
        self,
        root_pid: int | None = None,
        *,
        cgroup: CgroupInfo | bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.root_pid = os.getpid() if root_pid is None else root_pid
        self._is_self = self.root_pid == os.getpid()
        self._root = psutil.Process(self.root_pid)
        self._clock = clock
        self._known: dict[int, psutil.Process] = {}
        self._scanned_at: float | None = None
        self._children_files = _has_children_files(self.root_pid)
        if cgroup is None or cgroup is True:
            self.cgroup = read_cgroup()
        elif cgroup is False:
            self.cgroup = None
        else:
            self.cgroup = cgroup
        self.logical_cpus = psutil.cpu_count(logical=True) or 1
        self._stat = _open_quietly("/proc/stat")
        self._statm = _open_quietly(f"/proc/{self.root_pid}/statm")
        self._used_bytes = 0
        self._used_at: float | None = None
        self._rss_bytes: int | None = None

    def _root_cpu_s(self) -> float:
        if self._is_self:
            own = resource.getrusage(resource.RUSAGE_SELF)
            reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
            return own.ru_utime + own.ru_stime + reaped.ru_utime + reaped.ru_stime
        times = self._root.cpu_times()
        return float(times.user + times.system + times.children_user + times.children_system)

    def _root_rss_bytes(self) -> int:
        if self._statm is not None:
            with contextlib.suppress(OSError, ValueError, IndexError):
                return int(self._statm.read(256).split()[1]) * _PAGE_BYTES
        return int(self._root.memory_info().rss)

    def _machine_busy_s(self) -> float:
        if self._stat is not None:
            with contextlib.suppress(OSError, ValueError, IndexError):
                return _busy_from_stat(self._stat.read())
        return machine_busy_s()

    def _machine_used_bytes(self) -> int:
        now = self._clock()
        if self._used_at is None or now - self._used_at >= MEMINFO_MAX_AGE_S:
            memory = psutil.virtual_memory()
            self._used_bytes = int(memory.total - memory.available)
            self._used_at = now
        return self._used_bytes

    def _walk_children_files(self) -> list[int] | None:
        found: list[int] = []
        pending = [self.root_pid]
        try:
            while pending:
                pid = pending.pop()
                for tid in os.listdir(f"/proc/{pid}/task"):
                    with open(f"/proc/{pid}/task/{tid}/children", "rb") as handle:
                        kids = [int(kid) for kid in handle.read().split()]
                    found.extend(kids)
                    pending.extend(kids)
        except FileNotFoundError:
            # A process or thread ended during the walk; its children moved up.
            pass
        except OSError:
            return None
        return found

    def descendants(self, *, rescan: bool = True) -> list[psutil.Process]:
        """The live descendants of the root.

        Args:
            rescan: find them afresh. When False (readings taken on demand, at cell
                boundaries), the list of the last scan is reused if it is younger than
                `RESCAN_AFTER_S`: a process started since then is found at the next
                periodic reading, and its CPU time, which only grows, is counted then.
        """
        now = self._clock()
        recent = self._scanned_at is not None and now - self._scanned_at < RESCAN_AFTER_S
        if not rescan and recent:
            return list(self._known.values())
        pids: list[int] | None = None
        if self._children_files:
            pids = self._walk_children_files()
        if pids is None:
            try:
                pids = [child.pid for child in self._root.children(recursive=True)]
            except psutil.Error:
                pids = []
        self._scanned_at = now
        current: dict[int, psutil.Process] = {}
        for pid in pids:
            # Keep the Process object first seen for a pid: psutil uses it to tell a
            # reused pid from the same process.
            known = self._known.get(pid)
            if known is None:
                try:
                    known = psutil.Process(pid)
                except psutil.Error:
                    continue
            current[pid] = known
        self._known = current
        return list(current.values())

    def read(self, *, rescan: bool = True) -> Activity:
        """Read the cumulative counters now.

        Args:
            rescan: find the descendants afresh (see `descendants`) and measure resident
                memory; when False (readings on demand) the memory of the last full
                reading is reused, since it only feeds the memory estimate, which the
                periodic readings keep up to date.

        Raises:
            psutil.NoSuchProcess: the root process has gone.
        """
        subject_cpu_s = self._root_cpu_s()
        measure_rss = rescan or self._rss_bytes is None
        rss = self._root_rss_bytes() if measure_rss else 0
        pids = {self.root_pid}
        for child in self.descendants(rescan=rescan):
            try:
                with child.oneshot():
                    times = child.cpu_times()
                    if measure_rss:
                        rss += child.memory_info().rss
            except psutil.Error:
                continue
            subject_cpu_s += times.user + times.system + times.children_user
            subject_cpu_s += times.children_system
            pids.add(child.pid)
        if measure_rss:
            self._rss_bytes = int(rss)
        return Activity(
            subject_cpu_s=subject_cpu_s,
            machine_busy_s=self._machine_busy_s(),
            subject_rss_bytes=self._rss_bytes or 0,
            machine_used_bytes=self._machine_used_bytes(),
            subject_pids=frozenset(pids),
            container_cpu_s=_cgroup_usage_s(self.cgroup) if self.cgroup else None,
        )

    def close(self) -> None:
        """Close the /proc files kept open."""
        for kept in (self._stat, self._statm):
            if kept is not None:
                kept.close()


def _open_quietly(path: str) -> _KeptFile | None:
    try:
        return _KeptFile(path)
    except OSError:
        return None
