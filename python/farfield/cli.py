"""The ``farfield`` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from .ewald import ewald
from .units import EV_ANGSTROM


def _progress(frames: Sequence[Any], enabled: bool) -> Iterable[Any]:
    if not enabled:
        return frames
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover
        return frames
    return tqdm(frames, desc="frames", file=sys.stderr)  # type: ignore[no-any-return]


def _ewald_command(args: argparse.Namespace) -> int:
    import ase.io

    frames = ase.io.read(args.file, index=":")
    if not isinstance(frames, list):
        frames = [frames]
    print("frame,energy_eV,max_force_eV_per_A")
    for index, atoms in enumerate(_progress(frames, not args.quiet)):
        result = ewald(
            atoms,
            exponent=args.exponent,
            accuracy=args.accuracy,
            prefactor=EV_ANGSTROM,
            potentials=False,
        )
        assert result.forces is not None
        fmax = float((result.forces**2).sum(axis=1).max() ** 0.5) if len(atoms) else 0.0
        print(f"{index},{result.energy:.10g},{fmax:.6g}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``farfield`` console script."""
    parser = argparse.ArgumentParser(prog="farfield", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    ew = commands.add_parser(
        "ewald", help="electrostatic energy (eV) of every frame of a file (charges from the file)"
    )
    ew.add_argument("file", help="any file ase.io.read understands (e.g. extended xyz)")
    ew.add_argument("--exponent", type=float, default=1.0, help="p in 1/r^p")
    ew.add_argument("--accuracy", type=float, default=1e-6, help="relative RMS force error")
    ew.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    try:
        if args.command == "ewald":
            return _ewald_command(args)
    except ValueError as error:
        print(f"farfield: error: {error}", file=sys.stderr)
        return 2
    return 1  # pragma: no cover


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
