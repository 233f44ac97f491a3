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

# qeq
def qeq(
    system: _SystemArrays,
    electronegativity: _F,
    hardness: _F,
    sigma: _F,
    total_charge: float,
    fragments: list[int] | None,
    fragment_charges: list[float] | None,
    initial_charges: _F | None,
    solver: str,
    tolerance: float,
    max_iterations: int,
    prefactor: float,
    ewald_sigma: float | None,
    accuracy: float,
    dense_limit: int,
    grad_charges: _F | None = None,
    grad_energy: float = 0.0,
) -> Any: ...
def qeq_batch(
    systems: list[_SystemArrays],
    electronegativity: list[_F],
    hardness: list[_F],
    sigma: list[_F],
    total_charge: list[float],
    solver: str,
    tolerance: float,
    max_iterations: int,
    prefactor: float,
    ewald_sigma: float | None,
    accuracy: float,
    dense_limit: int,
) -> list[dict[str, Any]]: ...

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
