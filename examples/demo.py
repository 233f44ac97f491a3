"""farfield demonstration (``make demo``): Madelung constants as a sanity check, then the main
demonstration, the first application of the LODE paper (``farfield._demos``, point-charges):
electrostatic energies of random point-charge boxes learned by long-range LODE features and not
by local ones (learning curves: a table, ``learning_curves.png`` and ``results.json`` in
``--output``, by default ./farfield-demo-point-charges).

    python examples/demo.py [--quick] [--output DIR] [--no-progress] [--timings]

``--timings`` adds the energy, forces and stress of random boxes of 10³-2·10⁴ atoms.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time

import numpy as np

import farfield as ff
from farfield import _demos

FCC = np.array([[0.0, 1.0, 1.0], [1.0, 0.0, 1.0], [1.0, 1.0, 0.0]])
CRYSTALS = {
    # name: (cell, fractional positions, charges, formula units, reference -E/fu)
    "NaCl": (FCC, [[0, 0, 0], [0.5, 0.5, 0.5]], [1, -1], 1, 1.747564594633),
    "CsCl": (np.eye(3), [[0.5, 0.5, 0.5], [0, 0, 0]], [1, -1], 1, 2.035361509),
    "zincblende": (FCC, [[0, 0, 0], [0.25, 0.25, 0.25]], [1, -1], 1, 1.8914630519),
    "fluorite": (
        0.5 * np.array([[1.0, 1.0, 0.0], [1.0, 0.0, 1.0], [0.0, 1.0, 1.0]]),
        [[0, 0, 0], [0.25, 0.25, 0.25], [0.75, 0.75, 0.75]],
        [2, -1, -1],
        1,
        11.6365752270768,
    ),
}


def madelung() -> None:
    print(f"farfield {ff.__version__}, {ff.get_num_threads()} threads\n")
    print("Madelung constants (Ewald, accuracy 1e-12):\n")
    print("| crystal | -E per formula unit | reference | rel. error | time (ms) |")
    print("|---|---|---|---|---|")
    for name, (cell, frac, charges, fu, reference) in CRYSTALS.items():
        cell = np.asarray(cell, dtype=float)
        system = ff.System(
            np.asarray(frac, dtype=float) @ cell, np.ones(len(frac), dtype=np.int32), cell
        )
        start = time.perf_counter()
        result = ff.ewald(system, np.asarray(charges, dtype=float), accuracy=1e-12)
        elapsed = 1e3 * (time.perf_counter() - start)
        value = -result.energy / fu
        print(
            f"| {name} | {value:.12f} | {reference:.12f} | "
            f"{abs(value / reference - 1):.1e} | {elapsed:.2f} |"
        )


def timings() -> None:
    print("\nrandom neutral box at liquid density, accuracy 1e-5 (energy, forces, stress):")
    rng = np.random.default_rng(0)
    for n in (1000, 4000, 20000):
        length = (n / 0.1) ** (1 / 3)
        system = ff.System(
            rng.random((n, 3)) * length, np.ones(n, dtype=np.int32), np.eye(3) * length
        )
        charges = rng.standard_normal(n)
        charges -= charges.mean()
        start = time.perf_counter()
        result = ff.ewald(system, charges, accuracy=1e-5, prefactor=ff.units.EV_ANGSTROM)
        elapsed = 1e3 * (time.perf_counter() - start)
        assert result.forces is not None
        p = result.parameters
        grid = (
            f"k_c={p['k_cutoff']:.3f}"
            if "k_cutoff" in p
            else f"mesh={p['mesh']}, order={p['order']}"
        )
        print(
            f"  N={n}: E = {result.energy:.6f} eV, max |F| = "
            f"{np.linalg.norm(result.forces, axis=1).max():.4f} eV/Å, {elapsed:.1f} ms "
            f"[{p['method']}: σ={p['smearing']:.3f}, r_c={p['cutoff']:.3f}, {grid}]"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a small version (seconds)")
    parser.add_argument("--output", type=pathlib.Path, default=None, help="output folder")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--timings", action="store_true", help="also time large random boxes")
    args = parser.parse_args(argv)
    madelung()
    if args.timings:
        timings()
    print()
    return _demos.run(
        "point-charges", quick=args.quick, output=args.output, progress=not args.no_progress
    )


if __name__ == "__main__":
    sys.exit(main())
