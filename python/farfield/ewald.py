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

import numpy as np

from . import _checks, _native
from .pme import _resolve_charges, pme, pme_preferred
from .results import EwaldResult, FloatArray
from .system import as_system

__all__ = ["ewald", "ewald_parameters"]

_METHODS = ("auto", "ewald", "pme", "direct")


def _check_method(method: str) -> None:
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")


def _use_pme(system: Any, method: str, exponent: float, accuracy: float, k_cutoff: Any) -> bool:
    if method == "pme":
        if not system.periodic:
            raise ValueError("method='pme' needs a periodic system (a cell)")
        if k_cutoff is not None:
            raise ValueError("k_cutoff is an Ewald parameter; PME takes mesh settings instead")
        return True
    if method != "auto" or k_cutoff is not None or not system.periodic:
        return False
    return pme_preferred(system, exponent=exponent, accuracy=accuracy)


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
    exponent = _checks.finite_float("exponent", exponent)
    accuracy = _checks.finite_float("accuracy", accuracy)
    smearing = _checks.optional_positive_float("smearing", smearing)
    cutoff = _checks.optional_positive_float("cutoff", cutoff)
    k_cutoff = _checks.optional_positive_float("k_cutoff", k_cutoff)
    if _use_pme(system, method, float(exponent), float(accuracy), k_cutoff):
        s, rc, mesh, order = _native.pme_tune(
            system._arrays(),
            exponent=exponent,
            accuracy=accuracy,
            smearing=smearing,
            cutoff=cutoff,
        )
        return {
            "method": "pme",
            "smearing": s,
            "cutoff": rc,
            "mesh": tuple(int(k) for k in mesh),
            "order": order,
        }
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
        charges: (n,) charges (|q| ≤ 1e100), or a per-element map such as
            ``{"Na": 1.0, "Cl": -1.0}``; defaults to the initial charges of an ``ase.Atoms``.
            Atoms without initial charges are refused (ValueError), never taken as zero;
            an explicit all-zero array is allowed.
        exponent: p > 0 in 1/r^p (p = 3 needs a neutral cell).
        accuracy: target relative RMS force error, in [1e-15, 1) (see the module docs).
        method: "auto" (for periodic systems Ewald or smooth PME, whichever is predicted to be
            cheaper at this accuracy; the direct sum for open systems), "ewald", "pme" or
            "direct".
        prefactor: multiplies energies, forces, stress and potentials
            (e.g. :data:`farfield.units.EV_ANGSTROM`).
        smearing, cutoff, k_cutoff: override the automatic Ewald parameters (see the module
            docs: the free ones keep the accuracy; all three fixed are used unchecked). They
            are refused for open systems (the direct sum takes none).
        forces, stress, potentials: what to compute besides the energy.

    Returns:
        an :class:`EwaldResult`. For periodic systems the energy of a charged cell includes
        the uniform neutralising background (p < 3) or the k = 0 term (p > 3).
    """
    _check_method(method)
    system = as_system(atoms)
    q = _resolve_charges(atoms, charges, len(system))
    exponent = _checks.finite_float("exponent", exponent)
    accuracy = _checks.finite_float("accuracy", accuracy)
    prefactor = _checks.finite_float("prefactor", prefactor)
    smearing = _checks.optional_positive_float("smearing", smearing)
    cutoff = _checks.optional_positive_float("cutoff", cutoff)
    k_cutoff = _checks.optional_positive_float("k_cutoff", k_cutoff)
    if _use_pme(system, method, float(exponent), float(accuracy), k_cutoff):
        res = pme(
            system,
            q,
            exponent=exponent,
            accuracy=accuracy,
            smearing=smearing,
            cutoff=cutoff,
            prefactor=prefactor,
            forces=forces,
            stress=stress,
            potentials=potentials,
        )
        p = res.parameters
        return EwaldResult(
            energy=res.energy,
            forces=res.forces,
            stress=res.stress,
            potentials=res.potentials,
            parameters={
                "method": "pme",
                "smearing": p.smearing,
                "cutoff": p.cutoff,
                "mesh": p.mesh,
                "order": p.order,
                "exponent": float(exponent),
                "accuracy": float(accuracy),
                "prefactor": float(prefactor),
            },
        )
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
