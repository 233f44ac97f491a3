"""Typed stubs of the compiled extension ``farfield._native``."""

import numpy as np
import numpy.typing as npt

_F = npt.NDArray[np.float64]
_I = npt.NDArray[np.int32]
_SystemArrays = tuple[_F, _I, _F | None]

__version__: str

def validate_system(system: _SystemArrays) -> int: ...
def set_num_threads(n: int) -> None: ...
def get_num_threads() -> int: ...

# triplets (rust/farfield-py/src/triplets.rs)
_L = npt.NDArray[np.int64]


def triplet_features(
    frames: list[_SystemArrays],
    cutoff: float,
    cutoff_width: float,
    max_radial: int,
    max_angular: int,
    radial_width: float,
    species: list[int],
    centres_list: list[int] | None = None,
    proj: tuple[_F, _F] | None = None,
) -> tuple[_L, _F]: ...
def triplet_summed(
    frames: list[_SystemArrays],
    cutoff: float,
    cutoff_width: float,
    max_radial: int,
    max_angular: int,
    radial_width: float,
    species: list[int],
    centres_list: list[int] | None = None,
    proj: tuple[_F, _F] | None = None,
) -> tuple[_L, _L, _F]: ...
def bispectrum(
    frames: list[_SystemArrays],
    cutoff: float,
    cutoff_width: float,
    max_radial: int,
    max_angular: int,
    radial_width: float,
    species: list[int],
    centres_list: list[int] | None = None,
) -> tuple[_L, _L, _F]: ...
def triplet_feature_labels(max_radial: int, max_angular: int, species: list[int]) -> _I: ...
def pair_expansion(
    frame: _SystemArrays,
    centre: int,
    cutoff: float,
    cutoff_width: float,
    max_radial: int,
    max_angular: int,
    radial_width: float,
    species: list[int],
) -> tuple[_L, _F]: ...
def clebsch_gordan_product(a: _F, b: _F, l1: int, l2: int, lam: int) -> _F: ...
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
