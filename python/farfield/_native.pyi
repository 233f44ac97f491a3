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
