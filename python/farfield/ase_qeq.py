"""ASE calculator for classic fixed-parameter QEq (per-element χ, J, σ).

Re-exported from :mod:`farfield.ase`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from ase.calculators.calculator import Calculator, all_changes

from . import units
from .qeq import qeq

__all__ = ["QEqCalculator"]


class QEqCalculator(Calculator):
    """Energy, forces, stress and charges of charge-equilibrated Gaussian charges.

    ``electronegativity``, ``hardness`` and ``sigma`` map element symbols (or atomic numbers) to
    values, in eV, eV/e² and Å with the default ``prefactor`` (eV·Å). Charges of the previous
    call warm-start the iterative solver. ``results["charges"]`` holds the charges.
    """

    implemented_properties = ["energy", "forces", "stress", "charges"]

    def __init__(
        self,
        electronegativity: Mapping[Any, float],
        hardness: Mapping[Any, float],
        sigma: Mapping[Any, float],
        total_charge: float = 0.0,
        prefactor: float = units.EV_ANGSTROM,
        solver: str = "auto",
        tolerance: float = 1e-10,
        accuracy: float = 1e-10,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)  # type: ignore[no-untyped-call]
        self.qeq_parameters = (dict(electronegativity), dict(hardness), dict(sigma))
        self.total_charge = total_charge
        self.prefactor = prefactor
        self.solver = solver
        self.tolerance = tolerance
        self.accuracy = accuracy
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
