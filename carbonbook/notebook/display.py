"""What the notebook shows: the one-line summary under a cell, and session tables.

Each object returns `text/plain` and `text/html` through `_repr_mimebundle_`, so it shows
well in Jupyter, in a terminal IPython and in an executed notebook file alike.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass

from carbonbook.records import CellRecord

__all__ = ["CellSummary", "Notice", "SessionTable", "format_co2e", "format_energy"]

_STYLE = "font-family: monospace; font-size: 90%; color: #5a6b5a"


def format_energy(energy_j: float) -> str:
    """Energy with a unit a reader takes in at a glance: J, kJ, Wh or kWh."""
    if energy_j < 1000:
        return f"{energy_j:.3g} J"
    if energy_j < 3600:
        return f"{energy_j / 1000:.3g} kJ"
    if energy_j < 3.6e6:
        return f"{energy_j / 3600:.3g} Wh"
    return f"{energy_j / 3.6e6:.3g} kWh"


def format_co2e(co2e_g: float) -> str:
    """Grams CO2e, in mg below a milligram-scale figure and kg above a kilogram."""
    if co2e_g < 0.001:
        return f"{co2e_g * 1000:.2g} mg CO₂e"
    if co2e_g < 1000:
        return f"{co2e_g:.3g} g CO₂e"
    return f"{co2e_g / 1000:.3g} kg CO₂e"


def _method_text(record: CellRecord) -> str:
    if record.method == "measured":
        return "measured"
    return f"{record.method} ±{record.bounds_ratio:.0%}"


def summary_line(record: CellRecord) -> str:
    """The compact line, such as `⚡ 41.2 J · 0.005 g CO₂e · FR 41 g/kWh · measured`."""
    parts = [
        f"⚡ {format_energy(record.energy_j)}",
        format_co2e(record.co2e_g),
        f"{record.zone} {record.intensity_g_per_kwh:.0f} g/kWh",
        _method_text(record),
    ]
    if record.label:
        parts.insert(0, f"[{record.label}]")
    if record.status == "error":
        parts.append(f"cell failed ({record.error})")
    return " · ".join(parts)


def _details(record: CellRecord) -> str:
    domains = ", ".join(
        f"{d.name} {format_energy(d.attributed_j)} ({d.method})"
        for d in record.domains
        if d.additive
    )
    year = f" {record.intensity_year}" if record.intensity_year else ""
    return (
        f"{record.duration_s:.3g} s; this kernel {format_energy(record.energy_j)} "
        f"[{format_energy(record.energy_lower_j)} to {format_energy(record.energy_upper_j)}] "
        f"of the machine's {format_energy(record.host_energy_j)}; {domains}; "
        f"intensity {record.intensity_basis}{year}, {record.intensity_factor_type}, "
        f"{record.intensity_source}; PUE {record.pue:g}"
    )


@dataclass(frozen=True, slots=True)
class CellSummary:
    """The summary shown under a metered cell; hover the HTML line for the details."""

    record: CellRecord

    def __repr__(self) -> str:
        return summary_line(self.record)

    def _repr_mimebundle_(
        self, include: object = None, exclude: object = None
    ) -> dict[str, str]:
        line = html.escape(summary_line(self.record))
        title = html.escape(_details(self.record), quote=True)
        return {
            "text/plain": summary_line(self.record),
            "text/html": f'<div style="{_STYLE}" title="{title}">{line}</div>',
        }


@dataclass(frozen=True, slots=True)
class Notice:
    """A message the user should act on, shown once."""

    text: str

    def __repr__(self) -> str:
        return f"carbonbook: {self.text}"

    def _repr_mimebundle_(
        self, include: object = None, exclude: object = None
    ) -> dict[str, str]:
        body = html.escape(self.text).replace("\n", "<br>")
        return {
            "text/plain": repr(self),
            "text/html": f'<div style="{_STYLE}; color: #8a5a00">carbonbook: {body}</div>',
        }


@dataclass(frozen=True, slots=True)
class SessionTable:
    """A table of records with a totals row (for `%carbon summary`)."""

    records: Sequence[CellRecord]
    title: str = "This session's cells, by energy"

    def rows(self) -> list[tuple[str, ...]]:
        """The table as text cells: header first, totals last."""
        header = ("cell", "what", "time", "energy", "CO₂e", "method", "status")
        rows: list[tuple[str, ...]] = [header]
        for record in self.records:
            what = record.label or record.source_preview
            rows.append(
                (
                    str(record.execution_count) if record.execution_count is not None else "-",
                    what if len(what) <= 40 else what[:39] + "…",
                    f"{record.duration_s:.3g} s",
                    format_energy(record.energy_j),
                    format_co2e(record.co2e_g),
                    _method_text(record),
                    record.status,
                )
            )
        total_j = sum(r.energy_j for r in self.records)
        total_g = sum(r.co2e_g for r in self.records)
        total_s = sum(r.duration_s for r in self.records)
        rows.append(
            (
                "total",
                f"{len(self.records)} cells",
                f"{total_s:.3g} s",
                format_energy(total_j),
                format_co2e(total_g),
                "",
                "",
            )
        )
        return rows

    def __repr__(self) -> str:
        rows = self.rows()
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        lines = [self.title]
        for index, row in enumerate(rows):
            lines.append(
                "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
            )
            if index == 0 or index == len(rows) - 2:
                lines.append("  ".join("-" * width for width in widths))
        return "\n".join(lines).rstrip()

    def _repr_mimebundle_(
        self, include: object = None, exclude: object = None
    ) -> dict[str, str]:
        rows = self.rows()
        head = "".join(f"<th>{html.escape(c)}</th>" for c in rows[0])
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
            for row in rows[1:]
        )
        table = f"<table><caption>{html.escape(self.title)}</caption>"
        return {
            "text/plain": repr(self),
            "text/html": f"{table}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>",
        }
