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

from . import _checks, _native
from .system import as_system

FloatArray = npt.NDArray[np.float64]

#: Largest accepted charge magnitude: q_i q_j and Σq² must stay far from overflow (1e308).
MAX_CHARGE = 1e100

_CHARGE_SOURCES = (
    "give them as the charges argument (one per atom, or a per-element map such as "
    "charges={'Na': 1.0, 'Cl': -1.0}), set them on the atoms with "
    "atoms.set_initial_charges(...), or compute them with farfield.qeq"
)


def _element_map(mapping: Any, numbers: Any) -> FloatArray:
    """Per-atom charges from a map {symbol or atomic number: charge}."""
    from ase.data import atomic_numbers, chemical_symbols

    table: dict[int, float] = {}
    for key, value in mapping.items():
        if isinstance(key, str):
            if key not in atomic_numbers:
                raise ValueError(f"charges: unknown element {key!r} in the per-element map")
            z = atomic_numbers[key]
        elif isinstance(key, (int, np.integer)) and not isinstance(key, (bool, np.bool_)):
            z = int(key)
        else:
            raise TypeError(
                f"charges: the keys of a per-element map must be element symbols or atomic "
                f"numbers, got {key!r}"
            )
        table[z] = _checks.finite_float(f"charges[{key!r}]", value)
    out = np.empty(len(numbers), dtype=np.float64)
    for i, z in enumerate(np.asarray(numbers)):
        if int(z) not in table:
            name = chemical_symbols[int(z)] if 0 <= int(z) < len(chemical_symbols) else str(z)
            raise ValueError(
                f"charges: the per-element map has no charge for element {name} (atom {i})"
            )
        out[i] = table[int(z)]
    return out


def _resolve_charges(atoms: Any, charges: Any, n: int) -> FloatArray:
    """The per-atom charges of a call: the argument (array or per-element map), else the
    initial charges of an ``ase.Atoms`` that has them. Missing charges are an error, never
    zeros; so are non-finite charges and charges above :data:`MAX_CHARGE` in magnitude."""
    if charges is None:
        if hasattr(atoms, "has") and hasattr(atoms, "get_initial_charges"):
            if not atoms.has("initial_charges"):
                raise ValueError(
                    "charges are required: these atoms carry no initial charges; " + _CHARGE_SOURCES
                )
            charges = atoms.get_initial_charges()
        else:
            raise ValueError(
                "charges are required (a farfield.System carries none); " + _CHARGE_SOURCES
            )
    if isinstance(charges, dict):
        numbers = atoms.numbers if hasattr(atoms, "numbers") else as_system(atoms).numbers
        array = _element_map(charges, numbers)
    else:
        try:
            array = np.ascontiguousarray(np.asarray(charges, dtype=np.float64))
        except (TypeError, ValueError) as error:
            raise ValueError(f"charges must be an array of numbers: {error}") from error
    if array.ndim != 1 or array.shape[0] != n:
        raise ValueError(f"charges must have shape ({n},) (one per atom), got {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError("charges contain a non-finite value (NaN or infinity)")
    if array.size and float(np.max(np.abs(array))) > MAX_CHARGE:
        raise ValueError(
            f"charges: magnitudes above {MAX_CHARGE:g} are refused (their products would "
            f"overflow), got {float(np.max(np.abs(array))):g}; rescale them and multiply the "
            "results by the square of the scale (or use prefactor)"
        )
    return array


def _mesh(value: Any) -> tuple[int, int, int] | None:
    if value is None:
        return None
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__"):
        raise TypeError(f"mesh must be three integers (points per cell vector), got {value!r}")
    if len(value) != 3:
        raise ValueError(f"mesh must be three integers (points per cell vector), got {value!r}")
    k0, k1, k2 = (_checks.integer("mesh", k, minimum=1) for k in value)
    return (k0, k1, k2)


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
) -> PmeResult:
    """Smooth PME sum of q_i q_j / r^p over all pairs and periodic images.

    Args:
        atoms: ``ase.Atoms`` or :class:`farfield.System`; must be periodic.
        charges: (n,) charges (any real weights, |q| ≤ 1e100), or a per-element map such as
            ``{"Na": 1.0, "Cl": -1.0}``; by default the initial charges of an ``ase.Atoms``
            (atoms without initial charges are refused, never taken as zero).
        exponent: p > 0 (1 = Coulomb, 6 = dispersion). A net charge is allowed for p ≠ 3
            (neutralising background for p < 3, the k = 0 term for p > 3).
        accuracy: target relative RMS force error sqrt(<|ΔF|²>) / F_0 with
            F_0 = (Σq²/N) / d^{p+1}, d = (V/N)^{1/3}; in [1e-15, 1).
        smearing, cutoff, order: fix these instead of tuning them.
        mesh, mesh_spacing: fix the mesh (points per cell vector, or a maximum spacing).

    Any subset of smearing / cutoff / mesh / order may be fixed: the free ones are then chosen
    so that the predicted error still meets ``accuracy`` (a smearing is only used when the
    fixed values meet their error targets with it). When no choice can, a ValueError says so
    and names the nearest fixed value that would work (e.g. the smallest cutoff). Smearing,
    cutoff and mesh all fixed (order 6 unless given) are taken as the caller's explicit choice
    and used as they are, without an accuracy check. Work beyond the limits of
    :func:`farfield.set_limits` (pairs, mesh points, memory) is refused before it starts.
        prefactor: unit conversion multiplying every output (see :mod:`farfield.units`).
        forces, stress, potentials: what to compute besides the energy.

    Raises:
        ValueError: bad input (shapes, NaN, non-periodic system, out-of-range parameters).
    """
    system = as_system(atoms)
    if not system.periodic:
        raise ValueError("PME needs a periodic system (a cell); use the Ewald/direct sum instead")
    q = _resolve_charges(atoms, charges, len(system))
    prefactor = _checks.finite_float("prefactor", prefactor)
    result = _native.pme_compute(
        system._arrays(),
        q,
        exponent=_checks.finite_float("exponent", exponent),
        accuracy=_checks.finite_float("accuracy", accuracy),
        smearing=_checks.optional_positive_float("smearing", smearing),
        cutoff=_checks.optional_positive_float("cutoff", cutoff),
        mesh=_mesh(mesh),
        mesh_spacing=_checks.optional_positive_float("mesh_spacing", mesh_spacing),
        order=_checks.optional_integer("order", order, minimum=3, maximum=10),
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
