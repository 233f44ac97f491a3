"""Charge equilibration (QEq) with Gaussian charges, for molecules and periodic cells.

Energy (Gaussian units times ``prefactor``; J and χ are not scaled)::

    E(q) = χᵀq + ½ qᵀAq,   A = diag(J) + prefactor · C

with C the Coulomb matrix of unit Gaussian charges of widths σ (γ_ij = √(σ_i² + σ_j²)):
``erf(r/(√2γ_ij))/r`` between atoms and the self energy ``1/(σ_i√π)`` on the diagonal; in periodic
cells its Ewald form, including the background term −(2π/V)(η² − γ_ij²) that makes charged cells
independent of the Ewald width η. The charges minimise E subject to Σq = total_charge (or one
charge per fragment). ``chemical_potential`` is μ = ∂E/∂q_i = −λ (λ the Lagrange multiplier).

Forces are Hellmann–Feynman forces at fixed χ (exact for E = E_QEq); stress = (1/V) ∂E/∂ε.
:func:`qeq_vjp` returns the vector–Jacobian products a model needs to train through the solve:
with ν from one adjoint solve (A ν + Cᵀκ = ∂L/∂q, Cν = 0) and p = ½ (∂L/∂E) q − ν:
∂L/∂χ = (∂L/∂E) q − ν, ∂L/∂J_i = p_i q_i, ∂L/∂θ = Σ_ij p_i q_j ∂A_ij/∂θ for θ = σ, positions,
strain; ∂L/∂cell = h⁻ᵀ(∂L/∂ε − Rᵀ ∂L/∂R).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from . import _native
from .system import System, as_system

FloatArray = npt.NDArray[np.float64]
PerAtom = npt.ArrayLike | Mapping[Any, float]
SolverName = Literal["auto", "dense", "cg"]

__all__ = ["QEqGradients", "QEqResult", "qeq", "qeq_batch", "qeq_vjp"]


@dataclass(frozen=True)
class QEqResult:
    """Result of a QEq solve (energies in the units set by ``prefactor``)."""

    charges: FloatArray
    """Equilibrated charges, shape (n,)."""
    chemical_potential: FloatArray
    """μ_f = ∂E/∂q_i (= −λ_f) for each fragment (one entry without fragments)."""
    energy: float
    """E = χᵀq + ½ qᵀAq."""
    forces: FloatArray
    """−dE/dr at fixed χ (Hellmann–Feynman), shape (n, 3)."""
    stress: FloatArray | None
    """(1/V) ∂E/∂ε for periodic systems (ASE convention), else None."""
    virial: FloatArray | None
    """∂E/∂ε for periodic systems, else None."""
    solver: str
    """"dense" or "cg"."""
    iterations: int
    """Conjugate-gradient iterations (0 for dense)."""
    residual: float
    """RMS over atoms of ∂E/∂q_i − μ_f at the solution."""
    ewald_sigma: float | None
    """Ewald width η used (periodic only)."""
    cutoff: float | None
    """Real-space cutoff used (periodic only)."""
    n_kvectors: int
    """Number of k-vectors (half space)."""


@dataclass(frozen=True)
class QEqGradients:
    """Vector–Jacobian products ∂L/∂(inputs) given ∂L/∂q and ∂L/∂E."""

    electronegativity: FloatArray
    hardness: FloatArray
    sigma: FloatArray
    positions: FloatArray
    strain: FloatArray | None
    """∂L/∂ε (positions and cell strained together), periodic only."""
    cell: FloatArray | None
    """∂L/∂cell at fixed cartesian positions, periodic only."""


def _per_atom(name: str, value: PerAtom, system: System) -> FloatArray:
    n = len(system.numbers)
    if isinstance(value, Mapping):
        from ase.data import chemical_symbols

        out = np.empty(n)
        for i, z in enumerate(system.numbers):
            z = int(z)
            if z in value:
                out[i] = value[z]
            elif 0 <= z < len(chemical_symbols) and chemical_symbols[z] in value:
                out[i] = value[chemical_symbols[z]]
            else:
                raise ValueError(f"{name}: no value for element {z}")
        return out
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 0:
        arr = np.full(n, float(arr))
    if arr.shape != (n,):
        raise ValueError(f"{name}: expected shape ({n},), got {arr.shape}")
    return np.ascontiguousarray(arr)


def _result(d: dict[str, Any]) -> QEqResult:
    return QEqResult(**d)


def _common(
    atoms: Any,
    electronegativity: PerAtom,
    hardness: PerAtom,
    sigma: PerAtom,
) -> tuple[System, FloatArray, FloatArray, FloatArray]:
    system = as_system(atoms)
    return (
        system,
        _per_atom("electronegativity", electronegativity, system),
        _per_atom("hardness", hardness, system),
        _per_atom("sigma", sigma, system),
    )


def _call(
    atoms: Any,
    electronegativity: PerAtom,
    hardness: PerAtom,
    sigma: PerAtom,
    total_charge: float,
    fragments: npt.ArrayLike | None,
    fragment_charges: npt.ArrayLike | None,
    solver: SolverName,
    tolerance: float,
    initial_charges: npt.ArrayLike | None,
    prefactor: float,
    ewald_sigma: float | None,
    accuracy: float,
    max_iterations: int,
    dense_limit: int,
    grad_charges: npt.ArrayLike | None = None,
    grad_energy: float = 0.0,
) -> Any:
    system, chi, hard, sig = _common(atoms, electronegativity, hardness, sigma)
    frag = None if fragments is None else [int(f) for f in np.asarray(fragments).ravel()]
    fq = (
        None
        if fragment_charges is None
        else [float(c) for c in np.asarray(fragment_charges, dtype=np.float64).ravel()]
    )
    if frag is not None and fq is not None and total_charge != 0.0:
        if not np.isclose(sum(fq), total_charge, rtol=0, atol=1e-9):
            raise ValueError(
                f"total_charge {total_charge} differs from the sum of fragment_charges {sum(fq)}"
            )
    q0 = None if initial_charges is None else _per_atom("initial_charges", initial_charges, system)
    g = None if grad_charges is None else _per_atom("grad_charges", grad_charges, system)
    return _native.qeq(
        system._arrays(),
        chi,
        hard,
        sig,
        float(total_charge),
        frag,
        fq,
        q0,
        solver,
        float(tolerance),
        int(max_iterations),
        float(prefactor),
        None if ewald_sigma is None else float(ewald_sigma),
        float(accuracy),
        int(dense_limit),
        g,
        float(grad_energy),
    )


def qeq(
    atoms: Any,
    electronegativity: PerAtom,
    hardness: PerAtom,
    sigma: PerAtom,
    total_charge: float = 0.0,
    fragments: npt.ArrayLike | None = None,
    fragment_charges: npt.ArrayLike | None = None,
    solver: SolverName = "auto",
    tolerance: float = 1e-10,
    initial_charges: npt.ArrayLike | None = None,
    prefactor: float = 1.0,
    ewald_sigma: float | None = None,
    accuracy: float = 1e-10,
    max_iterations: int = 2000,
    dense_limit: int = 1500,
) -> QEqResult:
    """Charge equilibration of ``atoms`` (``ase.Atoms`` or :class:`farfield.System`).

    Per-atom parameters are arrays of shape (n,), scalars, or mappings from element symbol or
    atomic number to value. ``fragments`` (index per atom) with ``fragment_charges`` replaces
    the single total-charge constraint. ``solver``: "dense" (Cholesky + Schur complement),
    "cg" (matrix-free projected preconditioned CG, O(N) memory, warm-started from
    ``initial_charges``) or "auto" (dense up to ``dense_limit`` atoms). ``tolerance`` bounds the
    RMS spread of ∂E/∂q_i around the chemical potential. Periodic cells use Ewald sums of width
    ``ewald_sigma`` (default from volume and atom count) truncated at relative ``accuracy``.
    """
    d = _call(
        atoms, electronegativity, hardness, sigma, total_charge, fragments, fragment_charges,
        solver, tolerance, initial_charges, prefactor, ewald_sigma, accuracy, max_iterations,
        dense_limit,
    )
    return _result(d)


def qeq_vjp(
    atoms: Any,
    electronegativity: PerAtom,
    hardness: PerAtom,
    sigma: PerAtom,
    grad_charges: npt.ArrayLike,
    grad_energy: float = 0.0,
    total_charge: float = 0.0,
    fragments: npt.ArrayLike | None = None,
    fragment_charges: npt.ArrayLike | None = None,
    solver: SolverName = "auto",
    tolerance: float = 1e-10,
    initial_charges: npt.ArrayLike | None = None,
    prefactor: float = 1.0,
    ewald_sigma: float | None = None,
    accuracy: float = 1e-10,
    max_iterations: int = 2000,
    dense_limit: int = 1500,
) -> tuple[QEqResult, QEqGradients]:
    """The QEq solve and its vector–Jacobian products for ∂L/∂q = ``grad_charges`` and
    ∂L/∂E = ``grad_energy`` (one adjoint solve with the same matrix)."""
    d, g = _call(
        atoms, electronegativity, hardness, sigma, total_charge, fragments, fragment_charges,
        solver, tolerance, initial_charges, prefactor, ewald_sigma, accuracy, max_iterations,
        dense_limit, grad_charges, grad_energy,
    )
    return _result(d), QEqGradients(**g)


def qeq_batch(
    structures: Sequence[Any],
    electronegativity: Sequence[PerAtom],
    hardness: Sequence[PerAtom] | PerAtom,
    sigma: Sequence[PerAtom] | PerAtom,
    total_charge: Sequence[float] | float = 0.0,
    solver: SolverName = "auto",
    tolerance: float = 1e-10,
    prefactor: float = 1.0,
    ewald_sigma: float | None = None,
    accuracy: float = 1e-10,
    max_iterations: int = 2000,
    dense_limit: int = 1500,
) -> list[QEqResult]:
    """Solves many structures in one call, in parallel over structures. ``hardness`` and
    ``sigma`` may be one mapping per element shared by all structures; ``total_charge`` one
    value or one per structure."""
    systems = [as_system(s) for s in structures]
    n = len(systems)

    def each(name: str, v: Any) -> list[FloatArray]:
        if isinstance(v, Mapping) or np.isscalar(v):
            return [_per_atom(name, v, s) for s in systems]
        if len(v) != n:
            raise ValueError(f"{name}: expected {n} entries (one per structure), got {len(v)}")
        return [_per_atom(name, x, s) for x, s in zip(v, systems, strict=True)]

    tq = np.asarray(total_charge, dtype=np.float64)
    totals = [float(tq)] * n if tq.ndim == 0 else [float(t) for t in tq.ravel()]
    out = _native.qeq_batch(
        [s._arrays() for s in systems],
        each("electronegativity", electronegativity),
        each("hardness", hardness),
        each("sigma", sigma),
        totals,
        solver,
        float(tolerance),
        int(max_iterations),
        float(prefactor),
        None if ewald_sigma is None else float(ewald_sigma),
        float(accuracy),
        int(dense_limit),
    )
    return [_result(d) for d in out]
