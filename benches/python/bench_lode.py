"""LODE spherical expansion: farfield vs featomic 0.6.7 (same hyper-parameters, 2 threads).

Random NaCl point-charge boxes (number density 0.05 / Å³) and water boxes (1 g/cm³),
p = 1, σ = 1, GTO basis (max_radial = 3, radius = 3), max_angular = 3, k_cutoff = 1.2π/σ.
Prints markdown tables of the best of several repeats, wall-clock and CPU time (all
threads): values, values + dense position gradients, the farfield backward pass (dL/dr and
dL/dε from dL/dfeatures, without the dense gradients), and the mesh path (values and
backward) from 10³ to 10⁵ atoms (each size in a fresh process, for its peak memory) with the
fitted exponents.
Run: .venv/bin/python benches/python/bench_lode.py [--sizes 64 216 ...] [--mesh-sizes ...]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from typing import Any

os.environ.setdefault("RAYON_NUM_THREADS", "2")
os.environ.setdefault("OMP_NUM_THREADS", "2")
# numpy's BLAS threads spin after each call and would take the 2 cores from the codes timed
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

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


def water(molecules: int, seed: int = 0) -> Any:
    """Randomly oriented rigid waters on a jittered cubic lattice at 1 g/cm³."""
    rng = np.random.default_rng(seed)
    length = (molecules / 0.0334) ** (1 / 3)
    side = int(np.ceil(molecules ** (1 / 3)))
    sites = np.array([(i, j, k) for i in range(side) for j in range(side) for k in range(side)])
    sites = sites[rng.permutation(len(sites))[:molecules]] * (length / side)
    geometry = np.array([[0.0, 0.0, 0.0], [0.9572, 0.0, 0.0], [-0.2400, 0.9266, 0.0]])
    positions = []
    for s in sites:
        q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
        positions.extend(s + 0.3 * rng.random(3) + geometry @ q.T)
    return ase.Atoms(
        symbols="OHH" * molecules, positions=positions, cell=np.eye(3) * length, pbc=True
    )


def best(fn: Any, repeat: int, budget: float = 0.0) -> tuple[float, float]:
    """min wall and min CPU (process, all threads) seconds over at least `repeat` calls,
    and more while the calls so far took less than `budget` seconds (up to 20): the
    minimum of fast calls is then taken over enough samples to be stable."""
    walls: list[float] = []
    cpus: list[float] = []
    while len(walls) < repeat or (sum(walls) < budget and len(walls) < 20):
        w, c = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return min(walls), min(cpus)


def featomic_calc() -> Any:
    return featomic.LodeSphericalExpansion(
        density={"type": "SmearedPowerLaw", "smearing": SIGMA, "exponent": P},
        basis={
            "type": "TensorProduct",
            "max_angular": LMAX,
            "radial": {"type": "Gto", "max_radial": NMAX, "radius": R0},
        },
    )


def fmt(x: float, digits: int = 4) -> str:
    return "—" if not np.isfinite(x) else f"{x:.{digits}f}"


def ratio(a: float, b: float) -> str:
    return "—" if not (np.isfinite(a) and np.isfinite(b)) else f"{a / b:.1f}x"


def mesh_worker(n: int) -> None:
    """One mesh run in this process: prints values wall, CPU, peak RSS (MiB), then the same
    for the mesh backward pass (dL/dr, dL/dε from a random dL/dvalues)."""
    ff.set_num_threads(2)
    atoms = box(n)
    calc = ff.LodeSphericalExpansion(P, SIGMA, LMAX, NMAX, R0, method="mesh", accuracy=1e-4)
    calc.compute(box(64))
    wall, cpu = best(lambda: calc.compute(atoms), 1)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    g = np.random.default_rng(1).normal(size=calc.compute(atoms).values.shape)
    bwall, bcpu = best(lambda: calc.backward(atoms, g), 1)
    bpeak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{wall} {cpu} {peak} {bwall} {bcpu} {bpeak}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="*", default=[64, 216, 512, 1000, 4096])
    parser.add_argument("--water", type=int, nargs="*", default=[64, 216])
    parser.add_argument("--max-featomic-gradients", type=int, default=216)
    parser.add_argument("--max-featomic-values", type=int, default=1000)
    parser.add_argument("--max-dense-gradients", type=int, default=512)
    parser.add_argument(
        "--mesh-sizes", type=int, nargs="*", default=[1000, 3000, 10000, 30000, 100000]
    )
    parser.add_argument("--mesh-worker", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if ase is None:
        print("ase is needed for this benchmark")
        return
    if args.mesh_worker:
        mesh_worker(args.mesh_worker)
        return
    ff.set_num_threads(2)
    calc = ff.LodeSphericalExpansion(P, SIGMA, LMAX, NMAX, R0, method="exact")
    ref = featomic_calc() if featomic is not None else None
    print(f"LODE p={P} sigma={SIGMA} lmax={LMAX} nmax={NMAX} r0={R0}, 2 threads, exact path")
    print("times: best wall (s) / best CPU (s, all threads); ratios featomic / farfield")
    print()
    print(
        "| system | atoms | ff values | featomic values | speed-up wall (CPU) | ff values+grad | "
        "featomic values+grad | speed-up wall (CPU) | ff backward | backward / values |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    calc.compute(box(8))
    systems = [("NaCl box", box(n)) for n in args.sizes]
    systems += [(f"water {m}", water(m)) for m in args.water]
    nan = float("nan")
    for name, atoms in systems:
        n = len(atoms)
        # every code: at least 3 calls (1 above 1000 atoms), more for fast calls
        repeat = 3 if n <= 1000 else 1
        v = best(lambda atoms=atoms: calc.compute(atoms), repeat, 1.0)
        values = calc.compute(atoms).values
        g = np.random.default_rng(1).normal(size=values.shape)
        b = best(lambda atoms=atoms, g=g: calc.backward(atoms, g), repeat, 1.0)
        gr = (
            best(
                lambda atoms=atoms: calc.compute(atoms, gradients=["positions"]),
                repeat,
                1.0,
            )
            if n <= args.max_dense_gradients
            else (nan, nan)
        )
        fv = fg = (nan, nan)
        if ref is not None and n <= args.max_featomic_values:
            fv = best(lambda atoms=atoms: ref.compute(atoms), repeat, 1.0)
        if ref is not None and n <= args.max_featomic_gradients:
            fg = best(
                lambda atoms=atoms: ref.compute(atoms, gradients=["positions"]),
                2 if n <= 216 else 1,
            )
        print(
            f"| {name} | {n} | {fmt(v[0])} / {fmt(v[1])} | {fmt(fv[0], 3)} / {fmt(fv[1], 3)} | "
            f"{ratio(fv[0], v[0])} ({ratio(fv[1], v[1])}) | {fmt(gr[0], 3)} / {fmt(gr[1], 3)} | "
            f"{fmt(fg[0], 2)} / {fmt(fg[1], 2)} | {ratio(fg[0], gr[0])} ({ratio(fg[1], gr[1])}) | "
            f"{fmt(b[0])} / {fmt(b[1])} | {b[0] / v[0]:.2f} ({b[1] / v[1]:.2f}) |",
            flush=True,
        )
    if not args.mesh_sizes:
        return
    print()
    print("Mesh path (method='mesh', accuracy=1e-4), one fresh process per size:")
    print("values, and the mesh backward pass (dL/dr and dL/dε from dL/dvalues)")
    print()
    print(
        "| atoms | values wall (s) | values CPU (s) | peak RSS values (MiB) | "
        "backward wall (s) | backward CPU (s) | backward / values wall (CPU) | "
        "peak RSS with backward (MiB) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    sizes: list[int] = []
    times: dict[str, list[float]] = {"values wall": [], "values CPU": []}
    times.update({"backward wall": [], "backward CPU": []})
    for n in args.mesh_sizes:
        out = subprocess.run(
            [sys.executable, __file__, "--mesh-worker", str(n)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        wall, cpu, peak, bwall, bcpu, bpeak = (float(x) for x in out[-6:])
        sizes.append(n)
        for key, t in zip(times, (wall, cpu, bwall, bcpu), strict=True):
            times[key].append(t)
        print(
            f"| {n} | {wall:.3f} | {cpu:.3f} | {peak:.0f} | {bwall:.3f} | {bcpu:.3f} | "
            f"{bwall / wall:.2f} ({bcpu / cpu:.2f}) | {bpeak:.0f} |",
            flush=True,
        )
    if len(sizes) > 1:
        x = np.log(sizes)
        print()
        fits = ", ".join(
            f"{key} a = {np.polyfit(x, np.log(t), 1)[0]:.2f}" for key, t in times.items()
        )
        print(f"fitted exponents t ∝ N^a: {fits}")


if __name__ == "__main__":
    main()
