"""farfield: the long-range part of atomistic simulation and machine learning.

Gaussian units internally (the energy of two unit charges at distance r is 1/r); pass a
``prefactor`` from :mod:`farfield.units` for eV·Å and friends. σ ("smearing") is the standard
deviation of the Gaussian charge. Cell vectors are rows.
"""

from __future__ import annotations

from . import structures, triplets, units
from ._native import __version__, get_num_threads, set_num_threads
from .descriptors import Descriptor, PowerSpectrum, SphericalExpansion
from .system import System
from .triplets import Bispectrum, TripletFeatures, TripletMLP

__all__ = [
    "Bispectrum",
    "TripletFeatures",
    "TripletMLP",
    "Descriptor",
    "PowerSpectrum",
    "SphericalExpansion",
    "System",
    "__version__",
    "get_num_threads",
    "set_num_threads",
    "structures",
    "triplets",
    "units",
]
