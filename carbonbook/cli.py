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
    parser.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
