"""Charge equilibration (QEq) with Gaussian charges, for molecules and periodic cells.

Energy (Gaussian units times ``prefactor``; J and χ are not scaled)::

    E(q) = χᵀq + ½ qᵀAq,   A = diag(J) + prefactor · C

with C the Coulomb matrix of unit Gaussian charges of widths σ (γ_ij = √(σ_i² + σ_j²)):
``erf(r/(√2γ_ij))/r`` between atoms and the self energy ``1/(σ_i√π)`` on the diagonal; in periodic
cells its Ewald form, including the background term −(2π/V)(η² − γ_ij²) that makes charged cells
independent of the Ewald width η. The charges minimise E subject to Σq = total_charge (or one
charge per fragment). ``chemical_potential`` is μ = ∂E/∂q_i = −λ (λ the Lagrange multiplier).

Forces are Hellmann–Feynman forces at fixed χ (exact for E = E_QEq). Periodic results hold the
stress σ = (1/V) ∂E/∂ε (ASE convention, the same as ``atoms.get_stress()``) and the virial
−∂E/∂ε = −V σ, both from the core, with ε a homogeneous strain of positions and cell acting on
column vectors (r → (1+ε) r, cell rows H → H(1+ε)ᵀ); see :mod:`farfield.results`. (Before the
one result family, ``virial`` was +∂E/∂ε.)

Solvers: "dense" (Cholesky with a Schur complement for the constraints, explicit Ewald sum, O(N²)
memory), "cg" (matrix-free projected preconditioned conjugate gradient: each product is a
real-space sum over stored neighbour pairs plus an Ewald or PME k-space sum, O(N) memory; the
default Fourier preconditioner makes the iteration count independent of N), "auto" (dense up to
``dense_limit`` atoms). The CG stops when the RMS over atoms of ∂E/∂q_i − μ_f is below
``tolerance``; ``residual`` and ``iterations`` report what was reached (the dense solve reports
its residual too). k-space: "ewald" (explicit sum over k-vectors), "pme" (smooth particle-mesh
Ewald, CG only), "auto" (PME for CG above 2000 atoms, else Ewald). The Ewald sums use the
smearing η (``smearing``, the Gaussian width of the range split) and are truncated at the relative
``ewald_truncation``.
:func:`qeq_vjp` returns the vector–Jacobian products a model needs to train through the solve:
with ν from one adjoint solve (A ν + Cᵀκ = ∂L/∂q, Cν = 0) and p = ½ (∂L/∂E) q − ν:
∂L/∂χ = (∂L/∂E) q − ν, ∂L/∂J_i = p_i q_i, ∂L/∂θ = Σ_ij p_i q_j ∂A_ij/∂θ for θ = σ, positions,
strain (column-vector convention); ∂L/∂cell = h⁻ᵀ((∂L/∂ε)ᵀ − Rᵀ ∂L/∂R) at fixed Cartesian
positions, computed in the core.

:class:`QEq` is the calculator object (settings in the constructor, reused across calls);
:func:`qeq`, :func:`qeq_vjp` and :func:`qeq_batch` are one-shot wrappers on it.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from . import _checks, _native
from ._compat import renamed_keywords
from .coulomb import _same_cell
from .results import CoulombParameters, EnergyResult, Timing
from .system import System, as_system

FloatArray = npt.NDArray[np.float64]
PerAtom = npt.ArrayLike | Mapping[Any, float]
SolverName = Literal["auto", "dense", "cg"]
KSpaceName = Literal["auto", "ewald", "pme"]
PreconditionerName = Literal["auto", "jacobi", "fourier"]

__all__ = ["QEq", "QEqGradients", "QEqResult", "qeq", "qeq_batch", "qeq_vjp"]

#: deprecated keyword -> new keyword of every QEq entry point
_RENAMED = {"ewald_sigma": "smearing", "accuracy": "ewald_truncation"}


@dataclass(frozen=True, kw_only=True)
class QEqResult(EnergyResult):
    """Result of a QEq solve: an :class:`farfield.EnergyResult` (energy, forces, stress,
    virial, parameters, timing; energies in the units set by ``prefactor``; ``potentials`` is
    None) plus the charges, the chemical potential and the solver statistics.

    ``stress`` = (1/V) ∂E/∂ε and ``virial`` = −∂E/∂ε = −V σ come from the core (periodic only;
    see :mod:`farfield.results` for the strain convention). ``parameters`` holds the Ewald/PME
    parameters of the solve (``method`` "ewald", "pme" or "direct" for open systems,
    ``smearing`` η, ``cutoff``, ``k_cutoff``, with PME ``mesh`` and ``order``, ``exponent`` 1,
    ``prefactor``); ``timing.compute`` the wall time of the solve.
    """

    charges: FloatArray
    """Equilibrated charges, shape (n,)."""
    chemical_potential: FloatArray
    """μ_f = ∂E/∂q_i (= −λ_f) for each fragment (one entry without fragments)."""
    volume: float | None
    """Cell volume V (periodic only)."""
    solver: str
    """"dense" or "cg"."""
    preconditioner: str
    """"cholesky" (dense), "fourier" or "jacobi" (CG); "fourier+jacobi" if the Fourier
    preconditioner lost definiteness and the CG continued with Jacobi."""
    matrix: str
    """"factorised" (dense), "stored" (CG products with the stored N² matrix, open systems
    whose matrix fits the memory limit) or "matrix-free" (CG)."""
    kspace: str
    """"ewald", "pme" or "none" (open system)."""
    tolerance: float
    """The tolerance asked for."""
    iterations: int
    """Conjugate-gradient iterations (0 for dense)."""
    residual: float
    """RMS over atoms of ∂E/∂q_i − μ_f at the solution (≤ tolerance for CG)."""
    n_kvectors: int
    """Number of k-vectors (half space) within the k-space cutoff."""

    @property
    def smearing(self) -> float | None:
        """The Ewald smearing η used (periodic only; ``parameters.smearing``)."""
        return self.parameters.smearing

    @property
    def cutoff(self) -> float | None:
        """The real-space cutoff used (periodic only; ``parameters.cutoff``)."""
        return self.parameters.cutoff

    @property
    def ewald_sigma(self) -> float | None:
        """Deprecated: use ``smearing`` (or ``parameters.smearing``)."""
        warnings.warn(
            "QEqResult.ewald_sigma is deprecated, use QEqResult.smearing",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.parameters.smearing


@dataclass(frozen=True)
class QEqGradients:
    """Vector–Jacobian products ∂L/∂(inputs) given ∂L/∂q and ∂L/∂E."""

    electronegativity: FloatArray
    hardness: FloatArray
    sigma: FloatArray
    positions: FloatArray
    strain: FloatArray | None
    """∂L/∂ε (positions and cell strained together, column-vector convention r → (1+ε) r,
    cell rows H → H(1+ε)ᵀ; symmetric for QEq), periodic only."""
    cell: FloatArray | None
    """∂L/∂H (rows of H the cell vectors) at fixed Cartesian positions, periodic only."""


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


def _result(d: dict[str, Any], prefactor: float) -> QEqResult:
    parameters = CoulombParameters.from_native(d["parameters"], exponent=1.0, prefactor=prefactor)
    return QEqResult(
        energy=float(d["energy"]),
        forces=d["forces"],
        stress=d["stress"],
        virial=d["virial"],
        potentials=None,
        parameters=parameters,
        timing=Timing(choose=0.0, compute=float(d["seconds"])),
        charges=d["charges"],
        chemical_potential=d["chemical_potential"],
        volume=d["volume"],
        solver=d["solver"],
        preconditioner=d["preconditioner"],
        matrix=d["matrix"],
        kspace=d["kspace"],
        tolerance=d["tolerance"],
        iterations=d["iterations"],
        residual=d["residual"],
        n_kvectors=d["n_kvectors"],
    )


def _options(
    solver: Any,
    tolerance: Any,
    prefactor: Any,
    smearing: Any,
    ewald_truncation: Any,
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
    ewald_truncation = _checks.positive_float("ewald_truncation", ewald_truncation)
    if ewald_truncation >= 1.0:
        raise ValueError(f"ewald_truncation must be in (0, 1), got {ewald_truncation}")
    return (
        solver,
        _checks.positive_float("tolerance", tolerance),
        _checks.integer("max_iterations", max_iterations, minimum=0),
        _checks.positive_float("prefactor", prefactor),
        _checks.optional_positive_float("smearing", smearing),
        ewald_truncation,
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


def _per_structure_floats(name: str, value: Any, n: int) -> list[float]:
    """One finite number for every structure, or one per structure (checked by type)."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()
    if isinstance(value, (str, bytes)) or not np.iterable(value):
        return [_checks.finite_float(name, value)] * n
    return [_checks.finite_float(f"{name}[{k}]", v) for k, v in enumerate(value)]


class QEq:
    """Charge equilibration calculator: settings once, then :meth:`compute` (and
    :meth:`backward` for training) on any number of systems.

    Args:
        electronegativity, hardness, sigma: the per-atom parameters χ, J > 0 and the Gaussian
            widths σ_i > 0: arrays of shape (n,), scalars, or mappings from element symbol or
            atomic number to value. Any of them may be left ``None`` here and given to each
            call instead (e.g. the χ a model predicts per structure).
        total_charge: Σq (ignored when a call gives ``fragments``).
        solver: "dense" (Cholesky + Schur complement, explicit Ewald, O(N²) memory), "cg"
            (matrix-free projected preconditioned CG, O(N) memory) or "auto" (dense up to
            ``dense_limit`` atoms, CG above).
        tolerance: the CG stops when the RMS over atoms of ∂E/∂q_i − μ_f (units of χ) is below
            it; the result reports ``residual``, ``iterations`` and ``tolerance``. A CG that
            does not reach it in ``max_iterations`` raises :class:`farfield.ConvergenceError`
            (a RuntimeError).
        prefactor: k_e, multiplying every electrostatic term of A (not J or χ).
        smearing: the Ewald smearing η (Gaussian width of the range split) of periodic cells;
            by default chosen from the volume and atom count (and kept for later calls on the
            same cell).
        ewald_truncation: relative truncation of the Ewald sums, in (0, 1):
            r_c = x·max(η, √2 max σ), k_c = x/η with x = √(−2 ln ewald_truncation).
        max_iterations, dense_limit: CG iteration limit; "auto" uses the dense solver up to
            ``dense_limit`` atoms.
        kspace: "ewald", "pme" (CG only) or "auto" (PME for CG above 2000 atoms).
        preconditioner: "fourier" (periodic only; iterations independent of N), "jacobi" or
            "auto" (Fourier for periodic cells, Jacobi otherwise); not with ``solver="dense"``.
        warm_start: start the CG from the charges of the previous call on a system with the
            same number of atoms (an MD step), unless a call gives ``initial_charges``.

    ``ewald_sigma=`` and ``accuracy=`` are deprecated aliases of ``smearing=`` and
    ``ewald_truncation=``.

    Reuse across calls: the Ewald smearing chosen for a system is kept while the number of
    atoms, the largest σ and the cell (within :data:`farfield.coulomb.CELL_TOLERANCE`) stay
    the same (the cutoffs, k-vectors and PME mesh follow from it); ``tunings`` counts the
    choices. The cost of a solve is estimated before any work and a solve beyond
    :func:`farfield.set_limits` raises ValueError naming the parameter to change. Ctrl-C stops
    a running solve (KeyboardInterrupt).
    """

    @renamed_keywords(**_RENAMED)
    def __init__(
        self,
        electronegativity: PerAtom | None = None,
        hardness: PerAtom | None = None,
        sigma: PerAtom | None = None,
        total_charge: float = 0.0,
        solver: SolverName = "auto",
        tolerance: float = 1e-10,
        prefactor: float = 1.0,
        smearing: float | None = None,
        ewald_truncation: float = 1e-10,
        max_iterations: int = 2000,
        dense_limit: int = 1500,
        kspace: KSpaceName = "auto",
        preconditioner: PreconditionerName = "auto",
        warm_start: bool = True,
    ) -> None:
        self._options = _options(
            solver,
            tolerance,
            prefactor,
            smearing,
            ewald_truncation,
            max_iterations,
            dense_limit,
            kspace,
            preconditioner,
        )
        self.electronegativity = _copy(electronegativity)
        self.hardness = _copy(hardness)
        self.sigma = _copy(sigma)
        self.total_charge = _checks.finite_float("total_charge", total_charge)
        self.prefactor = self._options[3]
        self.smearing = self._options[4]
        self.ewald_truncation = self._options[5]
        self.warm_start = bool(warm_start)
        self.tunings = 0
        self._cache: tuple[int, Any, float, float] | None = None
        self._last_charges: FloatArray | None = None

    def __repr__(self) -> str:
        solver, tolerance, _, prefactor, smearing, truncation, _, kspace, precond = self._options
        return (
            f"QEq(solver={solver!r}, tolerance={tolerance!r}, prefactor={prefactor!r}, "
            f"smearing={smearing!r}, ewald_truncation={truncation!r}, kspace={kspace!r}, "
            f"preconditioner={precond!r})"
        )

    def _parameters(
        self,
        system: System,
        electronegativity: PerAtom | None,
        hardness: PerAtom | None,
        sigma: PerAtom | None,
    ) -> tuple[FloatArray, FloatArray, FloatArray]:
        out = []
        for name, given, default in [
            ("electronegativity", electronegativity, self.electronegativity),
            ("hardness", hardness, self.hardness),
            ("sigma", sigma, self.sigma),
        ]:
            value = default if given is None else given
            if value is None:
                raise ValueError(f"{name} is required (give it to QEq(...) or to this call)")
            out.append(_per_atom(name, value, system))
        return out[0], out[1], out[2]

    def _smearing_for(self, system: System, sig: FloatArray) -> float | None:
        """The fixed smearing, or the one chosen before for this (N, max σ, cell)."""
        if self.smearing is not None or system.cell is None or self._cache is None:
            return self.smearing
        n, cell, max_sigma, eta = self._cache
        if n == len(system) and max_sigma == float(sig.max()) and _same_cell(cell, system.cell):
            return eta
        return None

    def _remember(self, system: System, sig: FloatArray, result: QEqResult, reused: bool) -> None:
        if not reused and self.smearing is None and system.cell is not None:
            self.tunings += 1
            eta = result.parameters.smearing
            if eta is not None:
                cell = np.array(system.cell, dtype=np.float64)
                self._cache = (len(system), cell, float(sig.max()), float(eta))
        self._last_charges = result.charges

    def _call(
        self,
        atoms: Any,
        electronegativity: PerAtom | None,
        hardness: PerAtom | None,
        sigma: PerAtom | None,
        fragments: npt.ArrayLike | None,
        fragment_charges: npt.ArrayLike | None,
        initial_charges: npt.ArrayLike | None,
        grad: tuple[npt.ArrayLike, float] | None,
    ) -> Any:
        system = as_system(atoms)
        chi, hard, sig = self._parameters(system, electronegativity, hardness, sigma)
        frag, fq = _fragments(fragments, fragment_charges, self.total_charge)
        if initial_charges is not None:
            q0: FloatArray | None = _per_atom("initial_charges", initial_charges, system)
        elif self.warm_start and self._last_charges is not None:
            q0 = self._last_charges if len(self._last_charges) == len(system) else None
        else:
            q0 = None
        eta = self._smearing_for(system, sig) if len(system) else self.smearing
        reused = eta is not None and self.smearing is None
        solver, tolerance, max_iterations, prefactor, _, truncation, dense, kspace, pre = (
            self._options
        )
        g = None
        grad_energy = 0.0
        if grad is not None:
            g = _per_atom("grad_charges", grad[0], system)
            grad_energy = _checks.finite_float("grad_energy", grad[1])
        out = _native.qeq(
            system._arrays(),
            chi,
            hard,
            sig,
            self.total_charge,
            frag,
            fq,
            q0,
            solver,
            tolerance,
            max_iterations,
            prefactor,
            eta,
            truncation,
            dense,
            kspace,
            pre,
            g,
            grad_energy,
        )
        d, grads = (out, None) if grad is None else out
        result = _result(d, self.prefactor)
        self._remember(system, sig, result, reused)
        return result, grads

    def compute(
        self,
        atoms: Any,
        electronegativity: PerAtom | None = None,
        hardness: PerAtom | None = None,
        sigma: PerAtom | None = None,
        *,
        fragments: npt.ArrayLike | None = None,
        fragment_charges: npt.ArrayLike | None = None,
        initial_charges: npt.ArrayLike | None = None,
    ) -> QEqResult:
        """Equilibrates the charges of ``atoms`` (``ase.Atoms`` or :class:`farfield.System`).

        Per-atom parameters given here replace those of the constructor for this call.
        ``fragments`` (index per atom) with ``fragment_charges`` replaces the single
        total-charge constraint. ``initial_charges`` warm-starts the CG (by default the
        charges of the previous call, see ``warm_start``). A system without atoms raises
        ValueError.
        """
        result, _ = self._call(
            atoms,
            electronegativity,
            hardness,
            sigma,
            fragments,
            fragment_charges,
            initial_charges,
            None,
        )
        return result  # type: ignore[no-any-return]

    def vjp(
        self,
        atoms: Any,
        grad_charges: npt.ArrayLike | None = None,
        grad_energy: float = 0.0,
        electronegativity: PerAtom | None = None,
        hardness: PerAtom | None = None,
        sigma: PerAtom | None = None,
        *,
        fragments: npt.ArrayLike | None = None,
        fragment_charges: npt.ArrayLike | None = None,
        initial_charges: npt.ArrayLike | None = None,
    ) -> tuple[QEqResult, QEqGradients]:
        """The solve and its vector–Jacobian products for ∂L/∂q = ``grad_charges`` (zeros
        when None) and ∂L/∂E = ``grad_energy``: one adjoint solve with the same matrix."""
        system = as_system(atoms)
        if grad_charges is None:
            grad_charges = np.zeros(len(system))
        result, grads = self._call(
            atoms,
            electronegativity,
            hardness,
            sigma,
            fragments,
            fragment_charges,
            initial_charges,
            (grad_charges, grad_energy),
        )
        return result, QEqGradients(**grads)

    def backward(
        self,
        atoms: Any,
        grad_charges: npt.ArrayLike | None = None,
        grad_energy: float = 0.0,
        electronegativity: PerAtom | None = None,
        hardness: PerAtom | None = None,
        sigma: PerAtom | None = None,
        *,
        fragments: npt.ArrayLike | None = None,
        fragment_charges: npt.ArrayLike | None = None,
        initial_charges: npt.ArrayLike | None = None,
    ) -> QEqGradients:
        """The vector–Jacobian products ∂L/∂(χ, J, σ, positions, strain, cell) for
        ∂L/∂q = ``grad_charges`` and ∂L/∂E = ``grad_energy`` (see :meth:`vjp`, which also
        returns the forward result)."""
        return self.vjp(
            atoms,
            grad_charges,
            grad_energy,
            electronegativity,
            hardness,
            sigma,
            fragments=fragments,
            fragment_charges=fragment_charges,
            initial_charges=initial_charges,
        )[1]

    def batch(
        self,
        structures: Sequence[Any],
        electronegativity: Sequence[PerAtom] | PerAtom | None = None,
        hardness: Sequence[PerAtom] | PerAtom | None = None,
        sigma: Sequence[PerAtom] | PerAtom | None = None,
        total_charge: Sequence[float] | float | None = None,
        fragments: Sequence[npt.ArrayLike | None] | None = None,
        fragment_charges: Sequence[npt.ArrayLike | None] | None = None,
        initial_charges: Sequence[npt.ArrayLike | None] | None = None,
        grad_charges: Sequence[npt.ArrayLike] | None = None,
        grad_energy: Sequence[float] | float | None = None,
    ) -> list[Any]:
        """Solves many structures (a training batch) in one native call, in parallel over
        structures; see :func:`qeq_batch` (per-atom parameters default to the constructor's,
        ``total_charge`` too). No parameters are cached across batches."""
        systems = [as_system(s) for s in structures]
        n = len(systems)

        def each(name: str, v: Any, default: Any) -> list[FloatArray]:
            if v is None:
                v = default
            if v is None:
                raise ValueError(f"{name} is required (give it to QEq(...) or to this call)")
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

        totals = _per_structure_floats(
            "total_charge", self.total_charge if total_charge is None else total_charge, n
        )
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
                else each("grad_charges", grad_charges, None)
            )
            ge = _per_structure_floats(
                "grad_energy", 0.0 if grad_energy is None else grad_energy, n
            )
        out = _native.qeq_batch(
            [s._arrays() for s in systems],
            each("electronegativity", electronegativity, self.electronegativity),
            each("hardness", hardness, self.hardness),
            each("sigma", sigma, self.sigma),
            totals,
            [p[0] for p in pairs],
            [p[1] for p in pairs],
            q0,
            *self._options,
            gq,
            ge,
        )
        if gq is None:
            return [_result(d, self.prefactor) for d in out]
        return [(_result(d, self.prefactor), QEqGradients(**g)) for d, g in out]


def _copy(value: PerAtom | None) -> PerAtom | None:
    """A private copy of a per-atom parameter (mapping, scalar or array)."""
    if value is None:
        return None
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, (str, bytes)) or np.isscalar(value):
        return value
    return np.array(value, dtype=np.float64)


@renamed_keywords(**_RENAMED)
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
    smearing: float | None = None,
    ewald_truncation: float = 1e-10,
    max_iterations: int = 2000,
    dense_limit: int = 1500,
    kspace: KSpaceName = "auto",
    preconditioner: PreconditionerName = "auto",
) -> QEqResult:
    """Charge equilibration of ``atoms`` (``ase.Atoms`` or :class:`farfield.System`), one
    shot: builds a :class:`QEq` with these settings and calls :meth:`QEq.compute` once (keep
    a ``QEq`` for repeated calls).

    Per-atom parameters are arrays of shape (n,), scalars, or mappings from element symbol or
    atomic number to value. ``fragments`` (index per atom) with ``fragment_charges`` replaces
    the single total-charge constraint. ``initial_charges`` warm-starts the CG (e.g. the
    previous MD step). ``kspace="pme"`` with ``solver="auto"`` selects the CG; with
    ``solver="dense"`` or an open system it raises ValueError; an explicit preconditioner with
    ``solver="dense"`` and ``preconditioner="fourier"`` on an open system raise ValueError.
    Periodic cells use Ewald sums of smearing ``smearing`` (η; default from volume and atom
    count) truncated at the relative ``ewald_truncation``. Other arguments: see :class:`QEq`.
    ``ewald_sigma=`` and ``accuracy=`` are deprecated aliases of ``smearing=`` and
    ``ewald_truncation=``.

    Integer arguments must be integers (``TypeError`` for floats and bools, ``ValueError`` when
    negative), ``fragments`` too. The cost (real-space pairs, k-vectors, dense N² memory and N³
    factorisation, about 100 CG products) is estimated before any work and a solve beyond
    :func:`farfield.set_limits` raises ValueError naming the parameter to change (e.g. very wide
    ``sigma``, or ``smearing`` far from the default). Ctrl-C stops a running solve
    (KeyboardInterrupt). A system without atoms raises ValueError.
    """
    calculator = QEq(
        electronegativity,
        hardness,
        sigma,
        total_charge=total_charge,
        solver=solver,
        tolerance=tolerance,
        prefactor=prefactor,
        smearing=smearing,
        ewald_truncation=ewald_truncation,
        max_iterations=max_iterations,
        dense_limit=dense_limit,
        kspace=kspace,
        preconditioner=preconditioner,
    )
    return calculator.compute(
        atoms,
        fragments=fragments,
        fragment_charges=fragment_charges,
        initial_charges=initial_charges,
    )


@renamed_keywords(**_RENAMED)
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
    smearing: float | None = None,
    ewald_truncation: float = 1e-10,
    max_iterations: int = 2000,
    dense_limit: int = 1500,
    kspace: KSpaceName = "auto",
    preconditioner: PreconditionerName = "auto",
) -> tuple[QEqResult, QEqGradients]:
    """The QEq solve and its vector–Jacobian products for ∂L/∂q = ``grad_charges`` and
    ∂L/∂E = ``grad_energy`` (one adjoint solve with the same matrix; formulas in the module
    docstring), one shot (:meth:`QEq.vjp`). Other arguments as :func:`qeq`."""
    calculator = QEq(
        electronegativity,
        hardness,
        sigma,
        total_charge=total_charge,
        solver=solver,
        tolerance=tolerance,
        prefactor=prefactor,
        smearing=smearing,
        ewald_truncation=ewald_truncation,
        max_iterations=max_iterations,
        dense_limit=dense_limit,
        kspace=kspace,
        preconditioner=preconditioner,
    )
    if grad_charges is None:
        raise ValueError("grad_charges is required (an array of shape (n,))")
    return calculator.vjp(
        atoms,
        grad_charges,
        grad_energy,
        fragments=fragments,
        fragment_charges=fragment_charges,
        initial_charges=initial_charges,
    )


@renamed_keywords(**_RENAMED)
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
    smearing: float | None = None,
    ewald_truncation: float = 1e-10,
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
    structure). ``timing.compute`` of each result is the wall time of the whole batch. Other
    arguments as :func:`qeq` (:meth:`QEq.batch`).
    """
    calculator = QEq(
        solver=solver,
        tolerance=tolerance,
        prefactor=prefactor,
        smearing=smearing,
        ewald_truncation=ewald_truncation,
        max_iterations=max_iterations,
        dense_limit=dense_limit,
        kspace=kspace,
        preconditioner=preconditioner,
    )
    return calculator.batch(
        structures,
        electronegativity,
        hardness,
        sigma,
        total_charge=total_charge,
        fragments=fragments,
        fragment_charges=fragment_charges,
        initial_charges=initial_charges,
        grad_charges=grad_charges,
        grad_energy=grad_energy,
    )
