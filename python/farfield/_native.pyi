"""Typed stubs of the compiled extension ``farfield._native``.

Checked against the built extension by ``python -m mypy.stubtest farfield._native`` (``make
lint``). The pyo3 classes are built by ``__new__`` (no ``__init__``) and cannot be subclassed
(``@final``).
"""

from typing import Any, final

import numpy as np
import numpy.typing as npt
from typing_extensions import Self

_F = npt.NDArray[np.float64]
_I = npt.NDArray[np.int32]

class ConvergenceError(RuntimeError):
    """An iterative solver did not reach its tolerance within its iteration limit."""

@final
class NativeSystem:
    def __new__(
        cls,
        positions: _F,
        numbers: npt.NDArray[Any],
        cell: _F | None = None,
        pbc: tuple[bool, bool, bool] | list[bool] | None = None,
    ) -> Self: ...
    @property
    def positions(self) -> _F: ...
    @property
    def numbers(self) -> _I: ...
    @property
    def cell(self) -> _F | None: ...
    @property
    def periodic(self) -> bool: ...
    def __len__(self) -> int: ...
    def __copy__(self) -> Self: ...
    def __deepcopy__(self, _memo: Any) -> Self: ...
    def __reduce__(self) -> tuple[Any, tuple[_F, _I, _F | None]]: ...

# a validated NativeSystem (used as is) or a tuple (positions, numbers, cell) (validated per call)
_SystemArrays = NativeSystem | tuple[_F, _I, _F | None]

__all__ = [
    "__version__",
    "ConvergenceError",
    "panic_count",
    "set_limits",
    "get_limits",
    "validate_system",
    "validation_count",
    "NativeSystem",
    "set_num_threads",
    "get_num_threads",
    "simd_level",
    "coulomb_choose",
    "coulomb_compute",
    "pme_preferred",
    "SoapCalculator",
    "clebsch_gordan",
    "spherical_harmonics",
    "LodeCalculator",
    "lambda0_invariants",
    "lambda0_invariants_vjp",
    "lambda0_invariants_jvp",
    "lode_dense_position_gradients",
    "lode_block_position_gradients",
    "qeq",
    "qeq_batch",
    "TripletCalculator",
    "clebsch_gordan_product",
    "second_order",
]

__version__: str

# triplets (rust/farfield-py/src/triplets.rs)
_L = npt.NDArray[np.int64]

def validate_system(system: _SystemArrays) -> int: ...
def validation_count() -> int: ...
def set_num_threads(n: int) -> None: ...
def get_num_threads() -> int: ...
def simd_level() -> str: ...
def panic_count() -> int: ...
def set_limits(max_memory: float | None = None, max_terms: float = 2e11) -> None: ...
def get_limits() -> tuple[float | None, float, float]: ...
def coulomb_choose(
    system: _SystemArrays,
    exponent: float,
    accuracy: float,
    method: str,
    smearing: float | None = None,
    cutoff: float | None = None,
    k_cutoff: float | None = None,
    mesh: tuple[int, int, int] | None = None,
    order: int | None = None,
    mesh_spacing: float | None = None,
) -> dict[str, Any]: ...
def coulomb_compute(
    system: _SystemArrays,
    charges: _F,
    exponent: float,
    method: str,
    smearing: float | None = None,
    cutoff: float | None = None,
    k_cutoff: float | None = None,
    mesh: tuple[int, int, int] | None = None,
    order: int | None = None,
    prefactor: float = 1.0,
    potentials: bool = False,
    forces: bool = True,
    stress: bool = True,
    accuracy: float | None = None,
    mesh_spacing: float | None = None,
) -> dict[str, Any]: ...
def pme_preferred(system: _SystemArrays, exponent: float = 1.0, accuracy: float = 1e-5) -> bool: ...

@final
class SoapCalculator:
    def __new__(
        cls,
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
    ) -> Self: ...
    def compute(
        self,
        frames: list[_SystemArrays],
        species: list[int],
        positions: bool,
        strain: bool,
        cell: bool,
    ) -> dict[str, object]: ...
    def backward(
        self, frames: list[_SystemArrays], species: list[int], grad_values: _F
    ) -> list[tuple[_F, _F, _F | None]]: ...

def clebsch_gordan(l1: int, l2: int, lam: int) -> _F: ...
def spherical_harmonics(vectors: _F, lmax: int) -> _F: ...
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
    smearing: float | None,
    ewald_truncation: float,
    dense_limit: int,
    kspace: str,
    preconditioner: str,
    grad_charges: _F | None = None,
    grad_energy: float = 0.0,
) -> Any: ...
def qeq_batch(
    systems: list[_SystemArrays],
    electronegativity: list[_F],
    hardness: list[_F],
    sigma: list[_F],
    total_charge: list[float],
    fragments: list[list[int] | None],
    fragment_charges: list[list[float] | None],
    initial_charges: list[_F | None],
    solver: str,
    tolerance: float,
    max_iterations: int,
    prefactor: float,
    smearing: float | None,
    ewald_truncation: float,
    dense_limit: int,
    kspace: str,
    preconditioner: str,
    grad_charges: list[_F] | None = None,
    grad_energy: list[float] | None = None,
) -> list[Any]: ...
def lambda0_invariants(
    first: npt.NDArray[np.float64],
    second: npt.NDArray[np.float64],
    n_species_1: int,
    n_species_2: int,
    max_angular: int,
    n_radial_1: int,
    n_radial_2: int,
    symmetric: bool,
) -> npt.NDArray[np.float64]: ...
def lambda0_invariants_vjp(
    first: npt.NDArray[np.float64],
    second: npt.NDArray[np.float64],
    grad: npt.NDArray[np.float64],
    n_species_1: int,
    n_species_2: int,
    max_angular: int,
    n_radial_1: int,
    n_radial_2: int,
    symmetric: bool,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]: ...
def lambda0_invariants_jvp(
    first: _F,
    dfirst: _F | None,
    second: _F,
    dsecond: _F | None,
    n_species_1: int,
    n_species_2: int,
    max_angular: int,
    n_radial_1: int,
    n_radial_2: int,
    symmetric: bool,
    n_directions: int,
) -> _F: ...
def lode_dense_position_gradients(
    pair: _F, own: _F, types: list[int], n_species: int, n_features: int
) -> _F: ...
def lode_block_position_gradients(
    pair: _F,
    own: _F,
    types: list[int],
    n_species: int,
    n_features: int,
    centres: list[int],
    channel: int,
    o3_lambda: int,
    n_radial: int,
) -> tuple[_L, _F]: ...

@final
class LodeCalculator:
    def __new__(
        cls,
        exponent: float,
        smearing: float,
        max_angular: int,
        max_radial: int,
        radius: float,
        basis: str,
        k_cutoff: float | None,
        center_atom_weight: float,
        drop_divergent_k0: bool,
    ) -> Self: ...
    @property
    def k_cutoff(self) -> float: ...
    def compute(
        self,
        system: _SystemArrays,
        species: list[int],
        positions_gradient: bool,
        strain_gradient: bool,
        method: str,
        accuracy: float,
        cell_gradient: bool = False,
    ) -> dict[str, Any]: ...
    def backward(
        self,
        system: _SystemArrays,
        species: list[int],
        grad_values: _F,
        method: str = "exact",
        accuracy: float = 1e-6,
    ) -> tuple[_F, _F, _F | None, str]: ...

@final
class TripletCalculator:
    def __new__(
        cls,
        cutoff: float,
        max_radial: int,
        max_angular: int,
        smearing: float,
        cutoff_function: str,
        width: float,
        radial_accuracy: float | None,
        species: list[int],
    ) -> Self: ...
    @property
    def n_features(self) -> int: ...
    def compute(
        self,
        frames: list[_SystemArrays],
        centres_list: list[int] | None = None,
        proj: tuple[_F, _F] | None = None,
    ) -> dict[str, Any]: ...
    def summed(
        self,
        frames: list[_SystemArrays],
        centres_list: list[int] | None = None,
        proj: tuple[_F, _F] | None = None,
    ) -> dict[str, Any]: ...
    def bispectrum(
        self, frames: list[_SystemArrays], centres_list: list[int] | None = None
    ) -> dict[str, Any]: ...
    def pair_expansion(self, frame: _SystemArrays, centre: int) -> tuple[_L, _F]: ...

def clebsch_gordan_product(a: _F, b: _F, l1: int, l2: int, lam: int) -> _F: ...
def second_order(
    system: _SystemArrays,
    a: _F,
    b: _F,
    u: _F,
    exponent: float = 1.0,
    accuracy: float = 1e-6,
    smearing: float | None = None,
    cutoff: float | None = None,
    k_cutoff: float | None = None,
    widths: _F | None = None,
    mesh: tuple[int, int, int] | None = None,
    order: int | None = None,
    strain: _F | None = None,
) -> dict[str, Any]: ...
