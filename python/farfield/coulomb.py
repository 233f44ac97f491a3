"""Calculator objects for Coulomb (and any 1/r^p) sums that tune once and are reused.

:class:`Coulomb` holds the settings of a sum (exponent, accuracy, method, prefactor, any fixed
parameters). The method (Ewald, smooth PME or the direct sum) and its parameters are chosen by
the core (``tuning::choose``: error estimates and a cost model, nothing evaluated) the first
time a system is seen, and cached: later calls on a system with the same number of atoms and a
cell equal within :data:`CELL_TOLERANCE` reuse them without tuning again (an MD run at fixed
cell tunes once). :meth:`Coulomb.tune` fixes the parameters explicitly.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _checks, _native
from .pme import _mesh, _resolve_charges
from .results import EwaldResult
from .system import as_system

__all__ = ["CELL_TOLERANCE", "Coulomb"]

#: Cached parameters are reused while every entry of the cell matrix stays within this
#: fraction of the largest entry of the cell they were tuned for (and the number of atoms is
#: the same). Such a change moves the volume and the mesh spacing by at most ~0.3 %, which
#: changes the predicted errors by at most a few percent (the tuner keeps them at half the
#: requested accuracy); beyond it the parameters are tuned again.
CELL_TOLERANCE = 1e-3

_METHODS = ("auto", "ewald", "pme", "direct")
_PARAMETER_KEYS = ("smearing", "cutoff", "k_cutoff", "mesh", "order")


def _check_method(method: Any) -> str:
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    return str(method)


class Coulomb:
    """Energy, forces, stress and potentials of point charges with a 1/r^p kernel.

    Args:
        exponent: p > 0 in 1/r^p (1 = Coulomb; p = 3 needs a neutral cell).
        accuracy: target relative RMS force error sqrt(<|ΔF|²>) / F_0 with
            F_0 = (Σq²/N) / d^{p+1}, d = (V/N)^{1/3}; in [1e-15, 1).
        method: "auto" (periodic: Ewald or smooth PME, whichever the core predicts faster;
            open: the direct sum), "ewald", "pme" or "direct".
        prefactor: multiplies energies, forces, stress and potentials
            (e.g. :data:`farfield.units.EV_ANGSTROM`).
        smearing, cutoff: fix the Gaussian smearing σ / the real-space cutoff (Ewald, PME).
        k_cutoff: fix the reciprocal-space cutoff (Ewald only; selects Ewald under "auto").
        mesh, order: fix the PME mesh (points per cell vector) / B-spline order (PME only;
            select PME under "auto").

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
        }
        self._cache: tuple[int, Any, dict[str, Any]] | None = None
        self._pinned: dict[str, Any] | None = None
        self.tunings = 0

    def __repr__(self) -> str:
        fixed = "".join(f", {k}={v!r}" for k, v in self._fixed.items() if v is not None)
        return (
            f"Coulomb(exponent={self.exponent!r}, accuracy={self.accuracy!r}, "
            f"method={self.method!r}, prefactor={self.prefactor!r}{fixed})"
        )

    def _choose(self, system: Any) -> dict[str, Any]:
        self.tunings += 1
        return dict(
            _native.coulomb_choose(
                system._arrays(), self.exponent, self.accuracy, self.method, **self._fixed
            )
        )

    def _cached(self, system: Any) -> dict[str, Any] | None:
        if self._pinned is not None:
            return self._pinned
        if self._cache is not None:
            n, cached_cell, parameters = self._cache
            if n == len(system) and _same_cell(cached_cell, system.cell):
                return parameters
        return None

    def _store(self, system: Any, parameters: dict[str, Any]) -> None:
        cell = None if system.cell is None else np.array(system.cell, dtype=np.float64)
        self._cache = (len(system), cell, parameters)

    def _parameters(self, system: Any) -> dict[str, Any]:
        parameters = self._cached(system)
        if parameters is None:
            parameters = self._choose(system)
            self._store(system, parameters)
        return parameters

    def parameters_for(self, atoms: Any) -> dict[str, Any]:
        """The method and parameters a :meth:`compute` on ``atoms`` uses (nothing is
        evaluated; cached like :meth:`compute`): ``method``, for Ewald ``smearing``,
        ``cutoff``, ``k_cutoff``, for PME ``smearing``, ``cutoff``, ``mesh``, ``order``, and
        the core's ``predicted_cost`` and ``predicted_error`` (relative RMS force error)."""
        return dict(self._parameters(as_system(atoms)))

    def tune(self, atoms: Any) -> dict[str, Any]:
        """Chooses the parameters for ``atoms`` and fixes them: later calls use them for any
        system (no re-tuning, also when the cell changes). Returns them."""
        system = as_system(atoms)
        self._pinned = None
        self._cache = None
        self._pinned = self._parameters(system)
        return dict(self._pinned)

    def compute(
        self,
        atoms: Any,
        charges: Any = None,
        forces: bool = True,
        stress: bool = True,
        potentials: bool = False,
    ) -> EwaldResult:
        """Energy (and forces, stress, potentials on request) of ``charges`` on ``atoms``.

        Args:
            atoms: an ``ase.Atoms`` or a :class:`farfield.System`, periodic in all directions
                or in none.
            charges: (n,) charges (|q| ≤ 1e100), or a per-element map such as
                ``{"Na": 1.0, "Cl": -1.0}``; defaults to the initial charges of an
                ``ase.Atoms`` (atoms without them are refused, never taken as zero).
            forces, stress, potentials: what to compute besides the energy (no stress for open
                systems).

        Returns:
            an :class:`farfield.EwaldResult`; its ``parameters`` hold the method and
            parameters used and ``exponent``, ``accuracy``, ``prefactor``.
        """
        system = as_system(atoms)
        q = _resolve_charges(atoms, charges, len(system))
        chosen = self._cached(system)
        if chosen is None:
            # tune and compute in one native call (the system is converted once)
            self.tunings += 1
            method, given, accuracy = self.method, self._fixed, self.accuracy
        else:
            method = chosen["method"]
            given = {k: chosen[k] for k in _PARAMETER_KEYS if k in chosen}
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
            chosen = dict(out["parameters"])
            self._store(system, chosen)
        explicit = {k: chosen[k] for k in _PARAMETER_KEYS if k in chosen}
        parameters: dict[str, Any] = {"method": chosen["method"], **explicit}
        parameters.update(exponent=self.exponent, accuracy=self.accuracy, prefactor=self.prefactor)
        return EwaldResult(
            energy=float(out["energy"]),
            forces=out["forces"],
            stress=out["stress"],
            potentials=out["potentials"],
            parameters=parameters,
        )


def _same_cell(old: Any, new: Any) -> bool:
    if old is None or new is None:
        return old is None and new is None
    scale = float(np.max(np.abs(old)))
    return bool(np.all(np.abs(np.asarray(new) - old) <= CELL_TOLERANCE * scale))
