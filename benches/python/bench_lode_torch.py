"""farfield.torch against featomic-torch: the LODE spherical expansion of random NaCl boxes
(0.05 atoms/Å³, p = 1, σ = 1, GTO max_radial = 3, radius = 3, max_angular = 3; the settings of
bench_lode.py), forward and forward + backward (dL/dpositions of a weighted sum of every
coefficient), 216 and 1000 atoms, and for farfield the double backward in the upstream
gradient (what a force loss on a model built on the features needs; featomic-torch gives first
derivatives only).

featomic-torch pins its own torch version, so this runs in a separate environment with
farfield on the path, e.g.

    python -m venv /tmp/ftvenv && /tmp/ftvenv/bin/pip install featomic-torch ase
    PYTHONPATH=python /tmp/ftvenv/bin/python benches/python/bench_lode_torch.py
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("RAYON_NUM_THREADS", "2")
os.environ.setdefault("OMP_NUM_THREADS", "2")

import ase
import numpy as np
import torch

import farfield as ff
import farfield.torch as fft

SIGMA, LMAX, NMAX, R0, P = 1.0, 3, 3, 3.0, 1


def box(n: int, seed: int = 0) -> ase.Atoms:
    rng = np.random.default_rng(seed)
    length = (n / 0.05) ** (1 / 3)
    numbers = np.array([11, 17] * (n // 2) + [11] * (n % 2))
    return ase.Atoms(
        numbers=numbers, positions=rng.random((n, 3)) * length, cell=np.eye(3) * length, pbc=True
    )


def best_of(fn: Callable[[], Any], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def farfield_runs(atoms: ase.Atoms) -> tuple[Callable[[], Any], ...]:
    calc = ff.LodeSphericalExpansion(
        exponent=P, smearing=SIGMA, max_angular=LMAX, max_radial=NMAX, radius=R0
    )
    numbers = atoms.numbers
    cell = torch.tensor(np.array(atoms.cell))

    def forward() -> torch.Tensor:
        return fft.lode_spherical_expansion(calc, torch.tensor(atoms.positions), numbers, cell)

    def backward() -> torch.Tensor:
        r = torch.tensor(atoms.positions, requires_grad=True)
        x = fft.lode_spherical_expansion(calc, r, numbers, cell)
        (g,) = torch.autograd.grad(x.sum(), r)
        return g

    def double() -> torch.Tensor:
        r = torch.tensor(atoms.positions, requires_grad=True)
        x = fft.lode_spherical_expansion(calc, r, numbers, cell, position_hessian="omit")
        w = torch.ones_like(x, requires_grad=True)
        (g,) = torch.autograd.grad((w * x).sum(), r, create_graph=True)
        (gw,) = torch.autograd.grad((g**2).sum(), w)
        return gw

    return forward, backward, double


def featomic_runs(atoms: ase.Atoms) -> tuple[Callable[[], Any], ...]:
    import featomic.torch

    calc = featomic.torch.LodeSphericalExpansion(
        density={"type": "SmearedPowerLaw", "smearing": SIGMA, "exponent": P},
        basis={
            "type": "TensorProduct",
            "max_angular": LMAX,
            "radial": {"type": "Gto", "max_radial": NMAX, "radius": R0},
        },
    )

    def forward() -> Any:
        (system,) = featomic.torch.systems_to_torch([atoms])
        return calc([system])

    def backward() -> torch.Tensor:
        (system,) = featomic.torch.systems_to_torch([atoms], positions_requires_grad=True)
        tensor = calc([system])
        total = sum(block.values.sum() for block in tensor.blocks())
        (g,) = torch.autograd.grad(total, system.positions)
        return g

    return forward, backward


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[216, 1000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--max-dense",
        type=int,
        default=216,
        help="largest N for featomic-torch's backward and farfield's double backward (both "
        "go through dense O(N²) position gradients)",
    )
    args = parser.parse_args()
    torch.set_num_threads(2)
    print(f"{'N':>6} {'code':>14} {'fwd s':>8} {'+bwd s':>8} {'+2nd s':>8}")
    for n in args.sizes:
        atoms = box(n)
        f_fwd, f_bwd, f_double = farfield_runs(atoms)
        dense = n <= args.max_dense
        times_ff = [best_of(f_fwd, args.repeat), best_of(f_bwd, args.repeat)]
        times_ff.append(best_of(f_double, max(1, args.repeat - 1)) if dense else float("nan"))
        print(f"{n:>6} {'farfield':>14} " + " ".join(f"{t:>8.4f}" for t in times_ff), flush=True)
        g_fwd, g_bwd = featomic_runs(atoms)
        times_ft = [best_of(g_fwd, args.repeat)]
        times_ft.append(best_of(g_bwd, args.repeat) if dense else float("nan"))
        print(f"{n:>6} {'featomic-torch':>14} " + " ".join(f"{t:>8.4f}" for t in times_ft))
        ratios = [b / a for a, b in zip(times_ff, times_ft, strict=False)]
        # the same function: the gradients of the summed coefficients agree
        diff = (f_bwd() - g_bwd()).abs().max().item() if dense else float("nan")
        print(
            f"{n:>6} {'ratio':>14} "
            + " ".join(f"{r:>8.1f}" for r in ratios)
            + f"   (max |ΔdL/dr| = {diff:.1e})",
            flush=True,
        )


if __name__ == "__main__":
    main()
