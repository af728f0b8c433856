"""`carbonbook billing`: estimate billing exports from the command line.

    carbonbook billing exports/2026-*.csv.gz --group-by day,service,region
    carbonbook billing cur/ --format parquet --output footprint.parquet

On a terminal, large inputs show a progress bar over their files, with the size and the
elapsed time, while they are read. What could not be classified is summarised on
standard error, so nothing is silently dropped.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path
from typing import TextIO

__all__ = ["add_parser", "main"]

LARGE_INPUT_BYTES = 50 * 2**20
TABLE_DEFAULT_GROUPS = ("service", "region")
SUMS = ("energy_kwh", "co2e_kg", "embodied_co2e_kg", "cost")


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the `billing` subcommand."""
    parser = commands.add_parser(
        "billing", help="energy and CO2e of cloud billing exports (CCF methodology)"
    )
    parser.add_argument("paths", nargs="+", help="export files, folders or globs")
    parser.add_argument("--provider", choices=("aws", "gcp", "azure"), help="force a provider")
    parser.add_argument(
        "--group-by",
        help="comma-separated columns: day, hour, month, service, region, account, "
        "usage_kind ... (table default: service,region)",
    )
    parser.add_argument("--format", choices=("table", "csv", "parquet"), default="table")
    parser.add_argument("--output", help="write here instead of standard output")
    parser.add_argument(
        "--strict", action="store_true", help="fail on the first unparseable value"
    )
    parser.add_argument(
        "--intensity",
        metavar="PROVIDER",
        help="hourly grid intensity from electricitymaps, watttime, ukgrid or auto "
        "(the configured providers) instead of CCF's static factors",
    )
    parser.add_argument(
        "--recommend",
        action="store_true",
        help="also list, per service and region, the same provider's cleaner regions",
    )


class _Progress:
    """A progress bar over the files on a terminal, and the elapsed time while they run."""

    def __init__(self, stream: TextIO, files: int, size_bytes: int) -> None:
        self._stream = stream
        self._files = files
        self._done = 0
        self._size = f"{size_bytes / 2**30:.2f} GB"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._start = time.monotonic()
        self._lock = threading.Lock()

    def __call__(self, done: int, files: int) -> None:
        with self._lock:
            self._done, self._files = done, files
        self._draw()

    def _draw(self) -> None:
        with self._lock:
            done, files = self._done, self._files
        width = 30
        filled = int(width * done / files) if files else 0
        elapsed = time.monotonic() - self._start
        bar = "#" * filled + "-" * (width - filled)
        self._stream.write(f"\r[{bar}] {done}/{files} files, {self._size}, {elapsed:.0f} s")
        self._stream.flush()

    def __enter__(self) -> _Progress:
        self._thread = threading.Thread(target=self._run, name="billing-progress", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            self._draw()

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._stream.write("\r" + " " * 72 + "\r")
        self._stream.flush()


def _size(paths: list[Path]) -> int:
    total = 0
    for path in paths:
        try:
            total += path.stat().st_size
        except OSError:
            continue
    return total


def main(args: argparse.Namespace) -> int:
    """Run `carbonbook billing`; returns the exit status."""
    from carbonbook.billing import BillingError, run
    from carbonbook.billing.source import resolve_files
    from carbonbook.errors import CarbonbookError

    groups = [g.strip() for g in args.group_by.split(",") if g.strip()] if args.group_by else []
    if args.format == "table" and not groups:
        groups = list(TABLE_DEFAULT_GROUPS)
    if args.format == "parquet" and not args.output:
        print("carbonbook billing: --format parquet needs --output FILE", file=sys.stderr)
        return 2
    try:
        files = resolve_files(args.paths)
        size = _size(files)
        show = sys.stderr.isatty() and size >= LARGE_INPUT_BYTES
        bar = _Progress(sys.stderr, len(files), size) if show else None
        if bar is not None:
            with bar:
                result = run(
                    args.paths,
                    args.provider,
                    group_by=groups or None,
                    strict=args.strict,
                    progress=bar,
                    intensity=args.intensity,
                )
        else:
            result = run(
                args.paths,
                args.provider,
                group_by=groups or None,
                strict=args.strict,
                intensity=args.intensity,
            )
    except CarbonbookError as exc:
        print(f"carbonbook billing: {exc}", file=sys.stderr)
        return 2

    frame = result.frame
    if args.format == "parquet":
        frame.write_parquet(args.output)
    elif args.format == "csv":
        text = frame.write_csv()
        if args.output:
            Path(args.output).write_text(text)
        else:
            sys.stdout.write(text)
    else:
        _print_table(frame, groups, args.output)
    if args.recommend:
        try:
            _print_recommendations(result.frame if not groups else None, args)
        except BillingError as exc:
            print(f"carbonbook billing: {exc}", file=sys.stderr)
            return 2
    _summarise_unclassified(result.unclassified)
    return 0


def _print_recommendations(frame: object, args: argparse.Namespace) -> None:
    import polars as pl

    from carbonbook.billing import estimate
    from carbonbook.billing.recommend import recommendations

    if frame is None:
        frame = estimate(args.paths, args.provider, group_by=["provider", "service", "region"])
    assert isinstance(frame, pl.DataFrame)
    table = recommendations(frame)
    with pl.Config(
        tbl_rows=60, tbl_cols=12, tbl_width_chars=180, tbl_hide_dataframe_shape=True
    ):
        print("\nCleaner regions of the same provider (same energy, use phase only):")
        print(table.with_columns(pl.col(pl.Float64).round(6)))


def _print_table(frame: object, groups: list[str], output: str | None) -> None:
    import polars as pl

    assert isinstance(frame, pl.DataFrame)
    keys = [g for g in groups if g in frame.columns]
    shown = frame.select(
        *keys, *(pl.col(name).round(6) for name in SUMS if name in frame.columns)
    )
    with pl.Config(
        tbl_rows=200, tbl_cols=20, tbl_width_chars=160, tbl_hide_dataframe_shape=True
    ):
        text = str(shown)
    totals = frame.select(pl.col(name).sum() for name in SUMS if name in frame.columns).row(0)
    text += "\ntotal: " + ", ".join(
        f"{name} {value:.6g}" for name, value in zip(SUMS, totals, strict=False)
    )
    if output:
        Path(output).write_text(text + "\n")
    else:
        print(text)


def _summarise_unclassified(summary: object) -> None:
    import polars as pl

    assert isinstance(summary, pl.DataFrame)
    if summary.height == 0:
        return
    rows = int(summary["rows"].sum())
    cost = float(summary["cost"].sum())
    print(
        f"{summary.height} kind(s) of rows ({rows} rows, cost {cost:.2f}) were not estimated "
        "or were estimated with a fallback:",
        file=sys.stderr,
    )
    for row in summary.head(10).iter_rows(named=True):
        print(f"  {row['reason']}: {row['rows']} rows, cost {row['cost']:.2f}", file=sys.stderr)
    if summary.height > 10:
        print(f"  ... and {summary.height - 10} more", file=sys.stderr)
