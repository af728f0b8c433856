"""What CCF does with one kind of billing row, shared by every provider module.

A provider classifies each distinct (service, usage type, unit, ...) once; the result
holds per-unit figures that the frame then multiplies by the summed usage, which is
exact because every CCF estimate is linear in usage.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Classification", "number_text"]


@dataclass
class Classification:
    """What CCF does with one kind of row, per unit of (cleaned) usage amount.

    `kind` is `compute`, `lambda`, `memory`, `gpu`, `storage`, `network`, `unknown`, or
    `skip` (no estimate; `reason` says why). Energies are kWh per usage unit at the meter
    (before PUE), replication included where CCF applies it; embodied emissions are
    tonnes per usage unit. `usage_scale` turns the export's amount into CCF's unit. With
    `per_line`, the figures are per billing line instead and the quantity is ignored (as
    CCF does for Azure managed disks and registries).
    """

    kind: str
    unit: str
    reason: str = ""
    usage_scale: float = 1.0
    instance_type: str = ""
    cpu_kwh_per_usage: float = 0.0
    gpu_kwh_per_usage: float = 0.0
    memory_kwh_per_usage: float = 0.0
    storage_kwh_per_tbh: float = 0.0
    tb_per_usage: float = 0.0
    gb_month: bool = False
    network_kwh_per_usage: float = 0.0
    embodied_t_per_usage: float = 0.0
    medium: str = ""
    replication: float = 1.0
    coefficients: str = ""
    per_line: bool = False


def number_text(value: float) -> str:
    """A coefficient as it is written into a row's `coefficients` text."""
    return f"{value:.10g}"
