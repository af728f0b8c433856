"""`%%carbon` (meter one cell) and `%carbon` (status, zone, on/off, summary, export)."""

from __future__ import annotations

import ast
import shlex
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

from carbonbook.notebook.display import Notice, SessionTable, format_co2e, format_energy
from carbonbook.notebook.extension import CellMeter

__all__ = ["HELP", "CarbonMagics"]

HELP = """\
%%carbon [--label NAME] [--zone ZONE] [--quiet]   meter this cell (also when auto is off)
%carbon status            meters, methods, zone, ledger and this session's totals
%carbon zone [ZONE]       show or set the grid zone (FR, US-CAL-CISO, aws:eu-west-3 ...)
%carbon on | off          meter every cell, or only %%carbon cells
%carbon summary           this session's cells, ranked by energy
%carbon export PATH [--format csv|parquet|codecarbon] [--all]
                          write this session's records (--all: the whole ledger);
                          codecarbon writes CodeCarbon's emissions.csv columns"""


class _Text:
    """Plain text shown as the magic's result, without quotes."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


@magics_class
class CarbonMagics(Magics):
    """The carbonbook magics, bound to one `CellMeter`."""

    def __init__(self, shell: Any, meter: CellMeter) -> None:
        super().__init__(shell)
        self.meter = meter

    @magic_arguments()
    @argument("--label", "-l", default=None, help="a name kept with the record")
    @argument("--zone", "-z", default=None, help="grid zone for this cell only")
    @argument("--quiet", "-q", action="store_true", help="record, but show nothing")
    @line_cell_magic
    def carbon(self, line: str, cell: str | None = None) -> Any:
        """Meter a cell (`%%carbon`) or manage carbonbook (`%carbon ...`)."""
        if cell is None:
            return self._line(line)
        args = parse_argstring(self.carbon, line)
        return self._run_cell(cell, label=args.label, zone=args.zone, quiet=args.quiet)

    # -- %%carbon -------------------------------------------------------------------

    def _run_cell(self, cell: str, *, label: str | None, zone: str | None, quiet: bool) -> Any:
        shell = self.shell
        assert shell is not None
        source = shell.transform_cell(cell)
        tree = shell.compile.ast_parse(source)
        tree = shell.transform_ast(tree)
        last: ast.Expression | None = None
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            last = ast.Expression(tree.body.pop().value)
        body = shell.compile(tree, "<carbon>", "exec")
        tail = shell.compile(last, "<carbon>", "eval") if last is not None else None  # type: ignore[arg-type]

        namespace = shell.user_ns
        meter = self.meter
        pending = None
        try:
            pending = meter.begin(cell)
        except Exception as exc:
            meter.notice("magic-start", f"%%carbon could not start metering ({exc}).")
        status, error, value = "ok", None, None
        try:
            exec(body, namespace, namespace)
            if tail is not None:
                value = eval(tail, namespace, namespace)
        except BaseException as exc:
            status, error = "error", type(exc).__name__
            raise
        finally:
            if pending is not None:
                self._finish(pending, label, zone, quiet, status, error)
        return value

    def _finish(
        self,
        pending: Any,
        label: str | None,
        zone: str | None,
        quiet: bool,
        status: str,
        error: str | None,
    ) -> None:
        try:
            record = self.meter.finish(
                pending,
                kind="magic",
                execution_count=self.meter.current_execution_count,
                label=label,
                zone=zone,
                status="error" if status == "error" else "ok",
                error=error,
                show=not quiet,
            )
            if self.shell is not None:
                self.shell.user_ns["_carbon"] = record
        except Exception as exc:
            self.meter.notice("magic-finish", f"%%carbon could not record the cell ({exc}).")

    # -- %carbon ------------------------------------------------------------------------

    def _line(self, line: str) -> Any:
        try:
            words = shlex.split(line)
        except ValueError as exc:
            raise UsageError(f"%carbon: {exc}") from None
        if not words or words[0] in ("help", "-h", "--help"):
            return _Text(HELP)
        command, rest = words[0], words[1:]
        handler = {
            "status": self._status,
            "zone": self._zone,
            "on": self._on,
            "off": self._off,
            "summary": self._summary,
            "export": self._export,
        }.get(command)
        if handler is None:
            raise UsageError(f"%carbon: unknown command {command!r}.\n{HELP}")
        return handler(rest)

    def _status(self, rest: list[str]) -> _Text:
        meter = self.meter
        sampler = meter.sampler
        lines = ["carbonbook status", f"  auto mode: {'on' if meter.settings.auto else 'off'}"]
        for info in sampler.domains().values():
            role = "" if info.additive else " (detail)"
            lines.append(f"  {info.name}: {info.method} by {info.meter}{role}")
        intensity, pue = meter.intensity()
        lines.append(
            f"  zone: {intensity.zone}, {intensity.g_per_kwh:.0f} g/kWh "
            f"({intensity.basis}, {intensity.factor_type}); PUE {pue:g}"
        )
        lines.append(f"  ledger: {meter.ledger_path()}")
        records = meter.records
        total_j = sum(r.energy_j for r in records)
        total_g = sum(r.co2e_g for r in records)
        lines.append(
            f"  this session: {len(records)} records, {format_energy(total_j)}, "
            f"{format_co2e(total_g)}"
        )
        lines.extend(f"  problem: {problem}" for problem in sampler.problems)
        return _Text("\n".join(lines))

    def _zone(self, rest: list[str]) -> _Text:
        if len(rest) > 1:
            raise UsageError("%carbon zone takes one zone, such as FR or aws:eu-west-3")
        if rest:
            self.meter.settings.zone = rest[0]
        intensity, pue = self.meter.intensity()
        note = f"\n  {intensity.note}" if intensity.note else ""
        return _Text(
            f"zone {intensity.zone}: {intensity.g_per_kwh:.0f} g CO₂e/kWh, {intensity.basis}, "
            f"{intensity.factor_type} ({intensity.source}); PUE {pue:g}{note}"
        )

    def _on(self, rest: list[str]) -> _Text:
        self.meter.settings.auto = True
        return _Text("carbonbook: metering every cell")

    def _off(self, rest: list[str]) -> _Text:
        self.meter.settings.auto = False
        return _Text("carbonbook: metering only %%carbon cells")

    def _summary(self, rest: list[str]) -> SessionTable:
        ranked = sorted(self.meter.records, key=lambda r: r.energy_j, reverse=True)
        return SessionTable(ranked)

    def _export(self, rest: list[str]) -> Notice:
        from carbonbook.export import export_records

        paths = [word for word in rest if not word.startswith("--")]
        fmt: str | None = None
        if "--format" in rest:
            index = rest.index("--format")
            if index + 1 >= len(rest):
                raise UsageError("%carbon export: --format needs csv, parquet or codecarbon")
            fmt = rest[index + 1]
            paths = [p for p in paths if p != fmt]
        if len(paths) != 1:
            raise UsageError("%carbon export PATH [--format csv|parquet|codecarbon] [--all]")
        if fmt not in (None, "csv", "parquet", "codecarbon"):
            raise UsageError(f"%carbon export: unknown format {fmt!r}")
        if "--all" in rest:
            from carbonbook.ledger import read_ledger

            self.meter.flush()
            source: Any = read_ledger(self.meter.ledger_path())
        else:
            source = list(self.meter.records)
        written = export_records(source, paths[0], format=fmt)  # type: ignore[arg-type]
        count = len(source)
        return Notice(f"wrote {count} records to {written}")
