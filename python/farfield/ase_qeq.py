"""ASE calculator for classic fixed-parameter QEq (per-element χ, J, σ).

Re-exported from :mod:`farfield.ase`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from ase.calculators.calculator import Calculator, all_changes

from . import _checks, units
from ._compat import renamed_keywords
from .qeq import _RENAMED, PerAtom, QEq, _copy

__all__ = ["QEqCalculator"]


#: Keyword arguments of ``ase.calculators.calculator.Calculator`` that are passed on.
_CALCULATOR_KWARGS = ("label", "atoms", "directory")


class QEqCalculator(Calculator):
    """Energy, forces, stress and charges of charge-equilibrated Gaussian charges.

    ``electronegativity``, ``hardness`` and ``sigma`` map element symbols (or atomic numbers) to
    values, in eV, eV/e² and Å with the default ``prefactor`` (eV·Å); like :func:`farfield.qeq`
    they may also be one number for every atom or an array of one value per atom. One
    :class:`farfield.QEq` (attribute ``qeq``) is kept across MD steps: the charges of the
    previous call warm-start the iterative solver and the Ewald smearing chosen for a cell is
    reused while the cell stays the same. ``results["charges"]`` holds the charges,
    ``results["stress"]`` the stress of the result (Voigt order). The other arguments are
    those of :class:`farfield.QEq` (``ewald_sigma=`` and ``accuracy=`` are deprecated aliases
    of ``smearing=`` and ``ewald_truncation=``); besides them only ``label``, ``atoms`` and
    ``directory`` (passed to ASE's ``Calculator``) are accepted: any other keyword argument
    raises ``TypeError``.
    """

    implemented_properties = ["energy", "free_energy", "forces", "stress", "charges"]

    @renamed_keywords(**_RENAMED)
    def __init__(
        self,
        electronegativity: PerAtom,
        hardness: PerAtom,
        sigma: PerAtom,
        total_charge: float = 0.0,
        prefactor: float = units.EV_ANGSTROM,
        solver: str = "auto",
        tolerance: float = 1e-10,
        ewald_truncation: float = 1e-10,
        smearing: float | None = None,
        max_iterations: int = 2000,
        dense_limit: int = 1500,
        kspace: str = "auto",
        preconditioner: str = "auto",
        **kwargs: Any,
    ) -> None:
        base = {k: kwargs.pop(k) for k in _CALCULATOR_KWARGS if k in kwargs}
        _checks.no_extra_kwargs("QEqCalculator", kwargs)
        for value in (electronegativity, hardness, sigma):
            _strict(value)
        # checked now, so that a bad value fails here and not at the first energy
        self.qeq = QEq(
            _copy(electronegativity),
            _copy(hardness),
            _copy(sigma),
            total_charge=total_charge,
            solver=solver,  # type: ignore[arg-type]
            tolerance=tolerance,
            prefactor=prefactor,
            smearing=smearing,
            ewald_truncation=ewald_truncation,
            max_iterations=max_iterations,
            dense_limit=dense_limit,
            kspace=kspace,  # type: ignore[arg-type]
            preconditioner=preconditioner,  # type: ignore[arg-type]
        )
        super().__init__(**base)  # type: ignore[no-untyped-call]

    @property
    def qeq_parameters(self) -> tuple[Any, Any, Any]:
        """(electronegativity, hardness, sigma) as given."""
        return (self.qeq.electronegativity, self.qeq.hardness, self.qeq.sigma)

    def calculate(
        self,
        atoms: Any = None,
        properties: Any = None,
        system_changes: Any = all_changes,
    ) -> None:
        super().calculate(atoms, properties, system_changes)  # type: ignore[no-untyped-call]
        r = self.qeq.compute(self.atoms)
        self.results["energy"] = r.energy
        self.results["free_energy"] = r.energy
        self.results["forces"] = r.forces
        self.results["charges"] = r.charges
        if r.stress is not None:
            s = r.stress
            self.results["stress"] = np.array(
                [s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]]
            )


def _strict(value: PerAtom) -> None:
    """Refuses strings and booleans as per-atom parameters (TypeError)."""
    if isinstance(value, (bool, np.bool_)) or isinstance(value, str):
        raise TypeError(f"expected a number, an array or a mapping, got {value!r}")
