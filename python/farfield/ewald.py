"""Ewald and direct sums of point charges interacting through 1/r^p.

``accuracy`` is the target relative RMS force error:
sqrt(mean_i |F_i - F_i^exact|²) / F_0 with F_0 = (Σ q² / N) / d^(p+1) and d = (V/N)^(1/3) the
mean interparticle distance. farfield chooses the smearing σ, the real-space cutoff and the
k-space cutoff from error estimates, minimising the predicted cost (no timing runs). Any of
the three may be given to override the choice.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _native
from .results import EwaldResult, FloatArray
from .system import as_system

__all__ = ["ewald", "ewald_parameters"]

_METHODS = ("auto", "ewald", "direct")


def _charges(atoms: Any, charges: Any, n: int) -> FloatArray:
    if charges is None:
        if hasattr(atoms, "get_initial_charges"):
            charges = atoms.get_initial_charges()
        else:
            raise ValueError("charges are required (a farfield.System carries none)")
    try:
        array = np.ascontiguousarray(np.asarray(charges, dtype=np.float64))
    except (TypeError, ValueError) as error:
        raise ValueError(f"charges must be an array of numbers: {error}") from error
    if array.ndim != 1 or array.shape[0] != n:
        raise ValueError(f"charges must have shape ({n},) (one per atom), got {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError("charges contain a non-finite value (NaN or infinity)")
    return array


def _check_method(method: str) -> None:
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")


def ewald_parameters(
    atoms: Any,
    exponent: float = 1.0,
    accuracy: float = 1e-6,
    method: str = "auto",
    smearing: float | None = None,
    cutoff: float | None = None,
    k_cutoff: float | None = None,
) -> dict[str, Any]:
    """The parameters :func:`ewald` would use (nothing is computed)."""
    _check_method(method)
    system = as_system(atoms)
    name, s, rc, kc = _native.ewald_tune(
        system._arrays(), float(exponent), float(accuracy), method, smearing, cutoff, k_cutoff
    )
    if name == "direct":
        return {"method": name}
    return {"method": name, "smearing": s, "cutoff": rc, "k_cutoff": kc}


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
) -> EwaldResult:
    """Energy, forces, stress and per-atom potentials of point charges with a 1/r^p kernel.

    Args:
        atoms: an ``ase.Atoms`` or a :class:`farfield.System`, periodic in all directions
            (Ewald) or in none (direct O(N²) sum).
        charges: (n,) charges; defaults to the initial charges of an ``ase.Atoms``.
        exponent: p > 0 in 1/r^p (p = 3 needs a neutral cell).
        accuracy: target relative RMS force error, in [1e-15, 1) (see the module docs).
        method: "auto" (Ewald for periodic, direct for open systems), "ewald" or "direct".
        prefactor: multiplies energies, forces, stress and potentials
            (e.g. :data:`farfield.units.EV_ANGSTROM`).
        smearing, cutoff, k_cutoff: override the automatic Ewald parameters.
        forces, stress, potentials: what to compute besides the energy.

    Returns:
        an :class:`EwaldResult`. For periodic systems the energy of a charged cell includes
        the uniform neutralising background (p < 3) or the k = 0 term (p > 3).
    """
    _check_method(method)
    system = as_system(atoms)
    q = _charges(atoms, charges, len(system))
    out = _native.ewald_compute(
        system._arrays(),
        q,
        float(exponent),
        float(accuracy),
        method,
        smearing,
        cutoff,
        k_cutoff,
        float(prefactor),
        potentials,
        forces,
        stress and system.periodic,
    )
    stress_array: FloatArray | None = None
    if out["virial"] is not None and system.cell is not None:
        volume = abs(float(np.linalg.det(system.cell)))
        stress_array = np.asarray(out["virial"]) / volume
    parameters: dict[str, Any] = {
        key: out[key] for key in ("method", "smearing", "cutoff", "k_cutoff") if key in out
    }
    parameters.update(
        exponent=float(exponent), accuracy=float(accuracy), prefactor=float(prefactor)
    )
    return EwaldResult(
        energy=float(out["energy"]),
        forces=out["forces"],
        stress=stress_array,
        potentials=out["potentials"],
        parameters=parameters,
    )
