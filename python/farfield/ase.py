"""ASE calculators built on farfield."""

from __future__ import annotations

from typing import Any

import numpy as np
from ase.calculators.calculator import Calculator, all_changes

from .ase_qeq import QEqCalculator
from .ewald import ewald
from .units import EV_ANGSTROM

__all__ = ["EwaldCalculator", "QEqCalculator"]


class EwaldCalculator(Calculator):
    """Electrostatic (or any 1/r^p) energy, forces and stress of fixed point charges.

    Args:
        charges: (n,) charges; by default the atoms' initial charges are used.
        exponent: p in 1/r^p.
        accuracy: target relative RMS force error (see :func:`farfield.ewald`).
        prefactor: converts Gaussian units to eV for positions in Å (default e²/(4πε0)).
        **kwargs: more arguments of :func:`farfield.ewald` (method, smearing, cutoff,
            k_cutoff).
    """

    implemented_properties = ["energy", "free_energy", "forces", "stress"]

    def __init__(
        self,
        charges: Any = None,
        exponent: float = 1.0,
        accuracy: float = 1e-6,
        prefactor: float = EV_ANGSTROM,
        **kwargs: Any,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._charges = None if charges is None else np.asarray(charges, dtype=np.float64)
        self._exponent = exponent
        self._accuracy = accuracy
        self._prefactor = prefactor
        self._options = kwargs
        self.parameters_used: dict[str, Any] = {}

    def calculate(
        self,
        atoms: Any = None,
        properties: Any = None,
        system_changes: Any = all_changes,
    ) -> None:
        super().calculate(atoms, properties, system_changes)  # type: ignore[no-untyped-call]
        assert self.atoms is not None
        charges = self._charges
        if charges is None:
            charges = self.atoms.get_initial_charges()
        periodic = bool(np.all(self.atoms.pbc))
        result = ewald(
            self.atoms,
            charges,
            exponent=self._exponent,
            accuracy=self._accuracy,
            prefactor=self._prefactor,
            potentials=False,
            stress=periodic,
            **self._options,
        )
        self.parameters_used = result.parameters
        self.results["energy"] = result.energy
        self.results["free_energy"] = result.energy
        self.results["forces"] = result.forces
        if result.stress is not None:
            s = result.stress
            self.results["stress"] = np.array(
                [s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]]
            )
