"""Charge equilibration (QEq) with Gaussian charges, for molecules and periodic cells.

Energy (Gaussian units times ``prefactor``; J and χ are not scaled)::

    E(q) = χᵀq + ½ qᵀAq,   A = diag(J) + prefactor · C

with C the Coulomb matrix of unit Gaussian charges of widths σ (γ_ij = √(σ_i² + σ_j²)):
``erf(r/(√2γ_ij))/r`` between atoms and the self energy ``1/(σ_i√π)`` on the diagonal; in periodic
cells its Ewald form, including the background term −(2π/V)(η² − γ_ij²) that makes charged cells
independent of the Ewald width η. The charges minimise E subject to Σq = total_charge (or one
charge per fragment). ``chemical_potential`` is μ = ∂E/∂q_i = −λ (λ the Lagrange multiplier).

Forces are Hellmann–Feynman forces at fixed χ (exact for E = E_QEq). Periodic results store the
virial W = ∂E/∂ε (derivative with respect to a homogeneous strain ε of positions and cell) and the
volume V; ``stress`` is the property W / V (ASE convention, the same as ``atoms.get_stress()``).

Solvers: "dense" (Cholesky with a Schur complement for the constraints, explicit Ewald sum, O(N²)
memory), "cg" (matrix-free projected preconditioned conjugate gradient: each product is a
real-space sum over stored neighbour pairs plus an Ewald or PME k-space sum, O(N) memory; the
default Fourier preconditioner makes the iteration count independent of N), "auto" (dense up to
``dense_limit`` atoms). The CG stops when the RMS over atoms of ∂E/∂q_i − μ_f is below
``tolerance``; ``residual`` and ``iterations`` report what was reached (the dense solve reports
its residual too). k-space: "ewald" (explicit sum over k-vectors), "pme" (smooth particle-mesh
Ewald, CG only), "auto" (PME for CG above 2000 atoms, else Ewald).
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

from . import _checks, _native
from .system import System, as_system

FloatArray = npt.NDArray[np.float64]
PerAtom = npt.ArrayLike | Mapping[Any, float]
SolverName = Literal["auto", "dense", "cg"]
KSpaceName = Literal["auto", "ewald", "pme"]
PreconditionerName = Literal["auto", "jacobi", "fourier"]

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
    virial: FloatArray | None
    """W = ∂E/∂ε (homogeneous strain of positions and cell) for periodic systems, else None."""
    volume: float | None
    """Cell volume V (periodic only)."""
    solver: str
    """"dense" or "cg"."""
    preconditioner: str
    """"cholesky" (dense), "fourier" or "jacobi" (CG); "fourier+jacobi" if the Fourier
    preconditioner lost definiteness and the CG continued with Jacobi."""
    kspace: str
    """"ewald", "pme" or "none" (open system)."""
    tolerance: float
    """The tolerance asked for."""
    iterations: int
    """Conjugate-gradient iterations (0 for dense)."""
    residual: float
    """RMS over atoms of ∂E/∂q_i − μ_f at the solution (≤ tolerance for CG)."""
    ewald_sigma: float | None
    """Ewald width η used (periodic only)."""
    cutoff: float | None
    """Real-space cutoff used (periodic only)."""
    n_kvectors: int
    """Number of k-vectors (half space) within the k-space cutoff."""

    @property
    def stress(self) -> FloatArray | None:
        """σ = W / V = (1/V) ∂E/∂ε (ASE convention), periodic only."""
        if self.virial is None or self.volume is None:
            return None
        return self.virial / self.volume


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
    kspace: KSpaceName,
    preconditioner: PreconditionerName,
    grad_charges: npt.ArrayLike | None = None,
    grad_energy: float = 0.0,
) -> Any:
    options = _options(
        solver,
        tolerance,
        prefactor,
        ewald_sigma,
        accuracy,
        max_iterations,
        dense_limit,
        kspace,
        preconditioner,
    )
    total_charge = _checks.finite_float("total_charge", total_charge)
    grad_energy = _checks.finite_float("grad_energy", grad_energy)
    system, chi, hard, sig = _common(atoms, electronegativity, hardness, sigma)
    frag, fq = _fragments(fragments, fragment_charges, total_charge)
    q0 = None if initial_charges is None else _per_atom("initial_charges", initial_charges, system)
    g = None if grad_charges is None else _per_atom("grad_charges", grad_charges, system)
    return _native.qeq(
        system._arrays(),
        chi,
        hard,
        sig,
        total_charge,
        frag,
        fq,
        q0,
        *options,
        g,
        grad_energy,
    )


def _options(
    solver: Any,
    tolerance: Any,
    prefactor: Any,
    ewald_sigma: Any,
    accuracy: Any,
    max_iterations: Any,
    dense_limit: Any,
    kspace: Any,
    preconditioner: Any,
) -> tuple[str, float, int, float, float | None, float, int, str, str]:
    """The solver options checked by type (integers must be integers, floats finite numbers),
    in the order of the native signature."""
    for name, value in [
        ("solver", solver),
        ("kspace", kspace),
        ("preconditioner", preconditioner),
    ]:
        if not isinstance(value, str):
            raise TypeError(f"{name} must be a string, got {value!r} ({type(value).__name__})")
    accuracy = _checks.positive_float("accuracy", accuracy)
    if accuracy >= 1.0:
        raise ValueError(f"accuracy must be in (0, 1), got {accuracy}")
    return (
        solver,
        _checks.positive_float("tolerance", tolerance),
        _checks.integer("max_iterations", max_iterations, minimum=0),
        _checks.positive_float("prefactor", prefactor),
        _checks.optional_positive_float("ewald_sigma", ewald_sigma),
        accuracy,
        _checks.integer("dense_limit", dense_limit, minimum=0),
        kspace,
        preconditioner,
    )


def _fragments(
    fragments: npt.ArrayLike | None,
    fragment_charges: npt.ArrayLike | None,
    total_charge: float,
) -> tuple[list[int] | None, list[float] | None]:
    frag = (
        None
        if fragments is None
        else [int(f) for f in _checks.integer_array("fragments", fragments, minimum=0)]
    )
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
    return frag, fq


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
    kspace: KSpaceName = "auto",
    preconditioner: PreconditionerName = "auto",
) -> QEqResult:
    """Charge equilibration of ``atoms`` (``ase.Atoms`` or :class:`farfield.System`).

    Per-atom parameters are arrays of shape (n,), scalars, or mappings from element symbol or
    atomic number to value. ``fragments`` (index per atom) with ``fragment_charges`` replaces
    the single total-charge constraint.

    ``solver``: "dense" (Cholesky + Schur complement, explicit Ewald, O(N²) memory), "cg"
    (matrix-free projected preconditioned CG, O(N) memory, warm-started from
    ``initial_charges``, e.g. the previous MD step) or "auto" (dense up to ``dense_limit``
    atoms, CG above). ``tolerance``: the CG stops when the RMS over atoms of ∂E/∂q_i − μ_f
    (units of χ) is below it; the result reports ``residual``, ``iterations`` and
    ``tolerance``. A CG that does not reach it in ``max_iterations`` raises RuntimeError.
    ``kspace``: "ewald", "pme" (CG only: with ``solver="auto"`` it selects the CG, with
    ``solver="dense"`` or an open system it raises ValueError) or "auto" (PME for CG above 2000
    atoms). ``preconditioner``: "fourier" (coarse-mesh Woodbury preconditioner of the long-range
    Coulomb part, periodic only: ValueError for an open system; iterations independent of N),
    "jacobi", or "auto" (Fourier for periodic cells, Jacobi otherwise); an explicit
    preconditioner with ``solver="dense"`` raises ValueError. Periodic cells use Ewald sums of
    width ``ewald_sigma`` (default from volume and atom count) truncated at relative
    ``accuracy``.

    Integer arguments must be integers (``TypeError`` for floats and bools, ``ValueError`` when
    negative), ``fragments`` too. The cost (real-space pairs, k-vectors, dense N² memory and N³
    factorisation, about 100 CG products) is estimated before any work and a solve beyond
    :func:`farfield.set_limits` raises ValueError naming the parameter to change (e.g. very wide
    ``sigma``, or ``ewald_sigma`` far from the default). Ctrl-C stops a running solve
    (KeyboardInterrupt). A system without atoms raises ValueError.
    """
    d = _call(
        atoms,
        electronegativity,
        hardness,
        sigma,
        total_charge,
        fragments,
        fragment_charges,
        solver,
        tolerance,
        initial_charges,
        prefactor,
        ewald_sigma,
        accuracy,
        max_iterations,
        dense_limit,
        kspace,
        preconditioner,
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
    kspace: KSpaceName = "auto",
    preconditioner: PreconditionerName = "auto",
) -> tuple[QEqResult, QEqGradients]:
    """The QEq solve and its vector–Jacobian products for ∂L/∂q = ``grad_charges`` and
    ∂L/∂E = ``grad_energy`` (one adjoint solve with the same matrix; formulas in the module
    docstring). Other arguments as :func:`qeq`."""
    d, g = _call(
        atoms,
        electronegativity,
        hardness,
        sigma,
        total_charge,
        fragments,
        fragment_charges,
        solver,
        tolerance,
        initial_charges,
        prefactor,
        ewald_sigma,
        accuracy,
        max_iterations,
        dense_limit,
        kspace,
        preconditioner,
        grad_charges,
        grad_energy,
    )
    return _result(d), QEqGradients(**g)


def _per_structure_floats(name: str, value: Any, n: int) -> list[float]:
    """One finite number for every structure, or one per structure (checked by type)."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()
    if isinstance(value, (str, bytes)) or not np.iterable(value):
        return [_checks.finite_float(name, value)] * n
    return [_checks.finite_float(f"{name}[{k}]", v) for k, v in enumerate(value)]


def qeq_batch(
    structures: Sequence[Any],
    electronegativity: Sequence[PerAtom],
    hardness: Sequence[PerAtom] | PerAtom,
    sigma: Sequence[PerAtom] | PerAtom,
    total_charge: Sequence[float] | float = 0.0,
    fragments: Sequence[npt.ArrayLike | None] | None = None,
    fragment_charges: Sequence[npt.ArrayLike | None] | None = None,
    initial_charges: Sequence[npt.ArrayLike | None] | None = None,
    grad_charges: Sequence[npt.ArrayLike] | None = None,
    grad_energy: Sequence[float] | float | None = None,
    solver: SolverName = "auto",
    tolerance: float = 1e-10,
    prefactor: float = 1.0,
    ewald_sigma: float | None = None,
    accuracy: float = 1e-10,
    max_iterations: int = 2000,
    dense_limit: int = 1500,
    kspace: KSpaceName = "auto",
    preconditioner: PreconditionerName = "auto",
) -> list[Any]:
    """Solves many structures (a training batch) in one call, in parallel over structures.

    ``hardness`` and ``sigma`` may be one mapping per element shared by all structures;
    ``total_charge`` one value or one per structure. ``fragments``/``fragment_charges`` and
    ``initial_charges`` (warm start) are one entry per structure (None for none). Without
    ``grad_charges`` and ``grad_energy`` returns a list of :class:`QEqResult`; with either,
    a list of ``(QEqResult, QEqGradients)`` pairs, the vector–Jacobian products of each
    structure (``grad_charges[k]`` = ∂L/∂q of structure k, ``grad_energy`` one value or one per
    structure). Other arguments as :func:`qeq`.
    """
    systems = [as_system(s) for s in structures]
    n = len(systems)

    def each(name: str, v: Any) -> list[FloatArray]:
        if isinstance(v, Mapping) or np.isscalar(v):
            return [_per_atom(name, v, s) for s in systems]
        if len(v) != n:
            raise ValueError(f"{name}: expected {n} entries (one per structure), got {len(v)}")
        return [_per_atom(name, x, s) for x, s in zip(v, systems, strict=True)]

    def per_structure(name: str, v: Sequence[Any] | None) -> list[Any]:
        if v is None:
            return [None] * n
        if len(v) != n:
            raise ValueError(f"{name}: expected {n} entries (one per structure), got {len(v)}")
        return list(v)

    options = _options(
        solver,
        tolerance,
        prefactor,
        ewald_sigma,
        accuracy,
        max_iterations,
        dense_limit,
        kspace,
        preconditioner,
    )
    totals = _per_structure_floats("total_charge", total_charge, n)
    if len(totals) != n:
        raise ValueError(
            f"total_charge: expected {n} entries (one per structure), got {len(totals)}"
        )
    frags = per_structure("fragments", fragments)
    fcharges = per_structure("fragment_charges", fragment_charges)
    pairs = [_fragments(f, c, t) for f, c, t in zip(frags, fcharges, totals, strict=True)]
    q0 = [
        None if q is None else _per_atom("initial_charges", q, s)
        for q, s in zip(per_structure("initial_charges", initial_charges), systems, strict=True)
    ]
    gq: list[FloatArray] | None = None
    ge: list[float] | None = None
    if grad_charges is not None or grad_energy is not None:
        gq = (
            [np.zeros(len(s.numbers)) for s in systems]
            if grad_charges is None
            else each("grad_charges", grad_charges)
        )
        ge = _per_structure_floats("grad_energy", 0.0 if grad_energy is None else grad_energy, n)
    out = _native.qeq_batch(
        [s._arrays() for s in systems],
        each("electronegativity", electronegativity),
        each("hardness", hardness),
        each("sigma", sigma),
        totals,
        [p[0] for p in pairs],
        [p[1] for p in pairs],
        q0,
        *options,
        gq,
        ge,
    )
    if gq is None:
        return [_result(d) for d in out]
    return [(_result(d), QEqGradients(**g)) for d, g in out]
