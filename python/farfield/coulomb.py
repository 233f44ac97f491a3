"""Calculator objects for Coulomb (and any 1/r^p) sums that tune once and are reused.

:class:`Coulomb` holds the settings of a sum (exponent, accuracy, method, prefactor, any fixed
parameters). The method (Ewald, smooth PME or the direct sum) and its parameters are chosen by
the core (``tuning::choose``: error estimates and a cost model, nothing evaluated) the first
time a system is seen, and cached: later calls on a system with the same number of atoms and a
cell equal within :data:`CELL_TOLERANCE` reuse them without tuning again (an MD run at fixed
cell tunes once). :meth:`Coulomb.tune` fixes the parameters explicitly.

The prefactor, the stress (1/V) ∂E/∂ε and the virial −∂E/∂ε are applied by the native call;
this module converts arguments and results (see :mod:`farfield.results` for the conventions).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from . import _checks, _native
from .results import CoulombParameters, EnergyResult, Timing
from .system import as_system

__all__ = ["CELL_TOLERANCE", "MAX_CHARGE", "Coulomb"]

FloatArray = npt.NDArray[np.float64]

#: Cached parameters are reused while every entry of the cell matrix stays within this
#: fraction of the largest entry of the cell they were tuned for (and the number of atoms is
#: the same). Such a change moves the volume and the mesh spacing by at most ~0.3 %, which
#: changes the predicted errors by at most a few percent (the tuner keeps them at half the
#: requested accuracy); beyond it the parameters are tuned again.
CELL_TOLERANCE = 1e-3

_METHODS = ("auto", "ewald", "pme", "direct")
_PARAMETER_KEYS = ("smearing", "cutoff", "k_cutoff", "mesh", "mesh_spacing", "order")

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


def _check_method(method: Any) -> str:
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    return str(method)


class Coulomb:
    """Energy, forces, stress, virial and potentials of point charges with a 1/r^p kernel.

    Args:
        exponent: p > 0 in 1/r^p (1 = Coulomb; p = 3 needs a neutral cell).
        accuracy: target relative RMS force error sqrt(<|ΔF|²>) / F_0 with
            F_0 = (Σq²/N) / d^{p+1}, d = (V/N)^{1/3}; in [1e-15, 1).
        method: "auto" (periodic: Ewald or smooth PME, whichever the core predicts faster;
            open: the direct sum or the free-space mesh, likewise), "ewald", "pme" (on an open
            system: the free-space mesh, O(N log N)) or "direct".
        prefactor: multiplies energies, forces, stress, virial and potentials
            (e.g. :data:`farfield.units.EV_ANGSTROM`).
        smearing, cutoff: fix the Gaussian smearing σ / the real-space cutoff (Ewald, PME).
        k_cutoff: fix the reciprocal-space cutoff (Ewald only; selects Ewald under "auto").
        mesh, order: fix the PME mesh (points per cell vector) / B-spline order (PME only;
            select PME under "auto").
        mesh_spacing: fix the PME mesh by a maximum spacing instead (the core rounds each
            size up to an FFT-friendly number; not with ``mesh``); on an open system the
            spacing of the free-space mesh (which takes no ``mesh`` points).

    The free parameters are chosen so that the predicted error still meets ``accuracy``;
    when no choice can, a ValueError names the nearest fixed value that would (see
    :func:`farfield.ewald`). Smearing, cutoff and k_cutoff (Ewald) or mesh (PME) all fixed are
    used as given, unchecked.

    Attributes:
        tunings: how many times parameters were chosen (cache misses), for inspection.
    """

    def __init__(
        self,
        exponent: float = 1.0,
        accuracy: float = 1e-6,
        method: str = "auto",
        prefactor: float = 1.0,
        smearing: float | None = None,
        cutoff: float | None = None,
        k_cutoff: float | None = None,
        mesh: tuple[int, int, int] | None = None,
        order: int | None = None,
        mesh_spacing: float | None = None,
    ) -> None:
        self.method = _check_method(method)
        self.exponent = _checks.finite_float("exponent", exponent)
        self.accuracy = _checks.finite_float("accuracy", accuracy)
        self.prefactor = _checks.finite_float("prefactor", prefactor)
        self._fixed: dict[str, Any] = {
            "smearing": _checks.optional_positive_float("smearing", smearing),
            "cutoff": _checks.optional_positive_float("cutoff", cutoff),
            "k_cutoff": _checks.optional_positive_float("k_cutoff", k_cutoff),
            "mesh": _mesh(mesh),
            "order": _checks.optional_integer("order", order, minimum=3, maximum=10),
            "mesh_spacing": _checks.optional_positive_float("mesh_spacing", mesh_spacing),
        }
        if self._fixed["mesh"] is not None and self._fixed["mesh_spacing"] is not None:
            raise ValueError("mesh: give either mesh or mesh_spacing, not both")
        self._cache: tuple[int, Any, CoulombParameters] | None = None
        self._pinned: CoulombParameters | None = None
        # the native keyword arguments of the last parameters used (rebuilt when they change)
        self._given: tuple[CoulombParameters, dict[str, Any]] | None = None
        self.tunings = 0

    def __repr__(self) -> str:
        fixed = "".join(f", {k}={v!r}" for k, v in self._fixed.items() if v is not None)
        return (
            f"Coulomb(exponent={self.exponent!r}, accuracy={self.accuracy!r}, "
            f"method={self.method!r}, prefactor={self.prefactor!r}{fixed})"
        )

    def _typed(self, native: Any) -> CoulombParameters:
        return CoulombParameters.from_native(
            native, exponent=self.exponent, accuracy=self.accuracy, prefactor=self.prefactor
        )

    def _choose(self, system: Any) -> CoulombParameters:
        self.tunings += 1
        return self._typed(
            _native.coulomb_choose(
                system._arrays(), self.exponent, self.accuracy, self.method, **self._fixed
            )
        )

    def _cached(self, system: Any) -> CoulombParameters | None:
        if self._pinned is not None:
            return self._pinned
        if self._cache is not None:
            n, cached_cell, parameters = self._cache
            if n == len(system) and _same_cell(cached_cell, system.cell):
                return parameters
        return None

    def _store(self, system: Any, parameters: CoulombParameters) -> None:
        cell = None if system.cell is None else np.array(system.cell, dtype=np.float64)
        self._cache = (len(system), cell, parameters)

    def _parameters(self, system: Any) -> CoulombParameters:
        parameters = self._cached(system)
        if parameters is None:
            parameters = self._choose(system)
            self._store(system, parameters)
        return parameters

    def _native_parameters(self, parameters: CoulombParameters) -> dict[str, Any]:
        """The parameters as keyword arguments of the native call (kept for the next step:
        a cache hit returns the same frozen parameters object)."""
        if self._given is None or self._given[0] is not parameters:
            given = {k: parameters[k] for k in _PARAMETER_KEYS if k in parameters}
            self._given = (parameters, given)
        return self._given[1]

    def parameters_for(self, atoms: Any) -> CoulombParameters:
        """The method and parameters a :meth:`compute` on ``atoms`` uses (nothing is
        evaluated; cached like :meth:`compute`): a :class:`farfield.CoulombParameters` with
        ``method``, for Ewald ``smearing``, ``cutoff``, ``k_cutoff``, for PME ``smearing``,
        ``cutoff``, ``mesh``, ``order``, the settings ``exponent``, ``accuracy``,
        ``prefactor`` and the core's ``predicted_cost`` and ``predicted_error`` (relative
        RMS force error)."""
        return self._parameters(as_system(atoms))

    def tune(self, atoms: Any) -> CoulombParameters:
        """Chooses the parameters for ``atoms`` and fixes them: later calls use them for any
        system (no re-tuning, also when the cell changes). Returns them."""
        system = as_system(atoms)
        self._pinned = None
        self._cache = None
        self._pinned = self._parameters(system)
        return self._pinned

    def compute(
        self,
        atoms: Any,
        charges: Any = None,
        forces: bool = True,
        stress: bool = True,
        potentials: bool = False,
    ) -> EnergyResult:
        """Energy (and forces, stress, virial, potentials on request) of ``charges`` on
        ``atoms``.

        Args:
            atoms: an ``ase.Atoms`` or a :class:`farfield.System`, periodic in all directions
                or in none.
            charges: (n,) charges (|q| ≤ 1e100), or a per-element map such as
                ``{"Na": 1.0, "Cl": -1.0}``; defaults to the initial charges of an
                ``ase.Atoms`` (atoms without them are refused, never taken as zero).
            forces, stress, potentials: what to compute besides the energy (``stress``
                also gives the virial; neither for open systems).

        Returns:
            an :class:`farfield.EnergyResult`; its ``parameters`` (a
            :class:`farfield.CoulombParameters`) hold the method and parameters used and
            ``exponent``, ``accuracy``, ``prefactor``; its ``timing`` the seconds spent
            choosing them (0 on a cache hit) and computing.
        """
        system = as_system(atoms)
        q = _resolve_charges(atoms, charges, len(system))
        chosen = self._cached(system)
        if chosen is None:
            # tune and compute in one native call (the system is converted once)
            self.tunings += 1
            method, given, accuracy = self.method, self._fixed, self.accuracy
        else:
            method = chosen.method
            given = self._native_parameters(chosen)
            accuracy = None
        out = _native.coulomb_compute(
            system._arrays(),
            q,
            self.exponent,
            method,
            prefactor=self.prefactor,
            potentials=bool(potentials),
            forces=bool(forces),
            stress=bool(stress),
            accuracy=accuracy,
            **given,
        )
        if chosen is None:
            chosen = self._typed(out["parameters"])
            self._store(system, chosen)
        choose_s, compute_s = out["timing"]
        return EnergyResult(
            energy=float(out["energy"]),
            forces=out["forces"],
            stress=out["stress"],
            virial=out["virial"],
            potentials=out["potentials"],
            parameters=chosen,
            timing=Timing(choose=float(choose_s), compute=float(compute_s)),
        )


def _same_cell(old: Any, new: Any) -> bool:
    if old is None or new is None:
        return old is None and new is None
    scale = float(np.max(np.abs(old)))
    return bool(np.all(np.abs(np.asarray(new) - old) <= CELL_TOLERANCE * scale))
