"""Ewald and direct sums of point charges interacting through 1/r^p.

``accuracy`` is the target relative RMS force error:
sqrt(mean_i |F_i - F_i^exact|²) / F_0 with F_0 = (Σ q² / N) / d^(p+1) and d = (V/N)^(1/3) the
mean interparticle distance. farfield chooses the smearing σ, the real-space cutoff and the
k-space cutoff from error estimates, minimising the predicted cost (no timing runs).

Any of the three may be given to override the choice: the free ones are then chosen so that
the predicted error still meets ``accuracy`` (a smearing is only used when the fixed cutoff
and k_cutoff meet their error targets with it); when no choice can, a ValueError says so and
names the nearest value of each fixed parameter that would work (e.g. "the smallest cutoff
that does is 5.3"). All three fixed are the caller's explicit choice: they are used as they
are, without an accuracy check. Work beyond the limits of :func:`farfield.set_limits`
(pairs and periodic images, k-vectors, memory) is refused before it starts.
"""

from __future__ import annotations

from typing import Any

from .coulomb import Coulomb, _check_method
from .results import CoulombParameters, EnergyResult
from .system import as_system

__all__ = ["ewald", "ewald_parameters"]


def ewald_parameters(
    atoms: Any,
    exponent: float = 1.0,
    accuracy: float = 1e-6,
    method: str = "auto",
    smearing: float | None = None,
    cutoff: float | None = None,
    k_cutoff: float | None = None,
) -> CoulombParameters:
    """The parameters :func:`ewald` would use (nothing is computed): a
    :class:`farfield.CoulombParameters` with ``method`` and, for Ewald, ``smearing``,
    ``cutoff``, ``k_cutoff``, for PME ``smearing``, ``cutoff``, ``mesh``, ``order``, and the
    core's ``predicted_cost`` and ``predicted_error`` (as
    :meth:`farfield.Coulomb.parameters_for`).
    """
    _check_method(method)
    calculator = Coulomb(
        exponent=exponent,
        accuracy=accuracy,
        method=method,
        smearing=smearing,
        cutoff=cutoff,
        k_cutoff=k_cutoff,
    )
    return calculator.parameters_for(as_system(atoms))


def ewald(
    atoms: Any,
    charges: Any = None,
    exponent: float = 1.0,
    accuracy: float = 1e-6,
    method: str = "auto",
    prefactor: float = 1.0,
    smearing: float | None = None,
    cutoff: float | None = None,
    k_cutoff: float | None = None,
    forces: bool = True,
    stress: bool = True,
    potentials: bool = True,
) -> EnergyResult:
    """Energy, forces, stress, virial and per-atom potentials of point charges with a 1/r^p kernel.

    A one-shot convenience: it builds a :class:`farfield.Coulomb` and calls it once. For
    repeated calls (MD, many frames of one cell) keep a ``Coulomb``: it tunes once.

    Args:
        atoms: an ``ase.Atoms`` or a :class:`farfield.System`, periodic in all directions
            (Ewald, PME) or in none (the direct O(N²) sum or the O(N log N) free-space mesh).
        charges: (n,) charges (|q| ≤ 1e100), or a per-element map such as
            ``{"Na": 1.0, "Cl": -1.0}``; defaults to the initial charges of an ``ase.Atoms``.
            Atoms without initial charges are refused (ValueError), never taken as zero;
            an explicit all-zero array is allowed.
        exponent: p > 0 in 1/r^p (p = 3 needs a neutral cell).
        accuracy: target relative RMS force error, in [1e-15, 1) (see the module docs).
        method: "auto" (for periodic systems Ewald or smooth PME, whichever is predicted to be
            faster at this accuracy; for open systems the direct sum or the free-space mesh,
            likewise), "ewald", "pme" (on an open system: the free-space mesh) or "direct".
        prefactor: multiplies energies, forces, stress, virial and potentials
            (e.g. :data:`farfield.units.EV_ANGSTROM`).
        smearing, cutoff, k_cutoff: override the automatic parameters (see the module
            docs: the free ones keep the accuracy; all three fixed are used unchecked). On an
            open system smearing and cutoff select the free-space mesh; k_cutoff is refused.
        forces, stress, potentials: what to compute besides the energy (``stress`` also
            gives the virial −V σ).

    Returns:
        an :class:`farfield.EnergyResult`. For periodic systems the energy of a charged cell
        includes the uniform neutralising background (p < 3) or the k = 0 term (p > 3).
    """
    _check_method(method)
    calculator = Coulomb(
        exponent=exponent,
        accuracy=accuracy,
        method=method,
        prefactor=prefactor,
        smearing=smearing,
        cutoff=cutoff,
        k_cutoff=k_cutoff,
    )
    return calculator.compute(atoms, charges, forces=forces, stress=stress, potentials=potentials)
