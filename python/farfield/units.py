"""Unit prefactors: multiply Gaussian-unit energies (q_i q_j / r) by one of these.

farfield computes in Gaussian units: the energy of two unit charges at distance r is 1/r.
Pass ``prefactor=EV_ANGSTROM`` (and positions in Å, charges in e) to get eV, eV/Å, eV/Å³.
"""

from __future__ import annotations

#: e²/(4π ε0) in eV·Å
EV_ANGSTROM: float = 14.399645478425667
#: e²/(4π ε0) in kcal/mol·Å
KCAL_MOL_ANGSTROM: float = 332.0637132991921
#: e²/(4π ε0) in kJ/mol·Å
KJ_MOL_ANGSTROM: float = 1389.3545764438197
#: e²/(4π ε0) in Hartree·Bohr (atomic units: positions in Bohr, energies in Hartree)
HARTREE_BOHR: float = 1.0
#: e²/(4π ε0) in Hartree·Å (positions in Å, energies in Hartree)
HARTREE_ANGSTROM: float = 0.529177210903

__all__ = [
    "EV_ANGSTROM",
    "HARTREE_ANGSTROM",
    "HARTREE_BOHR",
    "KCAL_MOL_ANGSTROM",
    "KJ_MOL_ANGSTROM",
]
