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
def pme_compute(
    system: _SystemArrays,
    charges: _F,
    exponent: float = 1.0,
    accuracy: float = 1e-5,
    smearing: float | None = None,
    cutoff: float | None = None,
    mesh: tuple[int, ...] | None = None,
    mesh_spacing: float | None = None,
    order: int | None = None,
    potentials: bool = False,
    forces: bool = True,
    virial: bool = True,
) -> dict[str, Any]: ...
def pme_preferred(system: _SystemArrays, exponent: float = 1.0, accuracy: float = 1e-5) -> bool: ...
