"""The `carbonbook` command line."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import Any

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="carbonbook",
        description="Energy and carbon accounting for notebooks and programs.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log what is detected")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    doctor = commands.add_parser(
        "doctor", help="show what this machine can measure and how to measure more"
    )
    doctor.add_argument(
        "--reading-seconds",
        type=float,
        default=0.5,
        help="length of the trial reading (default 0.5 s)",
    )
    demo = commands.add_parser(
        "demo", help="run the quickstart notebook in a real kernel and print what it cost"
    )
    demo.add_argument("notebook", nargs="?", help="notebook to run (default: the quickstart)")
    demo.add_argument("--ledger", help="ledger file to write (default: CARBONBOOK_LEDGER)")
    grid = commands.add_parser(
        "intensity", help="grid carbon intensity of a zone, with its provenance"
    )
    grid.add_argument("zone", help="FR, US-CAL-CISO, GB, aws:eu-west-3 ...")
    grid.add_argument(
        "--provider", help="electricitymaps, watttime, ukgrid or embedded (default: configured)"
    )
    when = grid.add_mutually_exclusive_group()
    when.add_argument("--at", help="one instant, ISO 8601 (default: now)")
    when.add_argument("--from", dest="start", help="start of a range, ISO 8601")
    grid.add_argument("--to", dest="end", help="end of the range (with --from)")
    grid.add_argument("--format", choices=("table", "csv", "json"), default="table")

    from carbonbook.billing_command import add_parser as add_billing

    add_billing(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.ERROR,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if args.command == "doctor":
        from carbonbook.doctor import doctor_report

        print(doctor_report(reading_s=max(0.0, args.reading_seconds)))
        return 0
    if args.command == "demo":
        return _demo(args.notebook, args.ledger)
    if args.command == "intensity":
        return _intensity(args)
    if args.command == "billing":
        from carbonbook.billing_command import main as billing_main

        return billing_main(args)
    parser.print_help()
    return 0


def _intensity(args: argparse.Namespace) -> int:
    from carbonbook.errors import CarbonbookError
    from carbonbook.intensity.service import intensity_frame, parse_when

    try:
        if args.end and not args.start:
            raise CarbonbookError("--to needs --from")
        if args.start and not args.end:
            raise CarbonbookError("--from needs --to")
        start = parse_when(args.start or args.at) if (args.start or args.at) else None
        end = parse_when(args.end) if args.end else None
        frame = intensity_frame(args.zone, start, end, provider=args.provider)
    except CarbonbookError as exc:
        print(f"carbonbook intensity: {exc}", file=sys.stderr)
        return 2
    if args.format == "csv":
        sys.stdout.write(frame.write_csv())
    elif args.format == "json":
        sys.stdout.write(frame.write_json() + "\n")
    else:
        _print_intensity_table(frame)
    return 0


def _print_intensity_table(frame: Any) -> None:
    print(
        f"{'start (UTC)':<17} {'end (UTC)':<17} {'g/kWh':>8}  provider         "
        "factor     signal    estimated"
    )
    for row in frame.iter_rows(named=True):
        print(
            f"{row['intensity_start']:%Y-%m-%d %H:%M} {row['intensity_end']:%Y-%m-%d %H:%M} "
            f"{row['intensity_g_per_kwh']:>8.1f}  {row['intensity_provider']:<16} "
            f"{row['factor_type']:<10} {row['signal']:<9} "
            f"{'yes' if row['intensity_estimated'] else 'no'}"
        )
    notes = sorted({n for n in frame["intensity_note"].to_list() if n})
    sources = sorted({s for s in frame["source"].to_list() if s})
    for note in notes:
        print(f"note: {note}")
    for source in sources:
        print(f"source: {source}")


def _demo(notebook: str | None, ledger: str | None) -> int:
    from pathlib import Path

    from carbonbook.demo import run_demo
    from carbonbook.errors import CarbonbookError

    try:
        result = run_demo(
            Path(notebook) if notebook else None, ledger=Path(ledger) if ledger else None
        )
    except CarbonbookError as exc:
        print(f"carbonbook demo: {exc}", file=sys.stderr)
        return 1
    print(result.report())
    return 0


if __name__ == "__main__":
    sys.exit(main())
