"""Cost of building a System and of a repeated Coulomb sum on one System.

A System is validated once, when it is built (finite values, shapes, cell, overlapping atoms);
the calculators then reuse its native object. This script times, at N = 10^3, 10^4, 10^5:

* ``System(...)``: construction (conversion + one validation),
* ``as_system(atoms)`` from an ``ase.Atoms`` (when ASE is installed),
* ``calc.compute(system, q)`` repeated with one ``ff.Coulomb()`` (parameters cached after the
  first call),
* what a binding does with the system on every call, in the same build: the legacy tuple
  ``(positions, numbers, cell)`` (converted and validated per call, as every call did before
  the System held its native object) against the System's ``NativeSystem`` (shared), timed
  through ``_native.validate_system`` and through ``_native.coulomb_compute`` with the
  parameters fixed (the sum itself, without the Python layer).

Atoms sit on a jittered simple-cubic grid at rock-salt density (8 atoms per (5.64 Å)^3), so no
two are closer than 0.8 grid spacings; charges are ±1, N/2 of each. Best of several runs, in ms.

    python benches/python/bench_system.py [N ...]
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

import farfield as ff
from farfield import _native
from farfield.system import as_system

DENSITY = 8 / 5.64**3


def rock_salt_box(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Positions, numbers, cell and charges of n atoms at rock-salt density."""
    rng = np.random.default_rng(seed)
    length = (n / DENSITY) ** (1 / 3)
    m = int(np.ceil(n ** (1 / 3) - 1e-9))
    spacing = length / m
    sites = rng.choice(m**3, size=n, replace=False)
    grid = np.stack(np.unravel_index(sites, (m, m, m)), axis=1).astype(np.float64)
    positions = (grid + 0.5 + rng.uniform(-0.1, 0.1, (n, 3))) * spacing
    numbers = np.where(np.arange(n) % 2 == 0, 11, 17).astype(np.int32)
    charges = np.where(numbers == 11, 1.0, -1.0)
    order = rng.permutation(n)
    return positions, numbers[order], np.eye(3) * length, charges[order]


def best_time(f: Callable[[], Any], repeat: int) -> float:
    f()
    best = np.inf
    for _ in range(repeat):
        start = time.perf_counter()
        f()
        best = min(best, time.perf_counter() - start)
    return best


def row(n: int) -> str:
    positions, numbers, cell, q = rock_salt_box(n)
    repeat = 7 if n <= 10_000 else 3
    build = best_time(lambda: ff.System(positions, numbers, cell), repeat)
    system = ff.System(positions, numbers, cell)
    try:
        import ase

        atoms = ase.Atoms(numbers=numbers, positions=positions, cell=cell, pbc=True)
        from_ase = f"{best_time(lambda: as_system(atoms), repeat) * 1e3:.2f}"
    except ImportError:  # pragma: no cover
        from_ase = "-"
    calc = ff.Coulomb()
    compute = best_time(lambda: calc.compute(system, q), repeat)
    parameters = calc.parameters_for(system)
    method = parameters["method"]
    native = system._arrays()
    arrays = (system.positions, system.numbers, system.cell)
    per_call_old = best_time(lambda: _native.validate_system(arrays), repeat)
    per_call_new = best_time(lambda: _native.validate_system(native), repeat)
    keys = ("smearing", "cutoff", "k_cutoff", "mesh", "order")
    explicit = {k: parameters[k] for k in keys if k in parameters}
    sums = [
        best_time(lambda f=form: _native.coulomb_compute(f, q, 1.0, method, **explicit), repeat)
        for form in (arrays, native)
    ]
    return (
        f"| {n} | {build * 1e3:.2f} | {from_ase} | {per_call_old * 1e3:.3f} | "
        f"{per_call_new * 1e3:.4f} | {method} | {compute * 1e3:.1f} | {sums[0] * 1e3:.1f} | "
        f"{sums[1] * 1e3:.1f} |"
    )


def main() -> None:
    sizes = [int(a) for a in sys.argv[1:]] or [1_000, 10_000, 100_000]
    print(f"threads: {ff.get_num_threads()}")
    print(
        "| N | System(...) ms | as_system(ase) ms | per call, tuple ms | per call, native ms "
        "| method | Coulomb.compute ms | sum, tuple ms | sum, native ms |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for n in sizes:
        print(row(n), flush=True)


if __name__ == "__main__":
    main()
