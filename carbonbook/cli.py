"""The `carbonbook` command line."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

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
    parser.print_help()
    return 0


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
