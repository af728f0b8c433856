"""`carbonbook doctor`: what this machine can measure, and what to do about what it cannot.

The report is plain text, a few lines a section: RAPL zones and whether they can be read
(with the fix when they cannot), NVIDIA GPUs and how their energy is read, the estimate
model used for the rest, the measured process tree, and the grid zone. It also takes two
readings a short moment apart, so the user sees the meters actually produce numbers.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping

import psutil

from carbonbook.intensity.embedded import embedded_intensity, embedded_pue, resolve_zone
from carbonbook.meters.estimate import estimate_bounds_ratio
from carbonbook.meters.process import ProcessTree
from carbonbook.session import Detection, build_sampler, detect
from carbonbook.usage import usage_between

__all__ = ["doctor_report"]


def _rapl_lines(detection: Detection) -> list[str]:
    rapl = detection.rapl
    root = detection.powercap_root
    if rapl.meter is None:
        if rapl.permission_denied:
            return [f"RAPL: found under {root}, but NOT readable.", *_indent(rapl.reason)]
        return [
            f"RAPL: not available ({rapl.reason}).",
            "  On a VM or in a container, a host-exported tree can be read by setting",
            "  CARBONBOOK_POWERCAP_ROOT; otherwise CPU and memory energy is estimated.",
        ]
    lines = [f"RAPL: measuring from {root}"]
    for zone in rapl.meter.zones():
        wrap = f"wraps at {zone.range_uj / 1e6:,.0f} J"
        if not zone.range_known:
            wrap += " (assumed: no max_energy_range_uj)"
        lines.append(f"  {zone.zone_id:<18} {zone.name:<16} {wrap}")
    for zone_id, why in rapl.skipped:
        lines.append(f"  {zone_id:<18} not read: {why}")
    for info in rapl.meter.domains():
        role = "host figure" if info.additive else "detail, not added"
        notes = f" ({'; '.join(info.notes)})" if info.notes else ""
        lines.append(f"  domain {info.name}: {role}{notes}")
    return lines


def _estimate_lines(detection: Detection) -> list[str]:
    model = detection.power_model
    if not detection.estimated:
        return ["Estimates: not needed, the counters cover CPU and memory."]
    ratio = estimate_bounds_ratio(model, "cpu")
    return [
        f"Estimates for: {', '.join(detection.estimated)}",
        f"  CPU: {model.cpu_model or 'model unknown'}",
        f"  {model.explanation}",
        f"  {model.min_w_per_vcpu:.2f} W idle to {model.max_w_per_vcpu:.2f} W busy per logical "
        f"CPU (bounds at full load +-{ratio:.0%}), scaled by CPU time",
        f"  memory: {estimate_bounds_ratio(model, 'dram'):.0%} bounds around CCF's 0.392 W/GB",
    ]


def _process_lines(tree: ProcessTree) -> list[str]:
    root = psutil.Process(tree.root_pid)
    children = tree.descendants()
    lines = [
        f"Measured process tree: pid {tree.root_pid} ({root.name()}) and "
        f"{len(children)} descendants, found again at every reading",
        f"  logical CPUs: {tree.logical_cpus}",
    ]
    if tree.cgroup is not None:
        quota = tree.cgroup.cpu_quota_cpus
        limit = f"{quota:g} CPUs" if quota is not None else "no CPU limit"
        lines.append(f"  cgroup v2: {tree.cgroup.path} ({limit}); its CPU usage is read too")
    return lines


def _zone_lines(environ: Mapping[str, str]) -> list[str]:
    choice = resolve_zone(None, environ)
    intensity = embedded_intensity(choice.zone)
    year = f", {intensity.year}" if intensity.year else ""
    lines = [
        f"Grid zone: {choice.zone} (from {choice.how}): {intensity.g_per_kwh:.0f} g CO2e/kWh, "
        f"{intensity.basis}{year}, {intensity.factor_type}; PUE {embedded_pue(choice.zone):g}",
    ]
    if intensity.note:
        lines.append(f"  {intensity.note}")
    return lines


def _indent(text: str) -> list[str]:
    return ["  " + line for line in text.splitlines()]


def doctor_report(environ: Mapping[str, str] | None = None, *, reading_s: float = 0.5) -> str:
    """The doctor report as text. Never raises for what the machine lacks.

    Args:
        environ: the environment to read settings from; `os.environ` when None.
        reading_s: how long the trial reading lasts, in seconds.
    """
    env = os.environ if environ is None else environ
    detection = detect(env)
    sampler = build_sampler(detection)
    lines = ["carbonbook doctor", ""]
    lines += _rapl_lines(detection)
    lines += detection.nvidia.describe()
    lines += _estimate_lines(detection)
    lines += _process_lines(ProcessTree(cgroup=None))
    lines += _zone_lines(env)

    start = sampler.snapshot()
    time.sleep(reading_s)
    usage = usage_between(start, sampler.snapshot())
    sampler.close()
    parts = ", ".join(f"{name} {joules:.2f} J" for name, joules in usage.host_by_domain.items())
    lines += [
        "",
        f"Trial reading over {usage.duration_s:.2f} s: host {usage.host_energy_j:.2f} J "
        f"({parts}), {usage.method}.",
    ]
    if usage.method != "measured":
        lines.append(
            "Nothing here stops carbonbook from working: estimated figures are marked as "
            "such, with bounds."
        )
    return "\n".join(lines)
