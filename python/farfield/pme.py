"""Smooth particle-mesh Ewald (PME) sums of 1/r^p for periodic systems, and the free-space
particle mesh for open ones.

O(N log N): use it from about a thousand atoms up; :func:`pme` chooses the smearing, cutoff,
mesh and B-spline order for a requested accuracy (relative RMS force error, see
:func:`pme`) unless they are given. It is a one-shot wrapper on
``farfield.Coulomb(method="pme")``: keep a :class:`farfield.Coulomb` for repeated calls.
"""

from __future__ import annotations

from typing import Any

from . import _native
from .coulomb import MAX_CHARGE, Coulomb
from .results import EnergyResult
from .system import as_system

__all__ = ["MAX_CHARGE", "pme", "pme_preferred"]


def pme(
    atoms: Any,
    charges: Any = None,
    *,
    exponent: float = 1.0,
    accuracy: float = 1e-5,
    smearing: float | None = None,
    cutoff: float | None = None,
    mesh: tuple[int, int, int] | None = None,
    mesh_spacing: float | None = None,
    order: int | None = None,
    prefactor: float = 1.0,
    forces: bool = True,
    stress: bool = True,
    potentials: bool = False,
) -> EnergyResult:
    """Smooth PME sum of q_i q_j / r^p over all pairs and periodic images.

    Args:
        atoms: ``ase.Atoms`` or :class:`farfield.System`, periodic (smooth PME) or open (the
            free-space mesh: a zero-padded grid following the atoms, O(N log N); its mesh is
            given by ``mesh_spacing`` and an even ``order``; no stress).
        charges: (n,) charges (any real weights, |q| ≤ 1e100), or a per-element map such as
            ``{"Na": 1.0, "Cl": -1.0}``; by default the initial charges of an ``ase.Atoms``
            (atoms without initial charges are refused, never taken as zero).
        exponent: p > 0 (1 = Coulomb, 6 = dispersion). A net charge is allowed for p ≠ 3
            (neutralising background for p < 3, the k = 0 term for p > 3).
        accuracy: target relative RMS force error sqrt(<|ΔF|²>) / F_0 with
            F_0 = (Σq²/N) / d^{p+1}, d = (V/N)^{1/3}; in [1e-15, 1).
        smearing, cutoff, order: fix these instead of tuning them.
        mesh, mesh_spacing: fix the mesh (points per cell vector, or a maximum spacing that
            the core turns into points).
        prefactor: unit conversion multiplying every output (see :mod:`farfield.units`).
        forces, stress, potentials: what to compute besides the energy (``stress`` also
            gives the virial −V σ).

    Any subset of smearing / cutoff / mesh / order may be fixed: the free ones are then chosen
    so that the predicted error still meets ``accuracy`` (a smearing is only used when the
    fixed values meet their error targets with it). When no choice can, a ValueError says so
    and names the nearest fixed value that would work (e.g. the smallest cutoff). Smearing,
    cutoff and mesh all fixed (order 6 unless given) are taken as the caller's explicit choice
    and used as they are, without an accuracy check. Work beyond the limits of
    :func:`farfield.set_limits` (pairs, mesh points, memory) is refused before it starts.

    Returns:
        an :class:`farfield.EnergyResult` (``parameters.method == "pme"``; ``parameters.mesh``
        the mesh used, also when given as a spacing).

    Raises:
        ValueError: bad input (shapes, NaN, out-of-range parameters).
    """
    calculator = Coulomb(
        exponent=exponent,
        accuracy=accuracy,
        method="pme",
        prefactor=prefactor,
        smearing=smearing,
        cutoff=cutoff,
        mesh=mesh,
        mesh_spacing=mesh_spacing,
        order=order,
    )
    return calculator.compute(atoms, charges, forces=forces, stress=stress, potentials=potentials)


def pme_preferred(atoms: Any, *, exponent: float = 1.0, accuracy: float = 1e-5) -> bool:
    """True when PME is predicted to be cheaper than Ewald (what ``method="auto"`` uses).

    Systems below 200 atoms and non-periodic systems always return False.
    """
    system = as_system(atoms)
    if not system.periodic:
        return False
    return bool(
        _native.pme_preferred(system._arrays(), exponent=float(exponent), accuracy=float(accuracy))
    )


def __getattr__(name: str) -> Any:
    """The deprecated ``PmeResult`` / ``PmeParameters`` (see :mod:`farfield.results`)."""
    from . import results

    if name in results._DEPRECATED:
        return results.deprecated_name(__name__, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
