"""ASE calculator for classic fixed-parameter QEq (per-element χ, J, σ).

Re-exported from :mod:`farfield.ase`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from ase.calculators.calculator import Calculator, all_changes

from . import _checks, units
from .qeq import PerAtom, _options, qeq

__all__ = ["QEqCalculator"]


#: Keyword arguments of ``ase.calculators.calculator.Calculator`` that are passed on.
_CALCULATOR_KWARGS = ("label", "atoms", "directory")


def _copy(value: PerAtom) -> PerAtom:
    """A private copy of a per-atom parameter (mapping, scalar or array), as :func:`qeq` takes."""
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, (bool, np.bool_)) or isinstance(value, str):
        raise TypeError(f"expected a number, an array or a mapping, got {value!r}")
    return np.array(value, dtype=np.float64)


class QEqCalculator(Calculator):
    """Energy, forces, stress and charges of charge-equilibrated Gaussian charges.

    ``electronegativity``, ``hardness`` and ``sigma`` map element symbols (or atomic numbers) to
    values, in eV, eV/e² and Å with the default ``prefactor`` (eV·Å); like :func:`farfield.qeq`
    they may also be one number for every atom or an array of one value per atom. Charges of the
    previous call warm-start the iterative solver. ``results["charges"]`` holds the charges.
    The other arguments are those of :func:`farfield.qeq`; besides them only ``label``,
    ``atoms`` and ``directory`` (passed to ASE's ``Calculator``) are accepted: any other keyword
    argument raises ``TypeError``.
    """

    implemented_properties = ["energy", "forces", "stress", "charges"]

    def __init__(
        self,
        electronegativity: PerAtom,
        hardness: PerAtom,
        sigma: PerAtom,
        total_charge: float = 0.0,
        prefactor: float = units.EV_ANGSTROM,
        solver: str = "auto",
        tolerance: float = 1e-10,
        accuracy: float = 1e-10,
        ewald_sigma: float | None = None,
        max_iterations: int = 2000,
        dense_limit: int = 1500,
        kspace: str = "auto",
        preconditioner: str = "auto",
        **kwargs: Any,
    ) -> None:
        base = {k: kwargs.pop(k) for k in _CALCULATOR_KWARGS if k in kwargs}
        _checks.no_extra_kwargs("QEqCalculator", kwargs)
        # checked now, so that a bad value fails here and not at the first energy
        _options(
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
        super().__init__(**base)  # type: ignore[no-untyped-call]
        self.qeq_parameters = (_copy(electronegativity), _copy(hardness), _copy(sigma))
        self.total_charge = _checks.finite_float("total_charge", total_charge)
        self.prefactor = prefactor
        self.solver = solver
        self.tolerance = tolerance
        self.accuracy = accuracy
        self.options: dict[str, Any] = {
            "ewald_sigma": ewald_sigma,
            "max_iterations": max_iterations,
            "dense_limit": dense_limit,
            "kspace": kspace,
            "preconditioner": preconditioner,
        }
        self._last_charges: np.ndarray | None = None

    def calculate(
        self,
        atoms: Any = None,
        properties: Any = None,
        system_changes: Any = all_changes,
    ) -> None:
        super().calculate(atoms, properties, system_changes)  # type: ignore[no-untyped-call]
        chi, hard, sig = self.qeq_parameters
        q0 = self._last_charges
        if q0 is not None and self.atoms is not None and len(q0) != len(self.atoms):
            q0 = None
        r = qeq(
            self.atoms,
            chi,
            hard,
            sig,
            total_charge=self.total_charge,
            solver=self.solver,  # type: ignore[arg-type]
            tolerance=self.tolerance,
            initial_charges=q0,
            prefactor=self.prefactor,
            accuracy=self.accuracy,
            **self.options,
        )
        self._last_charges = r.charges
        self.results["energy"] = r.energy
        self.results["free_energy"] = r.energy
        self.results["forces"] = r.forces
        self.results["charges"] = r.charges
        if r.stress is not None:
            s = r.stress
            self.results["stress"] = np.array(
                [s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]]
            )
