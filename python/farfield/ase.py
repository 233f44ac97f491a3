"""ASE calculators built on farfield."""

from __future__ import annotations

from typing import Any

import numpy as np
from ase.calculators.calculator import Calculator, all_changes

from . import _checks
from .ase_qeq import QEqCalculator
from .coulomb import Coulomb
from .results import CoulombParameters
from .units import EV_ANGSTROM

__all__ = ["EwaldCalculator", "QEqCalculator"]


class EwaldCalculator(Calculator):
    """Electrostatic (or any 1/r^p) energy, forces and stress of fixed point charges.

    Args:
        charges: (n,) charges, or a per-element map such as ``{"Na": 1.0, "Cl": -1.0}``;
            by default the atoms' initial charges are used (atoms without initial charges
            are refused with a ValueError, never taken as zero).
        exponent: p in 1/r^p.
        accuracy: target relative RMS force error (see :func:`farfield.ewald`).
        prefactor: converts Gaussian units to eV for positions in Å (default e²/(4πε0)).
        method, smearing, cutoff, k_cutoff, mesh, order, mesh_spacing: as in
            :class:`farfield.Coulomb` (fixing some keeps the accuracy; see
            :func:`farfield.ewald`). Other keyword arguments raise TypeError.

    One :class:`farfield.Coulomb` (attribute ``coulomb``) is kept across MD steps: parameters
    are tuned at the first step and reused while the number of atoms and the cell stay the
    same (within :data:`farfield.coulomb.CELL_TOLERANCE`). ``results["stress"]`` is the
    result's stress (1/V) ∂E/∂ε in Voigt order, computed from the first step at which it is
    asked for on (steps that need only energy and forces skip the virial); ``parameters_used`` the
    :class:`farfield.CoulombParameters` of the last call.
    """

    implemented_properties = ["energy", "free_energy", "forces", "stress"]

    def __init__(
        self,
        charges: Any = None,
        exponent: float = 1.0,
        accuracy: float = 1e-6,
        prefactor: float = EV_ANGSTROM,
        method: str = "auto",
        smearing: float | None = None,
        cutoff: float | None = None,
        k_cutoff: float | None = None,
        mesh: tuple[int, int, int] | None = None,
        order: int | None = None,
        mesh_spacing: float | None = None,
        **kwargs: Any,
    ) -> None:
        _checks.no_extra_kwargs("EwaldCalculator", kwargs)
        super().__init__()  # type: ignore[no-untyped-call]
        self._charges: Any
        if charges is None or isinstance(charges, dict):
            self._charges = charges
        else:
            self._charges = np.asarray(charges, dtype=np.float64)
        #: the calculator kept across steps: it tunes once, and again only when the number
        #: of atoms or the cell changes (see :data:`farfield.coulomb.CELL_TOLERANCE`)
        self.coulomb = Coulomb(
            exponent=exponent,
            accuracy=accuracy,
            method=method,
            prefactor=prefactor,
            smearing=smearing,
            cutoff=cutoff,
            k_cutoff=k_cutoff,
            mesh=mesh,
            order=order,
            mesh_spacing=mesh_spacing,
        )
        self.parameters_used: CoulombParameters | None = None
        self._stress_wanted = False

    def calculate(
        self,
        atoms: Any = None,
        properties: Any = None,
        system_changes: Any = all_changes,
    ) -> None:
        super().calculate(atoms, properties, system_changes)  # type: ignore[no-untyped-call]
        assert self.atoms is not None
        charges = self._charges
        periodic = bool(np.all(self.atoms.pbc))
        # the stress costs extra work: computed when asked for, and at every later step once
        # it has been asked for (an NPT integrator asks at every step, after the forces)
        if properties is not None and "stress" in properties:
            self._stress_wanted = True
        want_stress = periodic and self._stress_wanted
        result = self.coulomb.compute(self.atoms, charges, stress=want_stress, potentials=False)
        self.parameters_used = result.parameters
        self.results["energy"] = result.energy
        self.results["free_energy"] = result.energy
        self.results["forces"] = result.forces
        if result.stress is not None:
            s = result.stress
            self.results["stress"] = np.array(
                [s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]]
            )
