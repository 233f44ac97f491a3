"""LODE spherical expansion: farfield vs featomic 0.6.7 (same hyper-parameters, 2 threads).

Random NaCl point-charge boxes (number density 0.05 / Å³), p = 1, σ = 1, GTO basis
(max_radial = 3, radius = 3), max_angular = 3, k_cutoff = 1.2π/σ. Prints a markdown table:
values, values + dense position gradients, and (farfield only) values + backward pass.
Run: .venv/bin/python benches/python/bench_lode.py [--sizes 64 216 ...]
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

os.environ.setdefault("RAYON_NUM_THREADS", "2")

import numpy as np

import farfield as ff

try:
    import ase
except ImportError:  # pragma: no cover
    ase = None

try:
    import featomic
except ImportError:  # pragma: no cover
    featomic = None

SIGMA, LMAX, NMAX, R0, P = 1.0, 3, 3, 3.0, 1


def box(n: int, seed: int = 0) -> Any:
    rng = np.random.default_rng(seed)
    length = (n / 0.05) ** (1 / 3)
    numbers = np.array([11, 17] * (n // 2) + [11] * (n % 2))
    return ase.Atoms(
        numbers=numbers, positions=rng.random((n, 3)) * length, cell=np.eye(3) * length, pbc=True
    )


def best(fn: Any, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="*", default=[64, 216, 512, 1000, 4096])
    parser.add_argument("--max-featomic-gradients", type=int, default=216)
    parser.add_argument("--max-featomic-values", type=int, default=1000)
    parser.add_argument("--max-dense-gradients", type=int, default=512)
    args = parser.parse_args()
    if ase is None:
        print("ase is needed for this benchmark")
        return
    ff.set_num_threads(2)
    calc = ff.LodeSphericalExpansion(P, SIGMA, LMAX, NMAX, R0)
    ref = None
    if featomic is not None:
        ref = featomic.LodeSphericalExpansion(
            density={"type": "SmearedPowerLaw", "smearing": SIGMA, "exponent": P},
            basis={
                "type": "TensorProduct",
                "max_angular": LMAX,
                "radial": {"type": "Gto", "max_radial": NMAX, "radius": R0},
            },
        )
    print(f"LODE p={P} sigma={SIGMA} lmax={LMAX} nmax={NMAX} r0={R0}, 2 threads")
    print()
    print(
        "| atoms | ff values (s) | featomic values (s) | speed-up | ff grad (s) | "
        "featomic grad (s) | speed-up | ff backward (s) | backward / values |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    calc.compute(box(8))  # build the cached k-space tables once
    for n in args.sizes:
        atoms = box(n)
        repeat = 3 if n <= 1000 else 1
        t_v = best(lambda atoms=atoms: calc.compute(atoms), repeat)
        values = calc.compute(atoms).values
        g = np.random.default_rng(1).normal(size=values.shape)
        t_b = best(lambda atoms=atoms, g=g: calc.backward(atoms, g), repeat)
        t_g = (
            best(lambda atoms=atoms: calc.compute(atoms, gradients=["positions"]), 1)
            if n <= args.max_dense_gradients
            else float("nan")
        )
        f_v = f_g = float("nan")
        if ref is not None and n <= args.max_featomic_values:
            f_v = best(lambda atoms=atoms: ref.compute(atoms), 1 if n > 216 else 2)
        if ref is not None and n <= args.max_featomic_gradients:
            f_g = best(lambda atoms=atoms: ref.compute(atoms, gradients=["positions"]), 1)
        print(
            f"| {n} | {t_v:.4f} | {f_v:.3f} | {f_v / t_v:.1f}x | {t_g:.3f} | {f_g:.2f} | "
            f"{f_g / t_g:.1f}x | {t_b:.4f} | {t_b / t_v:.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
