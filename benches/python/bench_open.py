"""Open (non-periodic) Coulomb energy + forces: the free-space mesh against the direct sum.

A spherical cluster cut from rock salt (a = 5.64 Å, density 0.0446 atoms/Å³, positions
rattled by 0.1 Å), random ±1 charges with zero net charge. For each size:

* the free-space mesh (``ff.Coulomb(method="pme")`` on an open system), tuned once, then
  energy + forces timed (best of ``--repeat``);
* the direct O(N²) sum (``method="direct"``) where N ≤ ``--direct-max`` (2·10^4), timed once;
  beyond, its time is extrapolated as N² from the largest measured size (said in the output);
* the measured relative RMS force error sqrt(<|ΔF|²>)/F_0, F_0 = <q²>/d², d = ρ^{-1/3}: against
  the direct sum where it ran, otherwise against exact forces (numpy, all N partners) on a
  random subset of ``--sample`` atoms.

Usage: ``python benches/python/bench_open.py [--million] [--accuracy 1e-5] [--threads 2]``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import farfield as ff

DENSITY = 8 / 5.64**3


def cluster(n: int, seed: int = 0) -> tuple[ff.System, np.ndarray]:
    """The n rock-salt sites closest to the centre (a sphere), rattled; random ±1 charges."""
    rng = np.random.default_rng(seed)
    half = 5.64 / 2
    radius = (3 * n / (4 * np.pi * DENSITY)) ** (1 / 3) * 1.05 + half
    m = int(np.ceil(radius / half)) + 1
    axis = np.arange(-m, m + 1) * half
    grid = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1).reshape(-1, 3)
    grid = grid + 0.25 * half  # off-centre: no site exactly at the origin
    order = np.argsort(np.einsum("ij,ij->i", grid, grid), kind="stable")
    positions = grid[order[:n]] + rng.uniform(-0.1, 0.1, (n, 3))
    charges = np.ones(n)
    charges[rng.permutation(n)[: n // 2]] = -1.0
    return ff.System(positions, np.ones(n, dtype=np.int32), None), charges


def exact_forces(positions: np.ndarray, q: np.ndarray, atoms: np.ndarray) -> np.ndarray:
    """Exact Coulomb forces on `atoms` (all partners), in chunks."""
    out = np.zeros((len(atoms), 3))
    for k, i in enumerate(atoms):
        d = positions[i] - positions
        r2 = np.einsum("ij,ij->i", d, d)
        r2[i] = np.inf
        out[k] = q[i] * np.sum((q / r2**1.5)[:, None] * d, axis=0)
    return out


def relative_rms(a: np.ndarray, b: np.ndarray, q: np.ndarray) -> float:
    f0 = float(np.mean(q**2)) * DENSITY ** (2 / 3)
    return float(np.sqrt(np.mean(np.sum((a - b) ** 2, axis=1))) / f0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--million", action="store_true", help="also run 10^6 atoms")
    parser.add_argument("--accuracy", type=float, default=1e-5)
    parser.add_argument("--threads", type=int, default=0, help="0: all cores")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--direct-max", type=int, default=20000)
    parser.add_argument("--sample", type=int, default=300)
    parser.add_argument("--sizes", type=int, nargs="*", default=[10_000, 20_000, 100_000])
    args = parser.parse_args()
    if args.threads:
        ff.set_num_threads(args.threads)
    sizes = list(args.sizes) + ([1_000_000] if args.million else [])
    print(f"threads {ff.get_num_threads()}, accuracy {args.accuracy:g}")
    print(
        f"{'N':>9} {'mesh (s)':>9} {'tune (s)':>9} {'direct (s)':>11} {'speed-up':>9} "
        f"{'error':>9}  parameters"
    )
    rows = []
    direct_last: tuple[int, float] | None = None
    for n in sizes:
        system, q = cluster(n)
        calc = ff.Coulomb(method="pme", accuracy=args.accuracy)
        start = time.perf_counter()
        params = calc.tune(system)
        tune_s = time.perf_counter() - start
        best = np.inf
        result = None
        for _ in range(args.repeat):
            start = time.perf_counter()
            result = calc.compute(system, q, stress=False)
            best = min(best, time.perf_counter() - start)
        assert result is not None and result.forces is not None
        if n <= args.direct_max:
            start = time.perf_counter()
            exact = ff.Coulomb(method="direct").compute(system, q, stress=False)
            direct_s = time.perf_counter() - start
            direct_last = (n, direct_s)
            assert exact.forces is not None
            error = relative_rms(result.forces, exact.forces, q)
            note = ""
        else:
            rng = np.random.default_rng(1)
            atoms = rng.choice(n, size=min(args.sample, n), replace=False)
            reference = exact_forces(system.positions, q, atoms)
            error = relative_rms(result.forces[atoms], reference, q)
            assert direct_last is not None
            direct_s = direct_last[1] * (n / direct_last[0]) ** 2
            note = " (direct extrapolated as N²)"
        rows.append((n, best))
        print(
            f"{n:>9} {best:>9.3f} {tune_s:>9.3f} {direct_s:>11.2f} {direct_s / best:>9.1f} "
            f"{error:>9.2e}  σ={params.smearing:.3g} rc={params.cutoff:.3g} "
            f"h={params.mesh_spacing:.3g} n={params.order}{note}",
            flush=True,
        )
    if len(rows) >= 2:
        (n0, t0), (n1, t1) = rows[0], rows[-1]
        print(f"cost exponent {n0}..{n1}: {np.log(t1 / t0) / np.log(n1 / n0):.3f}")


if __name__ == "__main__":
    main()
