"""Charge equilibration (QEq with Gaussian charges) of a charged cluster and of a periodic cell.

* a Na₁₄Cl₁₃⁺ cluster: a 3 × 3 × 3 rock-salt cube (a = 5.64 Å) with random displacements
  (0.1 Å), total charge +1 e, open boundaries;
* a periodic Na₃₂Cl₃₂ cell: the 2 × 2 × 2 conventional rock-salt supercell with random
  displacements (0.2 Å), neutral.

E(q) = χᵀq + ½ qᵀ(diag(J) + k_e C)q with Gaussian charges of width σ, minimised under the
total-charge constraint. Checks: the cluster's charges against an independent numpy solve of
the same linear system (C_ij = erf(r_ij / √(2(σ_i² + σ_j²))) / r_ij, C_ii = 1 / (σ_i √π)), the
cell's dense (Cholesky, explicit Ewald) against its conjugate-gradient solve, and the constraint.
"""

from __future__ import annotations

import math
import pathlib
from typing import Any

import numpy as np

import farfield as ff

from . import _common as c

FloatArray = c.FloatArray

NA, CL = 11, 17
#: eV, eV/e², Å (the README's example parameters)
CHI = {NA: -1.0, CL: 1.5}
HARDNESS = {NA: 6.0, CL: 5.0}
SIGMA = {NA: 0.8, CL: 1.0}
LATTICE = 5.64


def rocksalt(repeat: int, displacement: float, rng: np.random.Generator) -> tuple[Any, ...]:
    """Positions and atomic numbers of a ``repeat``³ block of rock-salt sites (spacing a/2),
    Na on even and Cl on odd sites, with Gaussian displacements."""
    grid = np.array(np.meshgrid(*[np.arange(repeat)] * 3, indexing="ij")).reshape(3, -1).T
    numbers = np.where(grid.sum(axis=1) % 2 == 0, NA, CL).astype(np.int32)
    positions = grid * LATTICE / 2 + rng.normal(scale=displacement, size=grid.shape)
    return positions, numbers


def numpy_qeq(system: ff.System, total_charge: float) -> FloatArray:
    """Reference charges of an open system: the linear system of the constrained minimum,
    built and solved with numpy (N² pair terms)."""
    x = np.asarray(system.positions)
    z = np.asarray(system.numbers)
    sigma = np.array([SIGMA[int(k)] for k in z])
    r = np.linalg.norm(x[:, None] - x[None], axis=-1)
    gamma = np.sqrt(sigma[:, None] ** 2 + sigma[None] ** 2)
    np.fill_diagonal(r, 1.0)
    coulomb = np.array([[math.erf(v) for v in row] for row in r / (math.sqrt(2) * gamma)]) / r
    np.fill_diagonal(coulomb, 1.0 / (sigma * math.sqrt(math.pi)))
    n = len(z)
    a = np.zeros((n + 1, n + 1))
    a[:n, :n] = ff.units.EV_ANGSTROM * coulomb + np.diag([HARDNESS[int(k)] for k in z])
    a[:n, n] = a[n, :n] = 1.0
    b = np.concatenate([-np.array([CHI[int(k)] for k in z]), [total_charge]])
    return np.asarray(np.linalg.solve(a, b)[:n])


def _calculator(total_charge: float, solver: str) -> ff.QEq:
    return ff.QEq(
        electronegativity=CHI,
        hardness=HARDNESS,
        sigma=SIGMA,
        total_charge=total_charge,
        solver=solver,  # type: ignore[arg-type]
        tolerance=1e-10,
        prefactor=ff.units.EV_ANGSTROM,
    )


def _plot(systems: list[tuple[str, ff.System, ff.QEqResult]], path: pathlib.Path) -> bool:
    plt = c.pyplot()
    if plt is None:
        return False
    limit = max(float(np.abs(r.charges).max()) for _, _, r in systems)
    fig = plt.figure(figsize=(11.0, 5.0))
    scatter = None
    for k, (name, system, result) in enumerate(systems):
        ax = fig.add_subplot(1, len(systems), k + 1, projection="3d")
        x = np.asarray(system.positions)
        sizes = np.where(np.asarray(system.numbers) == NA, 60, 110)
        scatter = ax.scatter(
            x[:, 0],
            x[:, 1],
            x[:, 2],
            c=result.charges,
            cmap="coolwarm",
            vmin=-limit,
            vmax=limit,
            s=sizes,
            edgecolors="k",
            linewidths=0.3,
            depthshade=False,
        )
        if system.cell is not None:
            cell = np.asarray(system.cell)
            for corner in np.ndindex(2, 2, 2):
                start = np.array(corner) @ cell
                for axis in range(3):
                    if corner[axis] == 0:
                        end = start + cell[axis]
                        ax.plot(*np.stack([start, end]).T, color="grey", lw=0.6)
        ax.set_title(f"{name}\nE = {result.energy:.3f} eV", fontsize=9)
        ax.set_xlabel("x (Å)", fontsize=8)
        ax.set_ylabel("y (Å)", fontsize=8)
        ax.set_zlabel("z (Å)", fontsize=8)
    if scatter is not None:
        fig.colorbar(scatter, ax=fig.axes, shrink=0.7, label="charge (e)  [small: Na, large: Cl]")
    return c.save_figure(fig, path)


def main(*, quick: bool, output: pathlib.Path, progress: bool) -> int:
    clock = c.Stopwatch()
    rng = np.random.default_rng(7)
    print(
        f"farfield {ff.__version__} ({ff.get_num_threads()} threads): charge equilibration "
        f"with Gaussian charges, eV and Å\nχ = {CHI} eV, J = {HARDNESS} eV/e², σ = {SIGMA} Å "
        "(keys: atomic numbers)\n"
    )
    positions, numbers = rocksalt(3, 0.1, rng)
    cluster = ff.System(positions, numbers)
    positions, numbers = rocksalt(4, 0.2, rng)
    cell = ff.System(positions % (2 * LATTICE), numbers, np.eye(3) * 2 * LATTICE)
    runs = [
        ("Na14Cl13+ cluster (open)", cluster, 1.0, "auto"),
        ("Na32Cl32 cell (periodic)", cell, 0.0, "dense"),
        ("Na32Cl32 cell (periodic)", cell, 0.0, "cg"),
    ]
    results: list[tuple[str, ff.System, float, ff.QEqResult]] = []
    with c.progress_bar(len(runs), "QEq", progress) as bar:
        for name, system, charge, solver in runs:
            results.append((name, system, charge, _calculator(charge, solver).compute(system)))
            bar.update()
    clock.lap("QEq")

    print(
        "| system | atoms | total charge (e) | solver | energy (eV) | μ (eV) "
        "| q(Na) mean ± std (e) | q(Cl) mean ± std (e) | iterations | time (ms) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, system, charge, r in results:
        z = np.asarray(system.numbers)
        qna, qcl = r.charges[z == NA], r.charges[z == CL]
        print(
            f"| {name} | {len(z)} | {charge:+g} | {r.solver} ({r.matrix}) | {r.energy:.6f} "
            f"| {float(r.chemical_potential[0]):.4f} | {qna.mean():+.4f} ± {qna.std():.4f} "
            f"| {qcl.mean():+.4f} ± {qcl.std():.4f} | {r.iterations} "
            f"| {1e3 * (r.timing.choose + r.timing.compute):.1f} |"
        )
    print()
    plotted = _plot(
        [(results[0][0], results[0][1], results[0][3]), (results[1][0], cell, results[1][3])],
        output / "qeq_charges.png",
    )
    reference = numpy_qeq(cluster, 1.0)
    cluster_error = float(np.abs(results[0][3].charges - reference).max())
    solver_gap = float(np.abs(results[1][3].charges - results[2][3].charges).max())
    energy_gap = abs(results[1][3].energy - results[2][3].energy)
    print("\nchecks:")
    ok = c.check(
        f"cluster charges = an independent numpy solve (max |Δq| = {cluster_error:.1e} < 1e-8)",
        cluster_error < 1e-8,
    )
    ok &= c.check(
        f"cell: dense and CG solves agree (max |Δq| = {solver_gap:.1e} < 1e-7, "
        f"|ΔE| = {energy_gap:.1e} eV < 1e-7)",
        solver_gap < 1e-7 and energy_gap < 1e-7,
    )
    sums = [abs(float(r.charges.sum()) - q) for _, _, q, r in results]
    ok &= c.check(f"Σq = total charge (worst {max(sums):.1e} < 1e-10)", max(sums) < 1e-10)
    ok &= c.check(
        "Na positive and Cl negative everywhere",
        all(
            bool((r.charges[np.asarray(s.numbers) == NA] > 0).all())
            and bool((r.charges[np.asarray(s.numbers) == CL] < 0).all())
            for _, s, _, r in results
        ),
    )
    summary = {
        "demo": "qeq",
        "quick": quick,
        "systems": [
            {
                "name": name,
                "solver": r.solver,
                "total_charge": charge,
                "energy_eV": r.energy,
                "charges": r.charges.tolist(),
            }
            for name, _, charge, r in results
        ],
        "plot": "qeq_charges.png" if plotted else None,
        "checks_passed": bool(ok),
        "seconds": clock.stages,
    }
    return c.finish(output, summary, clock, ok)
