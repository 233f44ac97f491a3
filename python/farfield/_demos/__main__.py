"""``python -m farfield._demos NAME [--quick] [--output DIR] [--no-progress]``."""

from __future__ import annotations

import argparse
import pathlib
import sys

from . import NAMES, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m farfield._demos", description=__doc__)
    parser.add_argument("name", choices=NAMES)
    parser.add_argument("--quick", action="store_true", help="a small version (seconds)")
    parser.add_argument("--output", type=pathlib.Path, default=None, help="output folder")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    return run(args.name, quick=args.quick, output=args.output, progress=not args.no_progress)


if __name__ == "__main__":
    sys.exit(main())
