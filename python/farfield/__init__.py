"""farfield: the long-range part of atomistic simulation and machine learning.

Gaussian units internally (the energy of two unit charges at distance r is 1/r); pass a
``prefactor`` from :mod:`farfield.units` for eV·Å and friends. σ ("smearing") is the standard
deviation of the Gaussian charge. Cell vectors are rows.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING, Any

from . import triplets, units
from ._native import ConvergenceError, __version__, get_num_threads, set_num_threads
from .coulomb import Coulomb
from .descriptors import Backward, Descriptor, PowerSpectrum, SphericalExpansion
from .ewald import ewald, ewald_parameters
from .limits import Limits, get_limits, set_limits
from .lode import LodePowerSpectrum, LodeSphericalExpansion
from .pme import pme, pme_preferred
from .qeq import QEq, QEqGradients, QEqResult, qeq, qeq_batch, qeq_vjp
from .results import CoulombParameters, EnergyResult, Timing
from .system import System
from .triplets import Bispectrum, TripletFeatures

if TYPE_CHECKING:
    from . import dask, structures

__all__ = [
    "Backward",
    "Bispectrum",
    "ConvergenceError",
    "Coulomb",
    "CoulombParameters",
    "Descriptor",
    "EnergyResult",
    "Limits",
    "LodePowerSpectrum",
    "LodeSphericalExpansion",
    "PowerSpectrum",
    "QEq",
    "QEqGradients",
    "QEqResult",
    "SphericalExpansion",
    "System",
    "Timing",
    "TripletFeatures",
    "__version__",
    "dask",
    "ewald",
    "ewald_parameters",
    "get_limits",
    "get_num_threads",
    "pme",
    "pme_preferred",
    "qeq",
    "qeq_batch",
    "qeq_vjp",
    "set_limits",
    "set_num_threads",
    "structures",
    "triplets",
    "units",
]

#: submodules imported on first access (``ff.structures`` imports ASE, ``ff.dask`` Dask on use)
_LAZY_SUBMODULES = ("dask", "structures")


def __getattr__(name: str) -> Any:
    """Imports the lazy submodules on first access (PEP 562); the deprecated result names
    ``EwaldResult``, ``PmeResult``, ``PmeParameters`` warn and return their replacements."""
    if name in _LAZY_SUBMODULES:
        module: ModuleType = importlib.import_module(f".{name}", __name__)
        globals()[name] = module
        return module
    from . import results

    if name in results._DEPRECATED:
        return results.deprecated_name(__name__, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY_SUBMODULES})
