"""Typed stubs of the compiled extension ``farfield._native``."""

from typing import Any

import numpy as np
import numpy.typing as npt

_F = npt.NDArray[np.float64]
_I = npt.NDArray[np.int32]
_SystemArrays = tuple[_F, _I, _F | None]

__version__: str

def validate_system(system: _SystemArrays) -> int: ...
def set_num_threads(n: int) -> None: ...
def get_num_threads() -> int: ...

# ewald engine
def ewald_tune(
    system: _SystemArrays,
    exponent: float,
    accuracy: float,
    method: str,
    smearing: float | None = None,
    cutoff: float | None = None,
    k_cutoff: float | None = None,
) -> tuple[str, float, float, float]: ...
def ewald_compute(
    system: _SystemArrays,
    charges: _F,
    exponent: float,
    accuracy: float,
    method: str,
    smearing: float | None = None,
    cutoff: float | None = None,
    k_cutoff: float | None = None,
    prefactor: float = 1.0,
    potentials: bool = True,
    forces: bool = True,
    virial: bool = True,
) -> dict[str, Any]: ...

# lode engine
class LodeCalculator:
    def __init__(
        self,
        exponent: float,
        smearing: float,
        max_angular: int,
        max_radial: int,
        radius: float,
        basis: str,
        k_cutoff: float | None,
        center_atom_weight: float,
        drop_divergent_k0: bool,
    ) -> None: ...
    @property
    def k_cutoff(self) -> float: ...
    def compute(
        self,
        system: _SystemArrays,
        species: list[int],
        positions_gradient: bool,
        strain_gradient: bool,
    ) -> dict[str, Any]: ...
    def backward(
        self, system: _SystemArrays, species: list[int], grad_values: _F
    ) -> tuple[_F, _F]: ...
# descriptors (SOAP)
class SoapCalculator:
    def __init__(
        self,
        kind: str,
        cutoff: float,
        max_radial: int,
        max_angular: int,
        smearing: float,
        cutoff_function: str,
        width: float,
        center_atom_weight: float,
        radial_accuracy: float | None,
        species: list[int] | None,
    ) -> None: ...
    def compute(
        self, frames: list[_SystemArrays], species: list[int], positions: bool, strain: bool
    ) -> dict[str, object]: ...

def clebsch_gordan(l1: int, l2: int, lam: int) -> _F: ...
def spherical_harmonics(vectors: _F, lmax: int) -> _F: ...
