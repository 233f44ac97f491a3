"""The ``farfield`` command line.

Errors (a missing or unreadable file, frames without charges, bad options, invalid structures)
are reported as one line ``farfield: error: ...`` on stderr with exit status 2 (1 for a failed
computation, 130 for Ctrl-C); ``--debug`` shows the Python traceback instead.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from .coulomb import Coulomb
from .units import EV_ANGSTROM


class CommandError(Exception):
    """A user error of the command line (reported in one line, exit status 2)."""


def _progress(frames: Sequence[Any], enabled: bool) -> Iterable[Any]:
    if not enabled:
        return frames
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover
        return frames
    return tqdm(frames, desc="frames", file=sys.stderr)  # type: ignore[no-any-return]


def parse_charges(text: str) -> dict[str, float]:
    """A per-element charge map from ``"Na=1,Cl=-1"`` or JSON ``'{"Na": 1, "Cl": -1}'``."""
    text = text.strip()
    if not text:
        raise CommandError("--charges is empty; expected e.g. --charges Na=1,Cl=-1")
    items: list[tuple[Any, Any]]
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise CommandError(f"--charges: invalid JSON ({error})") from None
        if not isinstance(data, dict):  # pragma: no cover - "{" starts an object
            raise CommandError("--charges: expected a JSON object of element: charge")
        items = list(data.items())
    else:
        items = []
        for entry in text.split(","):
            if entry.count("=") != 1:
                raise CommandError(
                    f"--charges: expected element=charge entries separated by commas "
                    f"(e.g. Na=1,Cl=-1), got {entry.strip()!r}"
                )
            key, value = entry.split("=")
            items.append((key.strip(), value.strip()))
    from ase.data import chemical_symbols

    out: dict[str, float] = {}
    for key, value in items:
        if not isinstance(key, str) or key not in chemical_symbols[1:]:
            raise CommandError(f"--charges: unknown element {key!r}")
        if isinstance(value, bool):
            raise CommandError(f"--charges: the charge of {key} must be a number, got {value!r}")
        try:
            charge = float(value)
        except (TypeError, ValueError):
            raise CommandError(
                f"--charges: the charge of {key} must be a number, got {value!r}"
            ) from None
        if not math.isfinite(charge):
            raise CommandError(f"--charges: the charge of {key} must be finite, got {value!r}")
        if key in out:
            raise CommandError(f"--charges: element {key} is given twice")
        out[key] = charge
    return out


def _frame_charges(
    atoms: Any, index: int, path: str, charge_map: Mapping[str, float] | None
) -> np.ndarray[Any, Any]:
    """The charges of one frame: from the per-element map when given, else from the file."""
    symbols = atoms.get_chemical_symbols()
    if charge_map is not None:
        missing = sorted({s for s in symbols if s not in charge_map})
        if missing:
            raise CommandError(
                f"frame {index} of {path}: --charges gives no charge for {', '.join(missing)}"
            )
        return np.array([charge_map[s] for s in symbols], dtype=np.float64)
    if atoms.has("initial_charges"):
        return np.asarray(atoms.get_initial_charges(), dtype=np.float64)
    if "charges" in atoms.arrays:
        return np.asarray(atoms.arrays["charges"], dtype=np.float64)
    calc = getattr(atoms, "calc", None)
    results = getattr(calc, "results", None) or {}
    if "charges" in results:
        return np.asarray(results["charges"], dtype=np.float64)
    raise CommandError(
        f"frame {index} of {path} has no charges (formats such as CIF or plain xyz cannot "
        f"carry them): give a charge per element with --charges, e.g. --charges Na=1,Cl=-1, "
        f"or use an extended xyz file with an initial_charges column"
    )


def _read(path: str) -> list[Any]:
    import ase.io

    try:
        frames = ase.io.read(path, index=":")
    except FileNotFoundError:
        raise CommandError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise CommandError(f"{path}: is a directory, not a structure file") from None
    except PermissionError:
        raise CommandError(f"{path}: permission denied") from None
    except Exception as error:  # ase raises many kinds of errors for malformed files
        message = str(error) or type(error).__name__
        raise CommandError(f"{path}: cannot read it as a structure file ({message})") from error
    if not isinstance(frames, list):
        frames = [frames]
    if not frames:
        raise CommandError(f"{path}: no frames found")
    return frames


def _ewald_command(args: argparse.Namespace) -> int:
    charge_map = None if args.charges is None else parse_charges(args.charges)
    frames = _read(args.file)
    # every frame's charges are checked before any output
    charges = [_frame_charges(a, i, args.file, charge_map) for i, a in enumerate(frames)]
    print("frame,energy_eV,max_force_eV_per_A")
    try:
        # one calculator for the trajectory: frames of one cell are tuned once
        calculator = Coulomb(exponent=args.exponent, accuracy=args.accuracy, prefactor=EV_ANGSTROM)
    except ValueError as error:
        raise CommandError(str(error)) from error
    for index, atoms in enumerate(_progress(frames, not args.quiet)):
        try:
            result = calculator.compute(atoms, charges[index], stress=False)
        except ValueError as error:
            raise CommandError(f"frame {index} of {args.file}: {error}") from error
        assert result.forces is not None
        fmax = float((result.forces**2).sum(axis=1).max() ** 0.5) if len(atoms) else 0.0
        print(f"{index},{result.energy:.10g},{fmax:.6g}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``farfield`` console script."""
    parser = argparse.ArgumentParser(prog="farfield", description=__doc__)
    parser.add_argument(
        "--debug", action="store_true", help="show the Python traceback of an error"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    ew = commands.add_parser(
        "ewald",
        help="electrostatic energy (eV) of every frame of a file (charges from the file or "
        "--charges)",
    )
    ew.add_argument("file", help="any file ase.io.read understands (e.g. extended xyz)")
    ew.add_argument(
        "--charges",
        metavar="MAP",
        help='charge per element for every frame, e.g. Na=1,Cl=-1 or \'{"Na": 1, "Cl": -1}\' '
        "(needed for files without charges, such as CIF or plain xyz; replaces the file's "
        "charges)",
    )
    ew.add_argument("--exponent", type=float, default=1.0, help="p in 1/r^p")
    ew.add_argument("--accuracy", type=float, default=1e-6, help="relative RMS force error")
    ew.add_argument("--quiet", action="store_true", help="no progress bar")
    ew.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    try:
        if args.command == "ewald":
            return _ewald_command(args)
    except KeyboardInterrupt:
        if args.debug:
            raise
        print("farfield: interrupted", file=sys.stderr)
        return 130
    except (CommandError, ValueError, TypeError) as error:
        if args.debug:
            raise
        print(f"farfield: error: {error}", file=sys.stderr)
        return 2
    except Exception as error:
        if args.debug:
            raise
        print(f"farfield: error: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    return 1  # pragma: no cover


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
