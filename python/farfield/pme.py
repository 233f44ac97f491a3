"""Smooth particle-mesh Ewald (PME) sums of 1/r^p for periodic systems.

O(N log N): use it from about a thousand atoms up; :func:`pme` chooses the smearing, cutoff,
mesh and B-spline order for a requested accuracy (relative RMS force error, see
:func:`pme`) unless they are given.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from . import _native
from .system import _float_array, as_system

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class PmeParameters:
    """Parameters a PME sum used.

    Attributes:
        smearing: Gaussian smearing σ (standard deviation) of the range split.
        cutoff: real-space cutoff.
        mesh: number of mesh points along the three cell vectors.
        order: B-spline order (points per axis per atom).
    """

    smearing: float
    cutoff: float
    mesh: tuple[int, int, int]
    order: int


@dataclass(frozen=True)
class PmeResult:
    """Energy and derivatives of a PME sum, multiplied by ``prefactor``.

    Attributes:
        energy: total energy E = ½ Σ q_i φ_i.
        forces: (n, 3) forces -∂E/∂r_i, or ``None`` when not requested.
        stress: (3, 3) stress (1/V) ∂E/∂ε (ASE convention), or ``None``.
        potentials: (n,) per-atom potentials φ_i, or ``None``.
        parameters: the parameters used.
    """

    energy: float
    forces: FloatArray | None
    stress: FloatArray | None
    potentials: FloatArray | None
    parameters: PmeParameters


def pme(
    atoms: Any,
    charges: Any,
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
) -> PmeResult:
    """Smooth PME sum of q_i q_j / r^p over all pairs and periodic images.

    Args:
        atoms: ``ase.Atoms`` or :class:`farfield.System`; must be periodic.
        charges: (n,) charges (any real weights).
        exponent: p > 0 (1 = Coulomb, 6 = dispersion). A net charge is allowed for p ≠ 3
            (neutralising background for p < 3, the k = 0 term for p > 3).
        accuracy: target relative RMS force error sqrt(<|ΔF|²>) / F_0 with
            F_0 = (Σq²/N) / d^{p+1}, d = (V/N)^{1/3}; in [1e-15, 1).
        smearing, cutoff, order: fix these instead of tuning them.
        mesh, mesh_spacing: fix the mesh (points per cell vector, or a maximum spacing);
            needs ``smearing`` and ``cutoff``.
        prefactor: unit conversion multiplying every output (see :mod:`farfield.units`).
        forces, stress, potentials: what to compute besides the energy.

    Raises:
        ValueError: bad input (shapes, NaN, non-periodic system, out-of-range parameters).
    """
    system = as_system(atoms)
    if not system.periodic:
        raise ValueError("PME needs a periodic system (a cell); use the Ewald/direct sum instead")
    q = _float_array(charges, "charges")
    if q.ndim != 1:
        raise ValueError(f"charges must be a 1-d array, got shape {q.shape}")
    result = _native.pme_compute(
        system._arrays(),
        q,
        exponent=float(exponent),
        accuracy=float(accuracy),
        smearing=smearing,
        cutoff=cutoff,
        mesh=None if mesh is None else tuple(int(k) for k in mesh),
        mesh_spacing=mesh_spacing,
        order=order,
        potentials=potentials,
        forces=forces,
        virial=stress,
    )
    assert system.cell is not None
    volume = abs(float(np.linalg.det(system.cell)))
    virial = result["virial"]
    phi = result["potentials"]
    f = result["forces"]
    return PmeResult(
        energy=prefactor * float(result["energy"]),
        forces=None if f is None else prefactor * f,
        stress=None if virial is None else prefactor * virial / volume,
        potentials=None if phi is None else prefactor * phi,
        parameters=PmeParameters(
            smearing=float(result["smearing"]),
            cutoff=float(result["cutoff"]),
            mesh=tuple(int(k) for k in result["mesh"]),  # type: ignore[arg-type]
            order=int(result["order"]),
        ),
    )


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
